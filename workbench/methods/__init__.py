"""methods: see ARCHITECTURE.md."""
