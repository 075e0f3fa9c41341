"""Answers -> prediction rows: the per-question scores every aggregate is recomputed from."""

from __future__ import annotations

from typing import Any

from ..types import Answer, Corpus, Question

SCORE_KEYS = ("correct", "abstained", "hallucinated", "exact_match", "f1", "match", "why")  # match/why: the rule and its reason


def rescore_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same prediction rows with their scores recomputed by today's scorer (no generation needed)."""
    from .scoring import score_answer

    out = []
    for r in rows:
        s = score_answer(r["answer"], list(r.get("gold") or []), bool(r["answerable"]), r.get("question", ""))
        out.append({**r, **{k: s[k] for k in SCORE_KEYS}})
    return out


def score_predictions(
    answers: dict[str, list[Answer]],
    held_out: list[Question],
    corpus: Corpus,
    embedder: Any = None,
    generator: Any = None,
) -> list[dict[str, Any]]:
    """One row per (method, question) in the predictions.jsonl contract (DESIGN.md "Run folder")."""
    from .hallucination import corpus_support_text, groundedness, unsupported_content
    from .scoring import score_answer, semantic_similarity

    by_id = {q.id: q for q in held_out}
    corpus_norm = corpus_support_text([d.text for d in corpus.documents])
    rows: list[dict[str, Any]] = []
    for method, method_answers in answers.items():
        qs = [by_id[a.question_id] for a in method_answers]
        scores = [score_answer(a.text, q.answers, q.answerable, q.question) for a, q in zip(method_answers, qs, strict=True)]
        sims = (
            semantic_similarity([a.text for a in method_answers], [q.answers for q in qs], embedder)
            if embedder is not None
            else [None] * len(qs)
        )
        contexts = [[c.get("text", "") for c in a.contexts if "text" in c] for a in method_answers]
        grounded: list[float | None] = [None] * len(qs)
        if generator is not None and any(contexts):
            grounded = groundedness(generator, [q.question for q in qs], [a.text for a in method_answers], contexts)
        for a, q, s, sim, ctx, g in zip(method_answers, qs, scores, sims, contexts, grounded, strict=True):
            unsupported = None if s["abstained"] else unsupported_content(a.text, ctx, corpus_norm)
            rows.append(
                {
                    "method": method,
                    "question_id": q.id,
                    "question": q.question,
                    "gold": q.answers,
                    "answerable": q.answerable,
                    "split": q.split,
                    "qtype": q.meta.get("type", ""),
                    "answer": a.text,
                    "contexts": a.contexts,
                    **{k: s[k] for k in SCORE_KEYS},
                    "semantic_sim": sim,
                    "unsupported": (bool(unsupported) if unsupported is not None else None),
                    "unsupported_items": unsupported or [],
                    "groundedness": g,
                    "prompt_tokens": a.prompt_tokens,
                    "output_tokens": a.output_tokens,
                    "latency_s": a.latency_s,
                    "batch_wall_s": a.batch_wall_s,
                    "cached": bool(a.meta.get("cached", False)),
                }
            )
    return rows
