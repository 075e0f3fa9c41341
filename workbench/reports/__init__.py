"""reports: see ARCHITECTURE.md."""
