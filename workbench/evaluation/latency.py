"""Per-query latency as served: answer a seeded sample of questions one at a time, bypassing the answer cache.

The batched evaluation amortises one batch's wall time over its answers, so every answer of a
batch gets the same number; that is throughput, not what one user waits. The probe times
``strategy.answer([q])`` end to end (retrieval, prompt building, generation) for each sampled
question, after the batched pass has warmed the model, and never serves an answer from the cache.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

from ..types import Question, Strategy


def probe_sample(questions: Sequence[Question], n: int, seed: int) -> list[Question]:
    """Up to ``n`` of ``questions`` (seeded, in their original order); the same sample for every method."""
    if n <= 0 or not questions:
        return []
    if n >= len(questions):
        return list(questions)
    picked = set(random.Random(seed).sample(range(len(questions)), n))
    return [q for i, q in enumerate(questions) if i in picked]


def latency_probe(strategy: Strategy, questions: Sequence[Question], progress: Callable[[int, int], None] | None = None) -> dict[str, float]:
    """Seconds to answer each question alone, by question id; the strategy's answer cache is off meanwhile."""
    cache = getattr(strategy, "cache", None)
    if cache is not None:
        strategy.cache = None  # type: ignore[attr-defined]  # a cached answer would time a database read
    out: dict[str, float] = {}
    try:
        for i, q in enumerate(questions):
            if progress:
                progress(i, len(questions))
            t0 = time.perf_counter()
            strategy.answer([q])
            out[q.id] = time.perf_counter() - t0
    finally:
        if cache is not None:
            strategy.cache = cache  # type: ignore[attr-defined]
    return out
