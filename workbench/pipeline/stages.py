"""The pipeline's public stages, shared by run, build, freshness and the bench: held-out selection, embedder, index, adapters.

Each stage reports progress as ``report(stage, fraction, message)`` and returns plain data; none writes a run folder.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..errors import WorkbenchError
from ..methods.registry import LORA, ZERO_SHOT, method_spec
from ..types import Corpus, Question


class RunError(WorkbenchError, RuntimeError):
    """The run could not complete; the message is one line saying why."""


class Cancelled(RunError):
    """The user asked the run to stop (a CANCEL file in the run folder)."""


def stage_reporter(folder: Path, status: Any, progress: Callable[[str, float, str], None] | None = None) -> Callable[[str, float, str], None]:
    """``report(stage, fraction, message)`` for a job folder: stops with Cancelled once a CANCEL file appears, else updates
    status.json and passes the step on to ``progress``."""

    def report(stage: str, fraction: float, message: str) -> None:
        if (folder / "CANCEL").exists():
            raise Cancelled("cancelled by the user")
        status.update(stage=stage, progress=fraction, message=message)
        if progress:
            progress(stage, fraction, message)

    return report


def select_held_out(corpus: Corpus, max_questions: int, seed: int) -> list[Question]:
    """The test split, or a seeded subsample of it keeping the answerable/unanswerable mix."""
    test = corpus.test
    if not test:
        raise RunError(f"{corpus.root}: no held-out (test) questions; add 'split': 'test' to some questions or lower test_fraction")
    if not max_questions or max_questions >= len(test):
        return test
    rng = random.Random(seed)
    picked: list[Question] = []
    groups = [[q for q in test if q.answerable], [q for q in test if not q.answerable]]
    for group in groups:
        share = round(max_questions * len(group) / len(test))
        picked += rng.sample(group, min(share, len(group)))
    order = {q.id: i for i, q in enumerate(test)}
    return sorted(picked[:max_questions], key=lambda q: order[q.id])


def one_line(exc: BaseException) -> str:
    """An error as the one line a run's status and the CLI show."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if isinstance(exc, (RunError, ValueError, OSError, RuntimeError)) and str(exc) else f"{type(exc).__name__}: {text}"


def open_embedder(config: RunConfig) -> Any:
    """The embedder every stage shares (index, few-shot neighbours, twin grouping, leakage checks)."""
    from ..retrieval.embedding import Embedder

    return Embedder(config.index.embedder)


def prepare_index(config: RunConfig, corpus: Corpus, held_out: list[Question], embedder: Any, report: Callable[[str, float, str], None]) -> tuple[Any, dict, dict]:
    """Stage "index": the cached (or newly built) retrieval index and its retrieval quality on the held-out questions."""
    from ..retrieval.index import get_or_build_index
    from ..retrieval.quality import retrieval_quality

    report("index", 0.0, "chunking and embedding the corpus")
    index, info = get_or_build_index(
        corpus.documents, config.split, config.index, embedder, progress=lambda m, f: report("index", f, m)
    )
    quality = retrieval_quality(index, held_out, config.retrieval, embedder)
    hit = "reused cached index" if info.get("cache_hit") else f"built in {info['build_seconds']:.1f}s"
    report("index", 1.0, f"{info['n_chunks']} chunks, {hit}")
    return index, quality, info


