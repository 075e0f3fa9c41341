"""retrieval_quality: recall@k and MRR computed by hand on a tiny corpus with a fixed ranking."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.config import IndexConfig, RetrievalConfig, SplitConfig
from workbench.retrieval.embedding import Embedder
from workbench.retrieval.index import build_index, get_or_build_index
from workbench.retrieval.quality import retrieval_quality
from workbench.types import Chunk, Document, Question


class TableEmbedder:
    """Each query and chunk gets a fixed vector, so rankings are known in advance."""

    name, tokenizer = "table", None

    def __init__(self, table: dict[str, np.ndarray]):
        self.table, self.dim = table, len(next(iter(table.values())))

    def encode(self, texts, batch_size=64, progress=None):
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


def _unit(i: int, sims: list[float], dim: int = 8) -> np.ndarray:
    v = np.zeros(dim)
    v[0], v[i + 1] = sims[i], np.sqrt(1 - sims[i] ** 2)
    return v


@pytest.fixture()
def fixed():
    # chunks 0..3 from docs A, B, C, D; dense similarity to every query: A .9 > B .8 > C .7 > D .6
    texts = ["chunk a", "chunk b", "chunk c", "chunk d"]
    sims = [0.9, 0.8, 0.7, 0.6]
    table = {t: _unit(i, sims) for i, t in enumerate(texts)}
    questions = [
        Question("q1", "first", ["x"], sources=["A"]),  # rank 1
        Question("q2", "second", ["x"], sources=["C"]),  # rank 3
        Question("q3", "third", ["x"], sources=["B", "D"]),  # first at 2; half found by k=3, all by k=4
        Question("q4", "fourth", [], answerable=False, sources=["A"]),  # unanswerable: ignored
        Question("q5", "fifth", ["x"]),  # no sources: ignored
        Question("q6", "sixth", ["x"], sources=["Z"]),  # unknown doc: ignored, counted
    ]
    for q in questions:
        table[q.question] = np.eye(8)[0]
    emb = TableEmbedder(table)
    chunks = [Chunk(i, doc, t, 0, len(t)) for i, (doc, t) in enumerate(zip("ABCD", texts, strict=True))]
    return build_index(chunks, IndexConfig(), emb), questions, emb


def test_recall_and_mrr_by_hand(fixed):
    index, questions, emb = fixed
    m = retrieval_quality(index, questions, RetrievalConfig(mode="dense"), emb, ks=(1, 2, 3, 4))
    assert m["n_questions"] == 3 and m["n_unknown_sources"] == 1
    assert m["recall@1"] == pytest.approx((1 + 0 + 0) / 3)
    assert m["recall@2"] == pytest.approx((1 + 0 + 0.5) / 3)
    assert m["recall@3"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert m["recall@4"] == pytest.approx((1 + 1 + 1) / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)


def test_no_sources_gives_empty_dict(fixed):
    index, questions, emb = fixed
    assert retrieval_quality(index, [q for q in questions if q.id in ("q4", "q5", "q6")], RetrievalConfig(), emb) == {}


def test_bad_ks(fixed):
    index, questions, emb = fixed
    with pytest.raises(ValueError, match="ks"):
        retrieval_quality(index, questions, RetrievalConfig(), emb, ks=(0, 3))


def test_real_embedder_on_tiny_corpus():
    emb = Embedder()
    docs = [
        Document("falcon.md", "The Falcon drone flies for 42 minutes on one battery and reaches 68 km/h."),
        Document("leave.md", "Parental leave is 26 weeks, fully paid, for every parent at the company."),
        Document("offices.md", "Our offices are in Tromsø, Lisbon and Montréal; Tromsø is headquarters."),
        Document("warranty.md", "Drones carry a 24-month limited warranty that excludes water damage."),
    ]
    questions = [
        Question("1", "How long can the Falcon drone fly?", ["42 minutes"], sources=["falcon.md"]),
        Question("2", "How many weeks of parental leave do parents get?", ["26 weeks"], sources=["leave.md"]),
        Question("3", "Where is the headquarters?", ["Tromsø"], sources=["offices.md"]),
        Question("4", "Does the warranty cover water damage?", ["no"], sources=["warranty.md"]),
    ]
    index, _ = get_or_build_index(docs, SplitConfig(chunk_size=200, chunk_overlap=0), IndexConfig(), emb)
    for mode in ("dense", "bm25", "hybrid"):
        m = retrieval_quality(index, questions, RetrievalConfig(mode=mode), emb, ks=(1, 3))
        assert m["n_questions"] == 4
        assert m["recall@3"] >= m["recall@1"] >= 0.75, (mode, m)
        assert 0.75 <= m["mrr"] <= 1.0
