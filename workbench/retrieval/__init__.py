"""retrieval: see ARCHITECTURE.md."""
