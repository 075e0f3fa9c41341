"""Baselines that expose a method which only learned the prior, and how much of RAG's loss is retrieval.

- ``prior``: answers every held-out question with the most frequent reply the train split teaches.
  Rule: each train question teaches its first gold alias, or "I don't know" when unanswerable (the
  same reply few-shot examples and LoRA Q/A use); replies are counted after SQuAD normalisation and
  the most frequent wins, ties going to the one seen first in the train split. So when unanswerable
  questions are the largest group, the prior abstains everywhere. No generation, no cost.
- ``oracle-passage``: the rag prompt, but the passages are the gold documents' best chunks (up to
  ``retrieval.top_k``: chunks containing a gold alias first, then those sharing most words with the
  question). Questions without gold sources (unanswerable ones) get the ordinary retrieved chunks.
  Only offered when questions name their ``sources`` and a retrieval index is built.

Both are marked ``baseline: true`` in metrics.json and are never recommended.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..decision.eligibility import is_baseline
from ..textnorm import contains_tokens, normalize_answer, tokens
from ..types import Answer, Question, Retrieved
from .few_shot import example_answer
from .prompt_strategy import StrategyError
from .rag import Rag
from .registry import ORACLE, PRIOR, MethodContext, baseline_methods, methods_where


def prior_reply(train: list[Question], language: str = "en") -> str:
    """The most frequent reply the train split teaches (see the module doc for the exact rule); abstentions in ``language``."""
    replies = [example_answer(q, language) for q in train]
    if not replies:
        return example_answer(Question("", "", [], False), language)
    counts = Counter(normalize_answer(r) for r in replies)
    best = max(counts.values())
    return next(r for r in replies if counts[normalize_answer(r)] == best)


class Prior:
    """Answers the prior reply to every question, with no model."""

    name = PRIOR

    def __init__(self, pool: list[Question], language: str = "en"):
        leaked = [q for q in pool if q.split != "train"]
        if leaked:
            raise StrategyError(f"prior baseline pool question {leaked[0].id!r} is not in the train split; use train questions only")
        self.reply = prior_reply(pool, language)
        self.support = sum(normalize_answer(example_answer(q, language)) == normalize_answer(self.reply) for q in pool)
        self.n_train = len(pool)

    def answer(self, questions: list[Question]) -> list[Answer]:
        meta = {"prior_reply": self.reply, "prior_support": self.support, "n_train": self.n_train, "cached": False}
        return [Answer(self.name, q.id, self.reply, [], 0, 0, 0.0, 0.0, dict(meta)) for q in questions]


def _overlap(question: str, text: str) -> int:
    q = {t for t in tokens(question) if len(t) > 2}
    return len(q & set(tokens(text)))


class OraclePassage(Rag):
    """rag with the gold documents' best chunks as the passages (retrieval taken out of the comparison)."""

    name = ORACLE

    def _hits(self, questions: list[Question]) -> list[list[Retrieved]]:
        chunks = getattr(self.index, "chunks", None)
        if chunks is None:
            raise StrategyError("oracle-passage needs an index that exposes its chunks; build the retrieval index first")
        by_doc: dict[str, list[Any]] = {}
        for c in chunks:
            by_doc.setdefault(c.doc_id, []).append(c)
        k = self.retrieval_cfg.top_k
        no_source = [q for q in questions if not any(s in by_doc for s in q.sources)]
        retrieved = dict(zip((q.id for q in no_source), super()._hits(no_source) if no_source else [], strict=True))
        out = []
        for q in questions:
            if q.id in retrieved:
                out.append(retrieved[q.id])
                continue
            pool = [c for s in q.sources for c in by_doc.get(s, [])]
            ranked = sorted(
                pool, key=lambda c: (-any(contains_tokens(c.text, a) for a in q.answers), -_overlap(q.question, c.text), c.chunk_id)
            )[:k]
            out.append([Retrieved(c.chunk_id, c.doc_id, c.text, 1.0, rank) for rank, c in enumerate(ranked, 1)])
        return out


def baselines_for(methods: list[str], held_out: list[Question]) -> tuple[list[str], list[str]]:
    """The baselines a run adds to ``methods``, and a note for each one left out and why."""
    add, notes = [], []
    if PRIOR not in methods:
        add.append(PRIOR)
    if ORACLE not in methods:
        if not any(m in methods_where(needs_index=True, baseline=False) for m in methods):
            notes.append("oracle-passage skipped: no retrieval method is compared")
        elif not any(q.sources for q in held_out if q.answerable):
            notes.append("oracle-passage skipped: the held-out questions name no gold sources")
        else:
            add.append(ORACLE)
    return add, notes


def make_prior(ctx: MethodContext) -> Prior:
    return Prior(ctx.pool, ctx.common.get("language", "en"))


def make_oracle_passage(ctx: MethodContext) -> OraclePassage:
    return OraclePassage(ctx.generator, ctx.index, ctx.cfg.retrieval, ctx.embedder, **ctx.common)


def mark_baselines(metrics: dict, notes: list[str]) -> None:
    """Mark baseline rows ``baseline: true`` and every other method's ``no_better_than_prior``; record the notes."""
    methods = metrics["methods"]
    for name, m in methods.items():
        m["baseline"] = name in baseline_methods()
    for name, m in methods.items():
        if not m["baseline"] and PRIOR in methods:
            m["no_better_than_prior"] = no_better_than_prior(metrics, name)
    metrics["baselines"] = {"methods": [b for b in baseline_methods() if b in methods], "notes": list(notes)}


def no_better_than_prior(metrics: dict, method: str) -> bool:
    """True when a (non-baseline) method's accuracy lies within or below the prior's 95% interval."""
    methods = metrics.get("methods") or {}
    prior, m = methods.get(PRIOR) or {}, methods.get(method) or {}
    ci, acc = prior.get("accuracy_ci"), m.get("accuracy")
    if method == PRIOR or is_baseline(metrics, method) or not ci or None in ci or acc is None:
        return False
    return acc <= ci[1]


def prior_flag_text(metrics: dict, method: str) -> str:
    """A short flag for tables ("no better than the prior"), or "" when the method beats the prior's interval."""
    if not no_better_than_prior(metrics, method):
        return ""
    ci = metrics["methods"][PRIOR]["accuracy_ci"]
    return f"no better than the prior (its 95% CI {ci[0]:.0%}-{ci[1]:.0%})"
