"""Per-query latency as served: answer a seeded sample of questions one at a time, bypassing the answer cache.

The batched evaluation amortises one batch's wall time over its answers, so every answer of a
batch gets the same number; that is throughput, not what one user waits. The probe times
``strategy.answer([q])`` end to end (retrieval, prompt building, generation) for each sampled
question, after the batched pass has warmed the model, and never serves an answer from the cache.

An unchanged rerun does not time the same thing again: when the batched pass served a question's
answer from the answer cache (same weights, prompt and settings), the seconds this machine measured
for it alone before are reused from ``ProbeTimings`` and counted as reused.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..paths import cache_dir
from ..storage import atomic_write_json, stable_hash
from ..types import Answer, Question, Strategy


def probe_sample(questions: Sequence[Question], n: int, seed: int) -> list[Question]:
    """Up to ``n`` of ``questions`` (seeded, in their original order); the same sample for every method."""
    if n <= 0 or not questions:
        return []
    if n >= len(questions):
        return list(questions)
    picked = set(random.Random(seed).sample(range(len(questions)), n))
    return [q for i, q in enumerate(questions) if i in picked]


class ProbeTimings:
    """Seconds this machine measured for one question answered alone, by what decides them (see ``key``)."""

    def __init__(self, path: str | Path | None = None):
        from ..backends.hardware import machine_key

        self.machine = machine_key()
        self.path = Path(path) if path else cache_dir("latency") / f"{self.machine}.json"
        try:
            self.seconds: dict[str, float] = json.loads(self.path.read_text(encoding="utf-8")) if self.path.is_file() else {}
        except (OSError, ValueError):
            self.seconds = {}  # a damaged file only costs a fresh probe

    def key(self, strategy: Any, question: Question, answer: Answer) -> str | None:
        """Machine, method, weights, generation settings and the batched answer's prompt outcome; None if unknown."""
        fingerprint = getattr(getattr(strategy, "generator", None), "fingerprint", None)
        if not isinstance(fingerprint, str):
            return None
        settings = getattr(getattr(strategy, "gen_cfg", None), "__dict__", {})
        contexts = [c.get("chunk_id", c.get("id")) for c in answer.contexts]
        return stable_hash(self.machine, strategy.name, fingerprint, sorted(settings.items()), question.question, answer.text, answer.prompt_tokens, contexts)

    def save(self) -> None:
        atomic_write_json(self.path, self.seconds)


OUTLIER_FACTOR = 2.0  # a timing over twice the sample's median (and 0.5 s above it) is taken again once
OUTLIER_MARGIN_S = 0.5


class ProbeResult(NamedTuple):
    seconds: dict[str, float]  # by question id
    reused: int  # timings taken from an earlier run on this machine
    retimed: list[str]  # outliers answered a second time (the lower time kept)


def latency_probe(
    strategy: Strategy,
    questions: Sequence[Question],
    progress: Callable[[int, int], None] | None = None,
    answers: dict[str, Answer] | None = None,
    timings: ProbeTimings | None = None,
) -> ProbeResult:
    """Seconds to answer each question alone; the answer cache is off meanwhile.

    A timing is reused only for a question whose batched answer (``answers``) came from the answer cache
    and that ``timings`` holds for the same key; every other question is answered and timed again. With a
    handful of questions the p95 is the slowest one, so one answer slowed by another process would decide
    it: a timing far above the sample's median is taken once more and the lower of the two kept (a
    question that is slow by itself stays slow).
    """
    cache = getattr(strategy, "cache", None)
    if cache is not None:
        strategy.cache = None  # type: ignore[attr-defined]  # a cached answer would time a database read
    out: dict[str, float] = {}
    fresh: dict[str, str | None] = {}  # timed now: question id -> its timings key
    retimed: list[str] = []
    reused = 0
    known = timings.seconds if timings is not None else {}
    try:
        for i, q in enumerate(questions):
            if progress:
                progress(i, len(questions))
            ans = (answers or {}).get(q.id)
            key = timings.key(strategy, q, ans) if (timings is not None and ans is not None) else None
            if key in known and ans is not None and ans.meta.get("cached"):
                out[q.id] = float(known[key])
                reused += 1
                continue
            out[q.id] = _time_alone(strategy, q)
            fresh[q.id] = key
        median = statistics.median(out.values()) if out else 0.0
        for q in questions:
            if q.id in fresh and out[q.id] > OUTLIER_FACTOR * median and out[q.id] - median > OUTLIER_MARGIN_S:
                out[q.id] = min(out[q.id], _time_alone(strategy, q))
                retimed.append(q.id)
        known.update({key: out[qid] for qid, key in fresh.items() if key})
    finally:
        if cache is not None:
            strategy.cache = cache  # type: ignore[attr-defined]
    if timings is not None and fresh:
        timings.save()
    return ProbeResult(out, reused, retimed)


def _time_alone(strategy: Strategy, question: Question) -> float:
    t0 = time.perf_counter()
    strategy.answer([question])
    return time.perf_counter() - t0
