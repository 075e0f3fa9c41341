"""The tuned methods: lora (the adapter, closed book), rag+lora (the adapter plus retrieval), and the rest of the
customization ladder, ia3, prompt-tuning and p-tuning (closed book, each with its own adapter)."""

from __future__ import annotations

from .rag import Rag
from .registry import IA3, LORA, P_TUNING, PROMPT_TUNING, RAG_LORA, MethodContext
from .zero_shot import ZeroShot


class Lora(ZeroShot):
    """Closed book through a generator that carries the LoRA adapter."""

    name = LORA


class RagLora(Rag):
    """Retrieval plus the LoRA adapter."""

    name = RAG_LORA


class Ia3(ZeroShot):
    """Closed book through a generator that carries the IA3 scaling vectors."""

    name = IA3


class PromptTuning(ZeroShot):
    """Closed book through a generator whose peft model puts the learned virtual tokens before every prompt."""

    name = PROMPT_TUNING


class PTuning(ZeroShot):
    """Closed book through a generator whose peft model runs the trained prompt encoder and puts its virtual tokens first."""

    name = P_TUNING


def make_lora(ctx: MethodContext) -> Lora:
    return Lora(ctx.adapter_generator, **ctx.common)


def make_rag_lora(ctx: MethodContext) -> RagLora:
    return RagLora(ctx.adapter_generator, ctx.index, ctx.cfg.retrieval, ctx.embedder, **ctx.common)


def make_ia3(ctx: MethodContext) -> Ia3:
    return Ia3(ctx.adapter_generator, **ctx.common)


def make_prompt_tuning(ctx: MethodContext) -> PromptTuning:
    return PromptTuning(ctx.adapter_generator, **ctx.common)


def make_p_tuning(ctx: MethodContext) -> PTuning:
    return PTuning(ctx.adapter_generator, **ctx.common)
