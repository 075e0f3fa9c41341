"""RAG-versus-fine-tuning decision workbench: the library (no UI imports)."""

__version__ = "0.1.0"
