"""Retrieval index: dense/BM25/hybrid search, save/load round trips, refusal of foreign folders, cache."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from workbench.config import IndexConfig, RetrievalConfig, SplitConfig
from workbench.paths import cache_dir
from workbench.retrieval.embedding import Embedder
from workbench.retrieval.index import IndexLoadError, RetrievalIndex, bm25_tokens, build_index, get_or_build_index
from workbench.types import Chunk, Document

TOPICS = {
    "products/falcon.md": "The Falcon drone has a flight time of 42 minutes and a top speed of 68 km/h. Its battery is the FB-7 pack.",
    "products/osprey.md": "The Osprey camera gimbal weighs 310 grams and records 4K video at 60 frames per second.",
    "hr/leave.md": "Parental leave at Kestrel Labs is 26 weeks fully paid for every parent, taken within two years.",
    "hr/travel.md": "Hotel stays on business travel are reimbursed up to 180 euros per night; economy class flights only.",
    "company/offices.md": "Kestrel Labs has offices in Tromsø, Lisbon and Montréal; headquarters are in Tromsø.",
    "policies/warranty.md": "Every drone carries a 24-month limited warranty; water damage is not covered.",
}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture()
def docs() -> list[Document]:
    out = []
    for i, (doc_id, fact) in enumerate(TOPICS.items()):
        filler = " ".join(f"Section {j} of {doc_id} describes routine matters in general terms." for j in range(6))
        out.append(Document(doc_id, f"{filler}\n\n{fact}\n\n{filler} (part {i})"))
    return out


class CountingEmbedder:
    """A real embedder that counts how many texts it was asked to encode."""

    def __init__(self, inner: Embedder):
        self.inner, self.calls, self.texts = inner, 0, 0
        self.name, self.dim, self.tokenizer = inner.name, inner.dim, inner.tokenizer

    def encode(self, texts, batch_size=64, progress=None):
        self.calls += 1
        self.texts += len(texts)
        return self.inner.encode(texts, batch_size=batch_size, progress=progress)


class TableEmbedder:
    """Deterministic vectors from a table: lets a test fix the dense ranking exactly."""

    name, tokenizer = "table", None

    def __init__(self, table: dict[str, np.ndarray]):
        self.table = table
        self.dim = len(next(iter(table.values())))

    def encode(self, texts, batch_size=64, progress=None):
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


def test_bm25_tokens_lowercase_no_stopwords():
    assert bm25_tokens("The Falcon's battery, and THE range!") == ["falcon", "s", "battery", "range"]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_modes_find_the_fact(docs, embedder, mode):
    index, _ = get_or_build_index(docs, SplitConfig(chunk_size=200, chunk_overlap=20), IndexConfig(), embedder)
    cfg = RetrievalConfig(mode=mode, top_k=3)
    hits = index.search("How long is the parental leave at Kestrel Labs?", cfg, embedder)
    assert hits[0].doc_id == "hr/leave.md" and "26 weeks" in hits[0].text
    assert [h.rank for h in hits] == [1, 2, 3]
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))
    batch = index.search_batch(["hotel reimbursement per night", "warranty water damage"], cfg, embedder)
    assert [b[0].doc_id for b in batch] == ["hr/travel.md", "policies/warranty.md"]


def test_bm25_returns_nothing_for_unknown_words(docs, embedder):
    index, _ = get_or_build_index(docs, SplitConfig(chunk_size=200, chunk_overlap=20), IndexConfig(), embedder)
    assert index.search("xylophone quasar", RetrievalConfig(mode="bm25", top_k=3), embedder) == []
    # hybrid still answers from the dense side
    assert len(index.search("xylophone quasar", RetrievalConfig(mode="hybrid", top_k=3), embedder)) == 3


def test_hybrid_fusion_order_when_dense_and_bm25_disagree():
    texts = ["alpha apple", "beta banana", "gamma zebra", "delta zebra zebra zebra", "epsilon egg"]
    dense_sim = [0.9, 0.7, 0.8, 0.5, 0.6]  # dense ranking: 0, 2, 1, 4, 3
    table = {}
    for i, (t, s) in enumerate(zip(texts, dense_sim, strict=True)):
        v = np.zeros(7)
        v[0], v[i + 1] = s, np.sqrt(1 - s * s)
        table[t] = v
    table["zebra"] = np.eye(7)[0]
    emb = TableEmbedder(table)
    chunks = [Chunk(i, f"d{i}", t, 0, len(t)) for i, t in enumerate(texts)]
    index = build_index(chunks, IndexConfig(), emb)

    def order(mode: str) -> list[int]:
        return [h.chunk_id for h in index.search("zebra", RetrievalConfig(mode=mode, top_k=5, rrf_k=60), emb)]

    assert order("dense") == [0, 2, 1, 4, 3]
    assert order("bm25") == [3, 2]  # zebra x3 beats zebra x1; other chunks have no match
    # RRF: c2 = 1/62 + 1/62 > c3 = 1/65 + 1/61 > c0 = 1/61 > c1 = 1/63 > c4 = 1/64
    assert order("hybrid") == [2, 3, 0, 1, 4]
    top = index.search("zebra", RetrievalConfig(mode="hybrid", top_k=1, rrf_k=60), emb)[0]
    assert top.score == pytest.approx(2 / 62)


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_round_trip_all_index_types(docs, embedder, index_type, tmp_path):
    icfg = IndexConfig(index_type=index_type)
    index, info = get_or_build_index(docs, SplitConfig(chunk_size=200, chunk_overlap=20), icfg, embedder)
    assert not info["cache_hit"] and info["n_chunks"] == len(index) > len(docs)
    folder = index.save(tmp_path / "idx")
    assert not list(folder.rglob("*.pkl"))
    loaded = RetrievalIndex.load(folder)
    assert loaded.index_type == index_type and loaded.chunks == index.chunks
    queries = ["Falcon flight time", "camera gimbal weight", "where are the offices"]
    for mode in ("dense", "bm25", "hybrid"):
        cfg = RetrievalConfig(mode=mode, top_k=4)
        a = [[(h.chunk_id, round(h.score, 5)) for h in hs] for hs in index.search_batch(queries, cfg, embedder)]
        b = [[(h.chunk_id, round(h.score, 5)) for h in hs] for hs in loaded.search_batch(queries, cfg, embedder)]
        assert a == b
    assert (
        loaded.search("Falcon drone flight time minutes", RetrievalConfig(mode="dense", top_k=3), embedder)[0].doc_id
        == "products/falcon.md"
    )


def _saved(docs, embedder, tmp_path):
    index, _ = get_or_build_index(docs, SplitConfig(chunk_size=300, chunk_overlap=0), IndexConfig(), embedder)
    return index.save(tmp_path / "idx")


def test_load_refuses_folder_without_manifest(docs, embedder, tmp_path):
    folder = _saved(docs, embedder, tmp_path)
    (folder / "manifest.json").unlink()
    with pytest.raises(IndexLoadError, match="missing manifest.json"):
        RetrievalIndex.load(folder)
    with pytest.raises(IndexLoadError, match="not found"):
        RetrievalIndex.load(tmp_path / "nowhere")


def test_load_refuses_foreign_manifest_and_pickles(docs, embedder, tmp_path):
    folder = _saved(docs, embedder, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "format": "something-else/9"}))
    with pytest.raises(IndexLoadError, match="format"):
        RetrievalIndex.load(folder)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    RetrievalIndex.load(folder)  # restored: loads again
    (folder / "bm25" / "extra.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(IndexLoadError, match="pickle"):
        RetrievalIndex.load(folder)


def test_load_refuses_tampered_files(docs, embedder, tmp_path):
    folder = _saved(docs, embedder, tmp_path)
    with open(folder / "chunks.jsonl", "a") as fh:
        fh.write('{"chunk_id": 99, "doc_id": "x", "text": "injected", "start": 0, "end": 8}\n')
    with pytest.raises(IndexLoadError, match="changed"):
        RetrievalIndex.load(folder)


def test_cache_hit_does_not_reembed(docs, embedder):
    counting = CountingEmbedder(embedder)
    split, icfg = SplitConfig(chunk_size=200, chunk_overlap=20), IndexConfig()
    index1, info1 = get_or_build_index(docs, split, icfg, counting)
    assert not info1["cache_hit"] and counting.calls == 1 and counting.texts == len(index1)
    assert info1["build_seconds"] > 0 and info1["artifact_mb"] > 0
    index2, info2 = get_or_build_index(docs, split, icfg, counting)
    assert info2["cache_hit"] and counting.calls == 1
    assert info2["key"] == info1["key"] and info2["build_seconds"] == info1["build_seconds"]
    assert info2["load_seconds"] >= 0 and index2.chunks == index1.chunks
    # no temporary build folders are left behind
    assert [p.name for p in cache_dir("indexes").iterdir()] == [info1["key"]]
    # a changed document, split or index setting is a different key and a rebuild
    changed = [Document(d.doc_id, d.text + " New sentence.") if i == 0 else d for i, d in enumerate(docs)]
    _, info3 = get_or_build_index(changed, split, icfg, counting)
    _, info4 = get_or_build_index(docs, SplitConfig(chunk_size=250, chunk_overlap=20), icfg, counting)
    _, info5 = get_or_build_index(docs, split, IndexConfig(index_type="hnsw"), counting)
    assert not (info3["cache_hit"] or info4["cache_hit"] or info5["cache_hit"])
    assert len({info1["key"], info3["key"], info4["key"], info5["key"]}) == 4 and counting.calls == 4
    # the batch size changes no result, so it does not change the key
    _, info6 = get_or_build_index(docs, split, IndexConfig(embed_batch_size=8), counting)
    assert info6["cache_hit"]


def test_stale_build_folder_of_dead_process_is_removed(docs, embedder):
    stale = cache_dir("indexes") / "0123456789abcdef.tmp-999999999"
    stale.mkdir()
    (stale / "chunks.jsonl").write_text("")
    _, info = get_or_build_index(docs, SplitConfig(chunk_size=200, chunk_overlap=20), IndexConfig(), embedder)
    assert not stale.exists() and [p.name for p in cache_dir("indexes").iterdir()] == [info["key"]]


def test_damaged_cache_entry_is_rebuilt(docs, embedder):
    counting = CountingEmbedder(embedder)
    split, icfg = SplitConfig(chunk_size=200, chunk_overlap=20), IndexConfig()
    _, info = get_or_build_index(docs, split, icfg, counting)
    (cache_dir("indexes") / info["key"] / "faiss.index").write_bytes(b"garbage")
    _, again = get_or_build_index(docs, split, icfg, counting)
    assert not again["cache_hit"] and counting.calls == 2
    _, third = get_or_build_index(docs, split, icfg, counting)
    assert third["cache_hit"]


def test_tokens_mode_index(docs, embedder):
    index, info = get_or_build_index(docs, SplitConfig(mode="tokens", chunk_size=48, chunk_overlap=8), IndexConfig(), embedder)
    assert all(len(embedder.tokenizer.tokenize(c.text)) <= 48 for c in index.chunks)
    assert index.search("parental leave weeks", RetrievalConfig(mode="hybrid", top_k=2), embedder)[0].doc_id == "hr/leave.md"


def test_empty_corpus_is_a_clear_error(embedder):
    with pytest.raises(ValueError, match="no chunks"):
        get_or_build_index([Document("a.md", "   ")], SplitConfig(), IndexConfig(), embedder)


def test_copied_index_folder_loads(docs, embedder, tmp_path):
    folder = _saved(docs, embedder, tmp_path)
    copy = shutil.copytree(folder, tmp_path / "copy")
    assert len(RetrievalIndex.load(copy)) == len(RetrievalIndex.load(folder))
