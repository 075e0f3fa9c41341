"""The tuned methods: lora (the adapter, closed book) and rag+lora (the adapter plus retrieval)."""

from __future__ import annotations

from .rag import Rag
from .registry import LORA, RAG_LORA, MethodContext
from .zero_shot import ZeroShot


class Lora(ZeroShot):
    """Closed book through a generator that carries the LoRA adapter."""

    name = LORA


class RagLora(Rag):
    """Retrieval plus the LoRA adapter."""

    name = RAG_LORA


def make_lora(ctx: MethodContext) -> Lora:
    return Lora(ctx.adapter_generator, **ctx.common)


def make_rag_lora(ctx: MethodContext) -> RagLora:
    return RagLora(ctx.adapter_generator, ctx.index, ctx.cfg.retrieval, ctx.embedder, **ctx.common)
