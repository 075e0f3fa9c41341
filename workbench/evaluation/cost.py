"""Cost model: dollars from measured compute seconds at an hourly machine price, break-even volumes, memory and disk."""

from __future__ import annotations

import os
import resource
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil


def usd_per_1k(latency_s_mean: float, usd_per_hour: float) -> float:
    """Dollars per 1,000 queries when each costs `latency_s_mean` compute seconds."""
    return float(latency_s_mean) * 1000.0 / 3600.0 * float(usd_per_hour)


def usd_build(build_seconds: float, usd_per_hour: float) -> float:
    """One-time dollars for building an index or training an adapter."""
    return float(build_seconds) / 3600.0 * float(usd_per_hour)


def cumulative_cost(build_usd: float, usd_per_query: float, volumes: Sequence[float]) -> list[float]:
    """Total dollars after each query volume: build once, then pay per query."""
    return [float(build_usd) + float(usd_per_query) * float(v) for v in volumes]


def break_even(a: dict[str, Any], b: dict[str, Any], name_a: str | None = None, name_b: str | None = None) -> dict[str, Any]:
    """Query volume at which a and b cost the same in total, from their usd_build and usd_per_1k_queries.

    `queries` is None when one method is no dearer on both counts (it dominates) or both lines are
    parallel. `cheaper_upfront` / `cheaper_per_query` name the method that wins each (None on a tie).
    Names default to each dict's "method" key, else "a" and "b".
    """
    na = name_a or str(a.get("method", "a"))
    nb = name_b or str(b.get("method", "b"))
    build_a, build_b = float(a["usd_build"]), float(b["usd_build"])
    per_a, per_b = float(a["usd_per_1k_queries"]) / 1000.0, float(b["usd_per_1k_queries"]) / 1000.0
    upfront = na if build_a < build_b else nb if build_b < build_a else None
    per_query = na if per_a < per_b else nb if per_b < per_a else None
    queries: float | None = None
    if upfront is not None and per_query is not None and upfront != per_query:
        queries = (build_b - build_a) / (per_a - per_b)
    return {"queries": queries, "cheaper_upfront": upfront, "cheaper_per_query": per_query}


def materiality_scores(values: dict[str, float | None], threshold: float, scale: float | None = None, among: Sequence[str] | None = None) -> dict[str, float]:
    """0..1 per method, lower value is better, where differences under ``threshold`` do not count.

    A method scores 1 within ``threshold`` of the lowest value (of the methods in ``among``, default
    all) and loses the excess beyond it as a share of ``scale`` (a budget; default the highest
    value), so $0.08 vs $0.27 a month scores the same while $100 vs $1,000 does not. Missing values
    score 0.
    """
    pool = [values[m] for m in (among if among else values) if values.get(m) is not None]
    if not pool:
        return {m: 0.0 for m in values}
    low, high = min(pool), max(pool)
    span = float(scale) if scale else float(high)
    out = {}
    for m, v in values.items():
        if v is None:
            out[m] = 0.0
            continue
        excess = max(0.0, float(v) - low - threshold)
        out[m] = 1.0 if excess <= 0 else max(0.0, 1.0 - excess / span) if span > 0 else 0.0
    return out


def monthly_break_even(fixed_a: float, per_query_a: float, fixed_b: float, per_query_b: float) -> float | None:
    """Queries per month at which two methods cost the same (fixed USD/month + USD/query), or None when one is never dearer."""
    if per_query_a == per_query_b:
        return None
    q = (fixed_b - fixed_a) / (per_query_a - per_query_b)
    return q if q > 0 else None


def peak_rss_mb(include_children: bool = False) -> float:
    """Peak resident memory of this process so far in MB (ru_maxrss, at least the current RSS)."""
    scale = 1.0 if sys.platform == "darwin" else 1024.0  # bytes on macOS, KiB on Linux
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    if include_children:
        peak = max(peak, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale)
    return max(peak, float(psutil.Process().memory_info().rss)) / 1e6


class RssSampler:
    """Context manager sampling this process's RSS in a background thread: `.peak` MB during the block."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self._proc = psutil.Process(os.getpid())
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.peak = 0.0

    def _sample(self) -> None:
        self.peak = max(self.peak, self._proc.memory_info().rss / 1e6)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def __enter__(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def dir_size_mb(path: str | Path) -> float:
    """Size in MB of a file or of every file under a folder (symlinks not followed)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such file or folder to measure; build the artefact first")
    if p.is_file():
        return p.stat().st_size / 1e6
    total = 0
    for root, _dirs, files in os.walk(p):
        for name in files:
            f = Path(root) / name
            if not f.is_symlink():
                total += f.stat().st_size
    return total / 1e6
