"""Bench: short profiles (torch.profiler and cProfile) summarised as a few JSON rows."""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from typing import Any


def torch_top_ops(fn: Callable[[], Any], top: int = 12) -> list[dict[str, Any]]:
    """Run ``fn`` under torch.profiler (CPU) and return the ``top`` ops by self CPU time."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return [
        {"op": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1e3, 2), "share": round(e.self_cpu_time_total / total, 4), "calls": int(e.count)}
        for e in rows
    ]


def python_top_calls(fn: Callable[[], Any], top: int = 12) -> list[dict[str, Any]]:
    """Run ``fn`` under cProfile and return the ``top`` functions by cumulative time."""
    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    stats = pstats.Stats(prof)
    rows = []
    for (file, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{file.rsplit('/', 1)[-1]}:{line}({name})", "cum_s": round(cumtime, 3), "self_s": round(tottime, 3), "calls": int(ncalls)})
    return sorted(rows, key=lambda r: r["cum_s"], reverse=True)[:top]
