"""The tuned methods' adapters: one per recipe (closed-book for `lora`, RAFT for `rag+lora`, IA3, prompt tuning), each with its learning curve.

Every adapter keeps snapshots at points of its training budget. At each point the adapter answers
a dev slice of the *train* split (kept out of its training data) and a subset of the held-out
questions; the dev slice alone picks the point that is used (best dev accuracy, the later point on
a tie), the held-out figures only draw the learning curve.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..backends.answer_cache import AnswerCache
from ..config import RunConfig
from ..paths import cache_dir
from ..types import Corpus, Question

Report = Callable[[str, float, str], None]


def data_counts(stats: dict[str, Any], n_docs: int) -> dict[str, Any]:
    """What an adapter saw, per part of its training data (train.data in metrics.json)."""
    ex = stats.get("examples", {})
    gen = stats.get("generation", {})
    return {
        "documents": n_docs if (ex.get("chunks") or ex.get("generated_qa") or ex.get("raft")) else 0,
        "chunks": ex.get("chunks", 0),
        "generated_qa": ex.get("generated_qa", 0),
        "train_qa": ex.get("qa", 0),
        "raft_examples": ex.get("raft", 0),
        "synthetic_qa": ex.get("synthetic_qa", 0),
        "paraphrases": ex.get("paraphrases", 0),
        "dev_questions": stats.get("dev_questions", 0),
        "generated_kept": gen.get("kept"),
        "generated_asked": gen.get("asked"),
        "generated_answer_not_in_chunk": gen.get("answer_not_in_chunk"),
        "generated_answer_in_question": gen.get("answer_in_question"),
        "generated_dropped_leak": stats.get("generated_dropped_leak", 0),
        "trained_tokens": stats.get("n_trained_tokens"),
        "tokens": stats.get("n_tokens"),
    }


TUNED_KEYS = ("tuner", "learning_rate", "virtual_tokens", "trainable_params", "artifact_mb", "train_seconds", "build_seconds", "steps", "tokens_per_s", "loss_first", "final_loss", "picked_step", "cache_hit")


def tuned_summary(recipe: str, info: dict[str, Any]) -> dict[str, Any]:
    """What a tuned method's adapter cost and holds (metrics["train"]["methods"][method]): its recipe, peft type,
    trainable parameters, size, training seconds, steps and losses, from that recipe's record."""
    return {"recipe": recipe, **{k: info.get(k) for k in TUNED_KEYS}}


def _accuracy(strategy: Any, questions: list[Question]) -> tuple[float | None, int]:
    from ..evaluation.scoring import score_answer

    qs = [q for q in questions if q.answerable and q.answers]
    if not qs:
        return None, 0
    answers = strategy.answer(qs)
    return sum(bool(score_answer(a.text, q.answers, True)["correct"]) for a, q in zip(answers, qs, strict=True)) / len(qs), len(qs)


def _elapsed_at(log_path: Path) -> dict[int, float]:
    out: dict[int, float] = {}
    if log_path.is_file():
        for line in log_path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line) if line.strip() else {}
            if "loss" in row:
                out[int(row["step"])] = round(float(row["elapsed_s"]), 1)
    return out


def learning_curve(
    method: str,
    adapter_dir: Path,
    config: RunConfig,
    corpus: Corpus,
    generator: Any,
    held_out: list[Question],
    dev: list[Question],
    report: Report,
    index: Any = None,
    embedder: Any = None,
    n_held: int = 12,
) -> tuple[Any, list[dict[str, Any]], int]:
    """(generator carrying the picked point, the curve, the picked step) for one adapter."""
    from ..backends.snapshots import AdapterSnapshots
    from ..methods.registry import method_spec
    from ..methods.strategies import make_strategy
    from .checkpoints import snapshots

    # Its own answer cache: an unchanged rerun redraws the curve from it, and a cold run's evaluation
    # is not served answers the curve happened to compute first.
    store = None if os.environ.get("WORKBENCH_NO_ANSWER_CACHE") == "1" else AnswerCache(cache_dir("answers") / "learning_curve.sqlite")
    points = snapshots(adapter_dir)
    held = [q for q in held_out if q.answerable and q.answers][:n_held]
    elapsed = _elapsed_at(adapter_dir.parent / "train_log.jsonl")
    base = make_strategy(method_spec(method).base_method, generator=generator, index=index, embedder=embedder, cfg=config, instruction=corpus.instruction, cache=store or False, language=corpus.language)
    dev0, n_dev0 = _accuracy(base, dev)
    held0, n_h0 = _accuracy(base, held)
    curve = [{"step": 0, "train_seconds": 0.0, "dev_accuracy": dev0, "n_dev": n_dev0, "held_out_accuracy": held0, "n_held_out": n_h0, "base": True}]
    snapshots_of = AdapterSnapshots(generator, adapter_dir)  # one adapter model, loaded only if an answer is not cached
    best = None
    for k, (step, folder) in enumerate(points):
        report("train", k / len(points), f"{method}: learning curve, step {step} ({len(dev)} dev, {len(held)} held-out questions)")
        gen = snapshots_of.generator(folder)
        strategy = make_strategy(method, generator=generator, adapter_generator=gen, index=index, embedder=embedder, cfg=config, instruction=corpus.instruction, cache=store or False, language=corpus.language)
        dev_acc, n_dev = _accuracy(strategy, dev)
        held_acc, n_h = _accuracy(strategy, held)
        curve.append({"step": step, "train_seconds": elapsed.get(step), "dev_accuracy": dev_acc, "n_dev": n_dev, "held_out_accuracy": held_acc, "n_held_out": n_h})
        if best is None or (dev_acc or 0.0) >= (curve[best + 1]["dev_accuracy"] or 0.0):
            best = k
    step, folder = points[best if best is not None else -1]
    for row in curve:
        row["picked"] = row["step"] == step and not row.get("base")
    return snapshots_of.generator(folder), curve, step