def prepare_adapters(
    config: RunConfig,
    corpus: Corpus,
    generator: Any,
    embedder: Any,
    report: Callable[[str, float, str], None],
    timings: dict[str, float],
    on_step: Callable[[dict], None] | None = None,
    held_out: list[Question] | None = None,
    index: Any = None,
    methods: tuple[str, ...] = (LORA,),
) -> tuple[dict[str, Any], dict]:
    """Train (or reuse) one adapter per recipe the tuned ``methods`` answer with; returns ({recipe: generator}, info).

    ``info`` is the first adapter's record (the closed-book LoRA one when it is trained) plus every adapter's under
    ``info["recipes"]``, a note per adapter not trained (``info["<recipe>_skipped"]``) and the train-split probe.
    """
    from ..tuning.lora import get_or_train_adapter
    from ..tuning.lora_data import dev_slice
    from ..tuning.packing import LoraDataError
    from ..tuning.specs import plan_adapters, recipe_methods, tuning_spec
    from ..tuning.tuned import data_counts, learning_curve

    t0 = time.perf_counter()
    report("train", 0.0, "preparing the training data (chunks, generated Q/A, train Q/A)")

    def on_progress(p: dict) -> None:
        if on_step:
            on_step(p)
        frac = p["step"] / max(1, p["total_steps"])
        report("train", frac, f"step {p['step']}/{p['total_steps']} loss {p['loss']:.3f} {p['tokens_per_s']:.0f} tok/s eta {p['eta_s']:.0f}s")

    held_out = held_out if held_out is not None else corpus.test
    dev = dev_slice(corpus, config.train.dev_fraction, config.seed)
    names, skipped = plan_adapters(methods, config.train, corpus.kind, has_index=index is not None)
    out: dict[str, Any] = {"recipes": {}}
    for name, why in skipped.items():
        out[f"{name}_skipped"] = why
        report("train", 0.0, why)
    generators: dict[str, Any] = {}
    for name in names:
        spec = tuning_spec(name)
        cfg = spec.settings(config.train)
        method = recipe_methods(name)[0]  # the method its learning curve is drawn for
        try:
            on_data = lambda m, f, method=method: report("train", f, f"{method}: writing Q/A from every chunk, {m}")  # noqa: E731
            adapter_dir, info = get_or_train_adapter(config.model, corpus, config.split, cfg, config.seed, embedder=embedder, on_progress=on_progress, generator=generator, on_data=on_data)
        except LoraDataError as exc:
            if not spec.fallback:
                raise
            out[f"{name}_skipped"] = f"no {spec.label} adapter, {', '.join(recipe_methods(name, methods))} uses the {tuning_spec(spec.fallback).label} one: {exc}"
            report("train", 1.0, out[f"{name}_skipped"])
            continue
        rag = method_spec(method).needs_index  # rag prompts cost ~10x: a smaller curve
        n_held = min(6, config.train.curve_questions) if rag else config.train.curve_questions
        gen, curve, step = learning_curve(method, adapter_dir, config, corpus, generator, held_out, dev[:6] if rag else dev, report, index=index, embedder=embedder, n_held=n_held)
        generators[name] = gen
        info = {**info, "recipe": cfg.recipe, "method": method, "learning_curve": curve, "picked_step": step, "data_counts": data_counts(info.get("data", {}), len(corpus.documents))}
        info["build_seconds"] = round(info.get("train_seconds", 0.0) + (info.get("data", {}).get("generation", {}).get("seconds") or 0.0), 2)
        out["recipes"][name] = info
        report("train", 1.0, f"{method}: reused cached adapter" if info.get("cache_hit") else f"{method}: trained in {info.get('train_seconds', 0):.0f}s, picked step {step}")
    timings["train_s"] = time.perf_counter() - t0
    first = next(iter(out["recipes"]))
    main = out["recipes"][first]
    history = [{"step": s, "loss": loss} for s, loss in main.get("loss_curve", [])]
    probe = train_split_probe(config, corpus, generator, generators[first], report, method=main["method"])
    return generators, {**main, **out, "loss_history": history, "train_split_probe": probe}


def train_split_probe(config: RunConfig, corpus: Corpus, generator: Any, adapter_generator: Any, report: Callable[[str, float, str], None], n: int = 20, method: str = LORA) -> dict:
    """Proof the adapter learned: accuracy on train-split questions it was taught, base model vs ``method``'s adapter."""
    from ..evaluation.scoring import score_answer
    from ..methods.strategies import make_strategy
    from ..tuning.lora_data import dev_slice

    dev = {q.id for q in dev_slice(corpus, config.train.dev_fraction, config.seed)}  # kept out of training: not taught
    taught = [q for q in corpus.train if q.answerable and q.id not in dev][:n]
    if not taught:
        return {}
    report("train", 1.0, f"checking what the adapter learned on {len(taught)} train questions")
    out: dict[str, Any] = {"n": len(taught)}
    for name, answering in (("base", method_spec(method).base_method or ZERO_SHOT), ("adapter", method)):
        strategy = make_strategy(answering, generator=generator, adapter_generator=adapter_generator, cfg=config, instruction=corpus.instruction, language=corpus.language)
        answers = strategy.answer(taught)
        out[f"{name}_accuracy"] = sum(score_answer(a.text, q.answers, True, q.question)["correct"] for a, q in zip(answers, taught, strict=True)) / len(taught)
    return out
