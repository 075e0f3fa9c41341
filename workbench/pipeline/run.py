"""The whole pipeline: corpus -> index / adapter -> every method on held-out questions -> scores -> run folder."""

from __future__ import annotations

import contextlib
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..evaluation.cost import RssSampler
from ..methods.registry import baseline_methods, method_spec, methods_where
from ..paths import default_runs_dir
from ..seeding import seed_everything
from ..storage import FolderLock, atomic_write_json, atomic_write_jsonl
from ..tuning.specs import adapter_recipe_used
from ..tuning.tuned import tuned_summary
from ..types import Answer, Corpus
from .runstore import RunStatus, new_run_id, prepare_run_folder, write_meta
from .stages import Cancelled, RunError, one_line, open_embedder, prepare_adapters, prepare_index, select_held_out, stage_reporter

Progress = Callable[[str, float, str], None]  # (stage, fraction of that stage, message)


def run(
    config: RunConfig,
    out_dir: str | Path | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Execute the comparison and write the run folder; returns its path. Raises RunError on failure."""
    out_dir = Path(out_dir) if out_dir else default_runs_dir()
    run_id = run_id or new_run_id(config)
    run_dir = prepare_run_folder(out_dir, run_id)
    lock = FolderLock(run_dir).acquire()
    status = RunStatus(run_dir)
    timings: dict[str, float] = {}
    try:
        if (run_dir / "metrics.json").exists() and status.read().get("state") == "done":
            raise RunError(f"{run_dir}: a finished run is already there; choose another run id")
        (run_dir / "CANCEL").unlink(missing_ok=True)
        atomic_write_json(run_dir / "config.json", {**config.to_dict(), "run_id": run_id})
        status.update(state="running", stage="corpus", progress=0.0, message="starting", error=None)
        write_meta(run_dir, timings)
        report = stage_reporter(run_dir, status, progress)
        result = _pipeline(config, run_dir, report, timings)
        atomic_write_jsonl(run_dir / "predictions.jsonl", result["predictions"])
        atomic_write_json(run_dir / "metrics.json", result["metrics"])
        cfg = {**config.to_dict(), "run_id": run_id, **result["fingerprints"]}
        atomic_write_json(run_dir / "config.json", cfg)
        write_meta(run_dir, timings, {"reproducibility": result["reproducibility"]})
        with contextlib.suppress(OSError, ValueError, TypeError):  # speed figures for the next run's estimate; never fails a run
            from .estimate import record_speed

            record_speed(config, result["metrics"], timings, result["predictions"])
        status.update(state="done", stage="done", progress=1.0, message="finished", error=None)
        return run_dir
    except Cancelled as exc:
        status.update(state="cancelled", error=str(exc), message="cancelled")
        write_meta(run_dir, timings)
        raise
    except BaseException as exc:
        line = one_line(exc)
        with contextlib.suppress(OSError):  # a full disk must not hide the original error
            status.update(state="failed", error=line, message="failed")
        with contextlib.suppress(OSError):
            (run_dir / "error.log").write_text(traceback.format_exc())
            write_meta(run_dir, timings)
        if isinstance(exc, RunError):
            raise
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        raise RunError(line) from exc
    finally:
        lock.release()


class Heartbeat:
    """While a batch is answered, call ``tick(fraction, seconds)`` every ``every_s`` so the status moves between batches.

    ``fraction`` is the time spent over ``expected_s`` (the last batch's duration), eased so it never reaches 1; with no
    expectation yet, it approaches 1 with a one-minute time constant. Errors in ``tick`` are ignored (a status write).
    """

    def __init__(self, tick: Callable[[float, float], None], expected_s: float | None, every_s: float = 2.0):
        import threading

        self.tick, self.expected_s, self.every_s = tick, expected_s, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import math

        t0 = time.perf_counter()
        while not self._stop.wait(self.every_s):
            secs = time.perf_counter() - t0
            frac = min(0.95, secs / self.expected_s) if self.expected_s else 1 - math.exp(-secs / 60.0)
            with contextlib.suppress(Exception):
                self.tick(frac, secs)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _pipeline(config: RunConfig, run_dir: Path, report: Callable[[str, float, str], None], timings: dict[str, float]) -> dict[str, Any]:
    status = RunStatus(run_dir)  # the answering heartbeat writes here directly (a cancel is checked between batches)
    from ..backends.loader import open_generator
    from ..backends.quantize import PrecisionCopies
    from ..corpus.load import corpus_fingerprint, load_corpus
    from ..evaluation import aggregate
    from ..evaluation.latency import ProbeTimings, latency_probe, probe_sample
    from ..evaluation.predictions import score_predictions
    from ..methods.baselines import baselines_for, mark_baselines
    from ..methods.strategies import make_strategy

    seed_everything(config.seed)
    methods = list(config.methods)

    t0 = time.perf_counter()
    report("corpus", 0.0, f"loading {config.corpus}")
    warnings: list[str] = []

    def corpus_progress(message: str, fraction: float) -> None:
        if message.startswith("skipped "):  # skipped files and links: a warning in the log, the run folder and the CLI
            warnings.append(message.removeprefix("skipped "))
            report("corpus", fraction, f"warning: {warnings[-1]}")

    embedder = open_embedder(config)  # also groups paraphrased twin questions before the split
    corpus = load_corpus(config.corpus, test_fraction=config.eval.test_fraction, seed=config.seed, embedder=embedder, progress=corpus_progress)
    held_out = select_held_out(corpus, config.eval.max_questions, config.seed)
    timings["corpus_s"] = time.perf_counter() - t0
    twins = corpus.twins
    report("corpus", 1.0, f"{len(corpus.documents)} documents, {len(corpus.train)} train / {len(held_out)} held-out questions; {twins.get('grouped_questions', 0)} twins grouped, {twins.get('withheld', 0)} withheld")
    baseline_notes: list[str] = []
    if config.eval.baselines:
        added, baseline_notes = baselines_for(methods, held_out)
        methods += added

    t0 = time.perf_counter()
    report("model", 0.0, f"loading generator {config.model}")
    generator = open_generator(config.model, progress=lambda m, f: report("model", f, m))
    timings["model_s"] = time.perf_counter() - t0

    costs: dict[str, dict[str, float]] = {m: {"build_seconds": 0.0, "artifact_mb": 0.0} for m in methods}
    extra: dict[str, Any] = {}
    index = None
    if any(method_spec(m).needs_index for m in methods):
        index, extra["retrieval"], info = prepare_index(config, corpus, held_out, embedder, report)
        timings["index_s"] = info.get("load_seconds", 0.0) + (0.0 if info.get("cache_hit") else info.get("build_seconds", 0.0))
        for m in methods_where(needs_index=True):
            if m in costs:
                costs[m]["build_seconds"] += info["build_seconds"]
                costs[m]["artifact_mb"] += info.get("artifact_mb", 0.0)
        extra["index"] = info

    if any(method_spec(m).needs_examples for m in methods):
        from ..methods.few_shot import few_shot_leakage

        extra["few_shot"] = {"pool": len(corpus.train), "leakage": few_shot_leakage(corpus.train, held_out, embedder)}

    adapters: dict[str, Any] = {}  # recipe -> generator carrying that adapter
    if any(method_spec(m).needs_adapter for m in methods):
        adapters, tinfo = prepare_adapters(config, corpus, generator, embedder, report, timings, held_out=held_out, index=index, methods=tuple(methods))
        extra["train"] = tinfo
        extra["learning_curve"] = {r["method"]: r["learning_curve"] for r in tinfo["recipes"].values()}
        tinfo["methods"] = {}
        for m in methods_where(needs_adapter=True):
            if m in costs:
                recipe = adapter_recipe_used(m, adapters)
                used = tinfo["recipes"].get(recipe, {})
                costs[m]["build_seconds"] += used.get("build_seconds", used.get("train_seconds", 0.0))
                costs[m]["artifact_mb"] += used.get("artifact_mb", 0.0)
                tinfo["methods"][m] = tuned_summary(recipe, used)

    answers: dict[str, list[Answer]] = {}
    probes: dict[str, dict[str, float]] = {}
    probes_reused: dict[str, int] = {}
    probes_retimed: dict[str, list[str]] = {}
    probe_timings = ProbeTimings() if os.environ.get("WORKBENCH_NO_ANSWER_CACHE") != "1" else None
    probe_qs = probe_sample(held_out, config.eval.latency_probe_n, config.seed)
    batch_s: float | None = None  # seconds the last full batch took: paces the heartbeat of the next one
    copies = PrecisionCopies()  # quantized copies for the <method>@int8 rows, made once each
    t0 = time.perf_counter()
    for mi, method in enumerate(methods):
        answering, adapter_answering = generator, adapters.get(adapter_recipe_used(method, adapters))
        precision = method_spec(method).precision
        if precision:
            report("answer", mi / len(methods), f"{method}: quantizing the model to {precision}")
            answering, secs = copies.get(generator, precision)
            if adapter_answering is not None:
                adapter_answering, more = copies.get(adapter_answering, precision)
                secs += more
            costs[method]["build_seconds"] += secs
            costs[method]["quantize_seconds"] = round(secs, 4)  # a tiny model quantizes in milliseconds
        if not method_spec(method).baseline:  # the prior answers with no model
            costs[method]["model_mb"] = copies.model_mb(adapter_answering if adapter_answering is not None else answering)
        strategy = make_strategy(
            method,
            generator=answering,
            adapter_generator=adapter_answering,
            index=index,
            embedder=embedder,
            pool=corpus.train,
            cfg=config,
            instruction=corpus.instruction,
            language=corpus.language,
        )
        out: list[Answer] = []
        bs = config.generation.batch_size
        with RssSampler() as rss:
            for start in range(0, len(held_out), bs):
                lo, hi = (mi + start / len(held_out)) / len(methods), (mi + 0.9 * min(start + bs, len(held_out)) / len(held_out)) / len(methods)
                what = f"{method}: question {start + 1}-{min(start + bs, len(held_out))} of {len(held_out)}"
                report("answer", lo, what)
                t_batch = time.perf_counter()
                with Heartbeat(lambda f, secs, lo=lo, hi=hi, what=what: status.update(stage="answer", progress=lo + (hi - lo) * f, message=f"{what} · {secs:.0f} s into this batch"), batch_s):
                    out += strategy.answer(held_out[start : start + bs])
                batch_s = (time.perf_counter() - t_batch) * max(1.0, bs / max(1, min(bs, len(held_out) - start)))
            if method not in baseline_methods():  # reference rows are not served, so their latency is not measured
                probes[method], probes_reused[method], probes_retimed[method] = latency_probe(
                    strategy,
                    probe_qs,
                    lambda i, n, m=method, k=mi: report("answer", (k + 0.9 + 0.1 * i / n) / len(methods), f"{m}: latency probe, question {i + 1} of {n} answered alone"),
                    answers={a.question_id: a for a in out},
                    timings=probe_timings,
                )
        costs[method]["peak_rss_mb"] = rss.peak
        answers[method] = out
    timings["answer_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    report("score", 0.0, "scoring answers")
    if config.eval.groundedness:
        from ..methods.prompt_strategy import default_cache

        generator.judge_cache = default_cache()  # an unchanged re-run does not judge the same answers again
    predictions = score_predictions(answers, held_out, corpus, embedder=embedder, generator=generator if config.eval.groundedness else None)
    for row in predictions:  # per-query seconds when answered alone (latency probe); None outside the sample
        row["latency_probe_s"] = probes.get(row["method"], {}).get(row["question_id"])
    timings["score_s"] = time.perf_counter() - t0

    report("aggregate", 0.0, "aggregating")
    metrics = aggregate.aggregate(predictions, costs, config.eval.usd_per_hour, config.eval.bootstrap_samples, config.seed)
    metrics.update(extra)
    mark_baselines(metrics, baseline_notes)
    for method, tuned in (metrics.get("train") or {}).get("methods", {}).items():  # the training's share of the build cost
        tuned["usd_build"] = metrics["methods"].get(method, {}).get("usd_build")
    for method, n in probes_reused.items():  # timings of unchanged answers measured alone by an earlier run on this machine
        metrics["methods"].get(method, {})["latency_probe_reused"] = n
    for method, ids in probes_retimed.items():  # outliers answered twice, the lower time kept
        metrics["methods"].get(method, {})["latency_probe_retimed"] = len(ids)
    metrics["usd_per_hour"] = config.eval.usd_per_hour
    metrics["splits"] = twins
    metrics["seen"] = what_each_method_saw(methods, corpus, extra)
    metrics["corpus"] = {
        "name": Path(config.corpus).name,
        "title": corpus.title,
        "kind": corpus.kind,
        "language": corpus.language,
        "n_docs": len(corpus.documents),
        "n_questions": len(corpus.questions),
        "n_train": len(corpus.train),
        "n_test": len(corpus.test),
        "n_test_evaluated": len(held_out),
        "warnings": warnings,
    }
    try:
        from ..decision.recommend import recommend

        metrics["recommendation"] = recommend(metrics)
    except ImportError:
        pass
    fingerprints = {"corpus_fingerprint": corpus_fingerprint(corpus), "model_fingerprint": generator.fingerprint}
    return {"predictions": predictions, "metrics": metrics, "fingerprints": fingerprints, "reproducibility": reproducibility(config, generator)}


def reproducibility(config: RunConfig, generator: Any) -> dict[str, Any]:
    """What fixes the predictions (seed, greedy decoding, prompts) and what can still move them on another setup."""
    import torch

    return {
        "seed": config.seed,
        "decoding": "greedy" if config.generation.temperature == 0 else f"sampled at temperature {config.generation.temperature}, seeded per batch",
        "batch_size": config.generation.batch_size,
        "batch_composition": "prompts sorted by token length, then cut into batches of batch_size (left padding)",
        "dtype": str(getattr(generator, "dtype", None) or getattr(getattr(generator, "model", None), "dtype", "n/a")).replace("torch.", ""),
        "device": str(getattr(generator, "device", "n/a")),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "answer_cache": "off" if os.environ.get("WORKBENCH_NO_ANSWER_CACHE") == "1" else "on (a cached answer is the one first generated)",
        "may_vary": "same inputs, seed and machine give the same predictions; another thread count, batch size or batch composition, dtype, "
        "CPU instruction set (AVX-512/AMX kernels) or GPU can change floating-point sums and so, rarely, a greedy answer",
    }


def what_each_method_saw(methods: list[str], corpus: Corpus, extra: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per method, what it learned from or looked at: documents indexed or trained on, Q/A, synthetic pairs, pool, withheld twins."""
    withheld = int(corpus.twins.get("withheld", 0))
    index = extra.get("index", {})
    out: dict[str, dict[str, Any]] = {}
    for m in methods:
        seen: dict[str, Any] = {"withheld_twins": withheld}
        spec = method_spec(m)
        if spec.needs_examples:
            seen["few_shot_pool"] = extra.get("few_shot", {}).get("pool", len(corpus.train))
        if spec.needs_index and not spec.baseline:
            seen.update(documents_indexed=len(corpus.documents), chunks_indexed=index.get("n_chunks"))
        recipes = extra.get("train", {}).get("recipes", {})
        # without its own adapter (RAFT skipped) a method answers with its recipe's fallback, as adapter_recipe_used says
        tuned = recipes.get(adapter_recipe_used(m, recipes) or "") if spec.needs_adapter else None
        if tuned:
            seen["train_data"] = tuned.get("data_counts", {})
        out[m] = seen
    return out
