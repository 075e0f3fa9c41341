"""Build any registered method's Strategy from a run's config: the one entry point run, build, freshness and the bench use.

Each method lives in its own module (zero_shot, few_shot, rag, adapter, baselines) and is made known by
its MethodSpec in ``registry``; this module only assembles the context a spec's factory receives.
"""

from __future__ import annotations

from typing import Any

from ..backends.answer_cache import AnswerCache
from ..backends.base import Generator
from ..config import RunConfig
from ..types import Question, Strategy
from .prompt_strategy import StrategyError, default_cache
from .registry import REGISTRY, MethodContext, method_spec


def make_strategy(
    method: str,
    *,
    generator: Generator,
    adapter_generator: Generator | None = None,
    index: Any = None,
    embedder: Any = None,
    pool: list[Question] | None = None,
    cfg: RunConfig,
    instruction: str = "",
    cache: AnswerCache | None | bool = True,
    language: str = "en",
) -> Strategy:
    """The strategy for ``method`` (any registered method) built from a run's config; ``cache=True`` uses the shared answer cache."""
    if method not in REGISTRY:
        raise StrategyError(f"unknown method {method!r}; choose from {', '.join(REGISTRY)}")
    spec = method_spec(method)
    store = default_cache() if cache is True else (None if cache is False else cache)
    common = {"instruction": instruction, "gen_cfg": cfg.generation, "seed": cfg.seed, "cache": store, "language": language}
    if spec.needs_adapter and adapter_generator is None:
        raise StrategyError(f"method {method} needs a generator carrying a LoRA adapter; train one first (workbench.tuning.lora)")
    ctx = MethodContext(generator, adapter_generator, index, embedder, list(pool or []), cfg, common)
    return spec.build(ctx)
