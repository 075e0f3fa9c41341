"""cli: see ARCHITECTURE.md."""
