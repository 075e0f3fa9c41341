"""corpus: see ARCHITECTURE.md."""
