"""Freshness experiment: change N facts in a copy of the corpus and measure what each method needs to catch up.

RAG catches up by re-indexing (seconds); a LoRA adapter keeps answering the old facts until it is
retrained (minutes). ``run_freshness`` measures both on the changed facts: re-index time, accuracy
right after the edit and how often the OLD value comes back (stale), the old adapter's accuracy
before retraining, the retraining time and the accuracy after. The original corpus is never touched.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..evaluation.scoring import is_abstention, score_answer, strip_citations
from ..methods.registry import LORA, LORA_RECIPE, RAG, method_spec, methods_where
from ..storage import atomic_write_json
from ..textnorm import contains_tokens
from ..tuning.specs import adapter_recipe_used
from ..types import Question
from .fact_edits import FactEdit, FreshnessError, apply_edits_report, generate_edits

Progress = Callable[[str, float, str], None]  # (stage, fraction of that stage, message), as run.Progress


def classify(answer: str, new_aliases: list[str], old: str) -> str:
    """Classify one reply: "new" (the changed fact), "old" (stale), "abstained" or "other"."""
    if is_abstention(answer):
        return "abstained"
    is_new = score_answer(answer, new_aliases, True)["correct"]
    is_old = score_answer(answer, [old], True)["correct"]
    if is_new and is_old:  # a fuzzy match on both (e.g. dates one year apart): the verbatim one wins
        clean = strip_citations(answer)
        is_new = any(contains_tokens(clean, a) for a in new_aliases) or not contains_tokens(clean, old)
        is_old = not is_new
    return "new" if is_new else "old" if is_old else "other"


def _answer(strategy: Any, questions: list[Question], batch_size: int) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(questions), batch_size):
        out += strategy.answer(questions[start : start + batch_size])
    return out


def _outcomes(method: str, phase: str, answers: list[Any], questions: list[Question], old: dict[str, str]) -> tuple[dict[str, float], list[dict]]:
    """Accuracy on the changed facts and the stale rate (the old value returned), plus per-question rows."""
    rows = []
    for q, a in zip(questions, answers, strict=True):
        outcome = classify(a.text, q.answers, old[q.id])
        rows.append({"method": method, "phase": phase, "question_id": q.id, "split": q.split, "new": q.answers[0], "old": old[q.id], "answer": a.text, "outcome": outcome})
    n = max(len(rows), 1)
    return {"accuracy": sum(r["outcome"] == "new" for r in rows) / n, "stale": sum(r["outcome"] == "old" for r in rows) / n}, rows


def _summary(result: dict[str, Any]) -> str:
    parts = [f"After changing {result['n_edits']} facts:"]
    rag, lora = result.get(RAG), result.get(LORA)
    if rag:
        parts.append(f"RAG re-indexed in {rag['reindex_seconds']:.1f}s and then answered {rag['accuracy_after_edit']:.0%} of them correctly ({rag['stale_rate']:.0%} stale);")
    if lora:
        text = f"the LoRA adapter answered {lora['accuracy_before_retrain']:.0%} correctly before retraining ({lora['stale_rate_before']:.0%} still the old value)"
        if lora.get("accuracy_after_retrain") is not None:
            text += f", retraining took {lora['retrain_seconds']:.0f}s and lifted it to {lora['accuracy_after_retrain']:.0%}"
        elif lora.get("retrain_seconds") is not None:
            text += f"; retraining (not run) would take about {lora['retrain_seconds']:.0f}s, as long as the original training"
        parts.append(text + ".")
    text = " ".join(parts)
    return text[:-1] + "." if text.endswith(";") else text


def run_freshness(
    corpus_path: str | Path,
    config: RunConfig,
    edits: list[FactEdit] | None = None,
    n_edits: int = 10,
    progress: Progress | None = None,
    retrain: bool = True,
) -> dict[str, Any]:
    """Edit facts in a temporary copy and measure re-index/retrain time and accuracy on the changed facts.

    Measures RAG when ``rag``/``rag+lora`` is among ``config.methods``, LoRA when ``lora``/``rag+lora``
    is. The baseline index and adapter come from the shared cache when a run already built them.
    Per method the result carries ``retrain_seconds`` and (adapter methods) ``stale_accuracy``, the
    keys ``decision.recommend`` reads from ``metrics["freshness"]``.
    """
    from ..backends.loader import open_generator
    from ..corpus.load import load_corpus
    from ..methods.strategies import make_strategy
    from ..retrieval.embedding import Embedder
    from ..retrieval.index import get_or_build_index
    from ..tuning.lora import get_or_train_adapter

    def report(stage: str, fraction: float, message: str) -> None:
        if progress:
            progress(stage, fraction, message)

    t_start = time.perf_counter()
    methods = list(config.methods)
    use_rag = any(m in methods_where(needs_index=True, baseline=False) for m in methods)
    # only the closed-book adapter is retrained here: the methods that answer with it (rag+lora falls back to it), not IA3 or prompt tuning
    tuned = [m for m in methods_where(needs_adapter=True) if m in methods and adapter_recipe_used(m, (LORA_RECIPE,)) == LORA_RECIPE]
    use_lora = bool(tuned)
    if not (use_rag or use_lora):
        raise FreshnessError(f"methods {', '.join(methods)} hold no rag, lora or rag+lora; freshness compares re-indexing with retraining")
    report("corpus", 0.0, f"loading {corpus_path}")
    corpus = load_corpus(corpus_path, test_fraction=config.eval.test_fraction, seed=config.seed)
    if edits is None:
        edits = generate_edits(corpus, n_edits, config.seed)
        if len(edits) < n_edits:
            report("corpus", 0.5, f"only {len(edits)} facts can be edited automatically (asked for {n_edits}); add a patch file for more")
    result: dict[str, Any] = {"corpus": Path(corpus_path).name, "model": config.model, "preset": config.preset, "seed": config.seed}
    with tempfile.TemporaryDirectory(prefix="workbench-freshness-") as tmp:
        _, applied, skipped = apply_edits_report(corpus_path, edits, Path(tmp) / "edited")
        edited = load_corpus(Path(tmp) / "edited", test_fraction=config.eval.test_fraction, seed=config.seed)
        ids = list(dict.fromkeys(e.question_id for e in applied))
        by_id = {q.id: q for q in edited.questions}
        questions = [by_id[i] for i in ids]
        old = {e.question_id: e.old for e in applied}
        split_of = {q.id: q.split for q in questions}
        result.update(n_edits=len(applied), edits=[{**e.to_dict(), "split": split_of[e.question_id]} for e in applied], skipped=skipped)
        report("corpus", 1.0, f"{len(applied)} facts changed ({sum(s == 'train' for s in split_of.values())} from the train split), {len(skipped)} skipped")

        report("model", 0.0, f"loading generator {config.model}")
        generator = open_generator(config.model)
        embedder = Embedder(config.index.embedder)
        bs = config.generation.batch_size
        rows: list[dict] = []
        new_index = None
        if use_rag:
            report("index", 0.0, "re-indexing the edited corpus")
            t0 = time.perf_counter()
            new_index, info = get_or_build_index(edited.documents, config.split, config.index, embedder, progress=lambda m, f: report("index", f, m))
            # wall time of chunking + embedding + indexing + saving; the recorded build time on a cache hit
            reindex_s = float(info.get("build_seconds", 0.0)) if info.get("cache_hit") else time.perf_counter() - t0
            report("index", 1.0, f"re-indexed in {reindex_s:.1f}s")
            strategy = make_strategy(RAG, generator=generator, index=new_index, embedder=embedder, pool=edited.train, cfg=config, instruction=edited.instruction, language=edited.language)
            stats, r = _outcomes(RAG, "after_reindex", _answer(strategy, questions, bs), questions, old)
            rows += r
            result[RAG] = {
                "reindex_seconds": reindex_s, "reindex_cache_hit": bool(info.get("cache_hit")),
                "accuracy_after_edit": stats["accuracy"], "stale_rate": stats["stale"], "retrain_seconds": reindex_s,
            }  # fmt: skip
        if use_lora:
            def on_step(stage: str) -> Callable[[dict], None]:
                return lambda p: report(stage, p["step"] / max(1, p["total_steps"]), f"step {p['step']}/{p['total_steps']} loss {p['loss']:.3f}")

            acc: dict[tuple[str, str], dict[str, float]] = {}

            def answer_with(adapter_dir: Path, phase: str) -> None:
                adapted = generator.with_adapter(adapter_dir)
                for method in tuned:
                    report("answer", 0.0, f"{method} {phase.replace('_', ' ')}")
                    strategy = make_strategy(method, generator=generator, adapter_generator=adapted, index=new_index, embedder=embedder, pool=edited.train, cfg=config, instruction=edited.instruction, language=edited.language)
                    acc[(method, phase)], r = _outcomes(method, phase, _answer(strategy, questions, bs), questions, old)
                    rows.extend(r)

            report("train", 0.0, "baseline adapter (reused when a run already trained it)")
            old_dir, old_info = get_or_train_adapter(config.model, corpus, config.split, config.train, config.seed, embedder=embedder, on_progress=on_step("train"))
            answer_with(old_dir, "before_retrain")
            retrain_s = train_loop_s = float(old_info.get("train_seconds") or 0.0)
            if retrain:
                report("retrain", 0.0, "retraining the adapter on the edited corpus")
                t0 = time.perf_counter()
                new_dir, new_info = get_or_train_adapter(config.model, edited, config.split, config.train, config.seed, embedder=embedder, on_progress=on_step("retrain"))
                # wall time of data preparation + leakage check + training; the recorded training time on a cache hit
                retrain_s = float(new_info.get("train_seconds") or 0.0) if new_info.get("cache_hit") else time.perf_counter() - t0
                train_loop_s = float(new_info.get("train_seconds") or 0.0)
                report("retrain", 1.0, f"retrained in {retrain_s:.0f}s")
                answer_with(new_dir, "after_retrain")
            for method in dict.fromkeys(m for m, _ in acc):
                before, after = acc[(method, "before_retrain")], acc.get((method, "after_retrain"))
                result[method] = {
                    "accuracy_before_retrain": before["accuracy"], "stale_rate_before": before["stale"],
                    "retrain_seconds": retrain_s + (result[RAG]["reindex_seconds"] if method_spec(method).needs_index else 0.0),
                    "retrain_estimated": not retrain, "train_loop_seconds": train_loop_s, "baseline_cache_hit": bool(old_info.get("cache_hit")),
                    "accuracy_after_retrain": after["accuracy"] if after else None, "stale_rate_after": after["stale"] if after else None,
                    "stale_accuracy": before["accuracy"],
                }  # fmt: skip
    result["per_question"] = rows
    result["elapsed_seconds"] = round(time.perf_counter() - t_start, 1)
    result["summary"] = _summary(result)
    return result


def store_in_run(run_dir: str | Path, result: dict[str, Any]) -> None:
    """Put the result under metrics["freshness"] of a run folder (atomic) and refresh its recommendation."""
    from ..storage import FolderLock

    run_dir = Path(run_dir)
    with FolderLock(run_dir):
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        metrics["freshness"] = {k: v for k, v in result.items() if k != "per_question"}
        if metrics.get("recommendation"):
            from ..decision.recommend import recommend

            inputs = metrics["recommendation"].get("inputs") or {}
            metrics["recommendation"] = recommend(metrics, inputs.get("criteria"), inputs.get("weights"))
        atomic_write_json(run_dir / "metrics.json", metrics)
        atomic_write_json(run_dir / "freshness.json", result)
