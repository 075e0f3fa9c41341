"""pipeline: see ARCHITECTURE.md."""
