"""tuning: see ARCHITECTURE.md."""
