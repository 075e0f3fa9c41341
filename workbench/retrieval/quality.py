"""Retrieval quality on questions that name their source documents: recall@k and MRR."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..config import RetrievalConfig
from ..types import Question


def retrieval_quality(
    index: Any,
    questions: list[Question],
    cfg: RetrievalConfig,
    embedder: Any,
    ks: tuple[int, ...] = (1, 3, 5, 10),
) -> dict[str, float]:
    """``recall@k`` (share of a question's source docs among the top-k chunks' docs, averaged) and ``mrr``.

    Only answerable questions with ``sources`` count; sources not in the index are left out (and
    counted in ``n_unknown_sources``). Returns ``{}`` when no question names a known source.
    """
    if not ks or min(ks) < 1:
        raise ValueError(f"ks {ks!r} must be positive cut-offs such as (1, 3, 5, 10)")
    known_docs = {c.doc_id for c in index.chunks}
    scored: list[tuple[Question, set[str]]] = []
    unknown = 0
    for q in questions:
        if not (q.answerable and q.sources):
            continue
        sources = {s for s in q.sources if s in known_docs}
        unknown += len(set(q.sources) - sources)
        if sources:
            scored.append((q, sources))
    if not scored:
        return {}
    depth = max(ks)
    search_cfg = dataclasses.replace(cfg, top_k=min(depth, 50))
    hits = index.search_batch([q.question for q, _ in scored], search_cfg, embedder)
    recall = {k: 0.0 for k in ks}
    rr = 0.0
    for (_, sources), retrieved in zip(scored, hits, strict=True):
        docs = [h.doc_id for h in retrieved]
        for k in ks:
            recall[k] += len(sources & set(docs[:k])) / len(sources)
        first = next((i for i, d in enumerate(docs, start=1) if d in sources), 0)
        rr += 1.0 / first if first else 0.0
    n = len(scored)
    out = {f"recall@{k}": recall[k] / n for k in ks}
    out["mrr"] = rr / n
    out["n_questions"] = float(n)
    out["n_unknown_sources"] = float(unknown)
    return out
