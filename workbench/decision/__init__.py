"""decision: see ARCHITECTURE.md."""
