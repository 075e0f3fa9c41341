"""Display names of methods, shared by the decision, the reports, the charts and the app."""

from __future__ import annotations

METHOD_LABELS = {"zero-shot": "Zero-shot", "few-shot": "Few-shot", "rag": "RAG", "lora": "LoRA", "rag+lora": "RAG+LoRA",
                 "prior": "Prior", "oracle-passage": "Oracle passage"}


def label(method: str) -> str:
    """Display name of a method (``rag+lora`` -> ``RAG+LoRA``)."""
    return METHOD_LABELS.get(method, method)
