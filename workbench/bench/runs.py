"""Bench: a quick run from an empty cache (cold), then the same run again (warm: every cache hits).

The run gets a fresh WORKBENCH_HOME whose ``models/`` links to the converted models, so "cold"
means: no index, no adapter, no cached answers, but no one-time GGUF conversion either.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..paths import models_dir
from ..storage import read_json

ENV = ("WORKBENCH_HOME", "WORKBENCH_RUNS", "WORKBENCH_NO_ANSWER_CACHE")


@contextmanager
def fresh_home() -> Iterator[Path]:
    """A temporary WORKBENCH_HOME with the converted models linked in; the environment is restored after."""
    models = models_dir().resolve()
    saved = {k: os.environ.get(k) for k in ENV}
    root = Path(tempfile.mkdtemp(prefix="wb-bench-home-"))
    try:
        (root / "models").symlink_to(models, target_is_directory=True)
        os.environ["WORKBENCH_HOME"] = str(root)
        os.environ["WORKBENCH_RUNS"] = str(root / "runs")
        os.environ.pop("WORKBENCH_NO_ANSWER_CACHE", None)
        yield root
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(root, ignore_errors=True)


def _stage_timings(run_dir: Path) -> dict[str, float]:
    meta = read_json(run_dir / "meta.json", {}) or {}
    return {k: round(float(v), 3) for k, v in (meta.get("timings_s") or {}).items()}


def _cached_share(run_dir: Path) -> float:
    from ..config import BASELINES
    from ..storage import read_jsonl

    # the compared methods only: the prior generates nothing, and oracle-passage reuses rag's cached
    # answers wherever its prompt is rag's (questions without gold sources)
    rows = [r for r in read_jsonl(run_dir / "predictions.jsonl") if r.get("method") not in BASELINES]
    return sum(1 for r in rows if r.get("cached")) / max(len(rows), 1)


def _results(run_dir: Path) -> dict[str, Any]:
    """What the timed run found: per-method accuracy/hallucination and the LoRA training summary."""
    metrics = read_json(run_dir / "metrics.json", {}) or {}
    methods = {m: {k: v.get(k) for k in ("accuracy", "accuracy_ci", "hallucination_rate", "abstention_rate")} for m, v in (metrics.get("methods") or {}).items()}
    train = metrics.get("train") or {}
    keep = ("steps", "train_seconds", "tokens_per_s", "loss_first", "final_loss", "train_split_probe", "cache_hit", "labelled_token_share", "filler_token_share")
    shares = {name: {k: r.get(k) for k in ("labelled_token_share", "filler_token_share")} for name, r in (train.get("recipes") or {}).items()}
    return {"methods": methods, "train": {**{k: train.get(k) for k in keep if k in train}, "token_shares_by_adapter": shares}, "recommendation": (metrics.get("recommendation") or {}).get("best")}


def bench_runs(corpus: str | Path, model: str, overrides: dict[str, dict[str, Any]], methods: list[str] | None = None, seed: int = 0) -> dict[str, Any]:
    """Wall seconds of ``run()`` on an empty cache, then of the unchanged run again, with per-stage timings."""
    from ..config import METHODS, build_config
    from ..corpus.load import corpus_defaults
    from ..pipeline.run import run

    cfg = build_config(str(corpus), "quick", corpus_defaults=corpus_defaults(str(corpus)), overrides=overrides, model=model, methods=list(methods or METHODS), seed=seed)
    out: dict[str, Any] = {"config": {"corpus": str(corpus), "preset": "quick", "overrides": overrides, "methods": cfg.methods, "model": model}}
    with fresh_home() as home:
        runs = home / "runs"
        for name in ("cold", "warm"):
            t0 = time.perf_counter()
            run_dir = run(cfg, runs, run_id=f"bench-{name}")
            wall = time.perf_counter() - t0
            out[name] = {"wall_s": wall, "stages_s": _stage_timings(run_dir), "cached_answer_share": _cached_share(run_dir), "results": _results(run_dir)}
        out["n_predictions"] = len((runs / "bench-warm" / "predictions.jsonl").read_text().splitlines())
    return out
