"""Bench: embedding throughput (ours vs raw sentence-transformers), index build scaling, retrieval latency.

Retrieval at 10k/100k chunks uses synthetic unit vectors of the embedder's dimension (a bundled
corpus has a few hundred chunks), drawn around n/50 random topic centres as real embeddings cluster;
each query is a noisy copy of one stored vector, so approximate indexes have a true neighbour to
find: the share of queries whose source vector comes back (hit@k) and recall@k against exact search
are reported with the latencies.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from ..config import IndexConfig, RetrievalConfig, SplitConfig
from ..types import Chunk


def real_chunks(corpus_dirs: list[str | Path], n: int) -> list[Chunk]:
    """Up to ``n`` distinct real chunks: the corpora split at several chunk sizes (800, 400, 200 characters)."""
    from ..corpus.loaders import load_documents
    from ..retrieval.chunking import split_documents

    docs = []
    for root in corpus_dirs:
        if (Path(root) / "docs").is_dir():
            docs += load_documents(Path(root) / "docs")[0]
    seen: set[str] = set()
    out: list[Chunk] = []
    for size, overlap in ((800, 100), (400, 50), (200, 40), (300, 0), (150, 30)):
        for c in split_documents(docs, SplitConfig(chunk_size=size, chunk_overlap=overlap)):
            if c.text not in seen and len(out) < n:
                seen.add(c.text)
                out.append(Chunk(len(out), c.doc_id, c.text, c.start, c.end))
    if not out:
        raise ValueError(f"no chunks from {', '.join(map(str, corpus_dirs))}; the bench needs a corpus with docs/")
    return out


def bench_embedding(embedder: Any, texts: list[str], batch_size: int = 64, reps: int = 2, naive_n: int = 256) -> dict[str, Any]:
    """Texts/s of ``Embedder.encode`` vs ``SentenceTransformer.encode`` on the same (bf16) model and texts.

    Runs alternate (ours, raw, ours, raw...) and the best of ``reps`` counts. Also a naive fp32
    SentenceTransformer on ``naive_n`` texts, which is what a user who loads the model plainly gets.
    """
    from sentence_transformers import SentenceTransformer

    from ..backends.models import embedder_path

    raw = embedder.model
    embedder.encode(texts[:batch_size], batch_size=batch_size)
    raw.encode(texts[:batch_size], batch_size=batch_size, show_progress_bar=False)
    ours_s, raw_s = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        a = embedder.encode(texts, batch_size=batch_size)
        ours_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        b = raw.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
        raw_s.append(time.perf_counter() - t0)
    cos = np.sum(a * np.asarray(b, dtype=np.float32), axis=1)
    naive = SentenceTransformer(str(embedder_path(embedder.name)), device="cpu", local_files_only=True)
    sub = texts[:naive_n]
    naive.encode(sub[:8], show_progress_bar=False)
    t0 = time.perf_counter()
    naive.encode(sub, batch_size=32, show_progress_bar=False)
    naive_s = time.perf_counter() - t0
    n = len(texts)
    return {
        "n_texts": n,
        "mean_chars": float(np.mean([len(t) for t in texts])),
        "batch_size": batch_size,
        "ours_s": ours_s,
        "raw_s": raw_s,
        "ours_texts_per_s": n / min(ours_s),
        "raw_texts_per_s": n / min(raw_s),
        "ratio": min(raw_s) / min(ours_s),
        "cosine_ours_vs_raw_min": float(cos.min()),
        "naive_fp32_texts_per_s": len(sub) / naive_s,
        "naive_fp32_n": len(sub),
    }


class _Vectors:
    """An embedder stand-in serving precomputed vectors: chunk texts in order, queries by text."""

    def __init__(self, dim: int, chunk_vectors: np.ndarray | None = None, queries: dict[str, np.ndarray] | None = None):
        self.name, self.dim, self.tokenizer = "synthetic", dim, None
        self.chunk_vectors, self.queries = chunk_vectors, queries or {}

    def encode(self, texts: list[str], batch_size: int = 64, progress: Any = None) -> np.ndarray:
        if self.chunk_vectors is not None and len(texts) == len(self.chunk_vectors):
            return self.chunk_vectors
        return np.stack([self.queries[t] for t in texts])


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _percentiles(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "mean_ms": float(np.mean(ms))}


def _time_queries(index: Any, queries: list[str], cfg: RetrievalConfig, embedder: Any) -> tuple[list[float], list[list[int]]]:
    times, ids = [], []
    index.search_batch(queries[:2], cfg, embedder)  # warm-up
    for q in queries:
        t0 = time.perf_counter()
        hits = index.search_batch([q], cfg, embedder)[0]
        times.append((time.perf_counter() - t0) * 1e3)
        ids.append([h.chunk_id for h in hits])
    return times, ids


def label(n: int) -> str:
    """10000 -> "10k"; other sizes as they are."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def bench_retrieval(embedder: Any, texts: list[str], questions: list[str], sizes: list[int], types_at: dict[int, list[str]], keyword_at: int, n_queries: int = 200, top_k: int = 4, seed: int = 0) -> dict[str, Any]:
    """Per-query latency (embedding excluded and included) and build time per index type and size.

    ``types_at`` maps a size to the FAISS types measured there; at ``keyword_at`` chunks BM25 and
    hybrid are measured too (chunk texts are the real ``texts`` repeated to that size).
    """
    from ..retrieval.index import RetrievalIndex, build_index, make_faiss_index

    rng = np.random.default_rng(seed)
    dim = int(embedder.dim)
    qtexts = [questions[i % len(questions)] for i in range(n_queries)]
    out: dict[str, Any] = {"synthetic_vectors": True, "dim": dim, "top_k": top_k, "n_queries": n_queries, "sizes": {}}
    for n in sizes:
        centres = _unit(rng.standard_normal((max(1, n // 50), dim)))
        base = _unit(centres[rng.integers(0, len(centres), size=n)] + 0.8 / np.sqrt(dim) * rng.standard_normal((n, dim)))
        targets = rng.integers(0, n, size=n_queries)
        qvecs = _unit(base[targets] + 0.5 / np.sqrt(dim) * rng.standard_normal((n_queries, dim)))
        keys = [f"q{i}" for i in range(n_queries)]
        lookup = dict(zip(keys, qvecs, strict=True))
        chunks = [Chunk(i, f"doc{i % 97}", texts[i % len(texts)], 0, len(texts[i % len(texts)])) for i in range(n)]
        res: dict[str, Any] = {}
        exact: list[list[int]] = []
        bm25 = None
        if n == keyword_at:
            t0 = time.perf_counter()
            built = build_index(chunks, IndexConfig(index_type="flat"), _Vectors(dim, chunk_vectors=base))
            res["flat+bm25_build_s"] = time.perf_counter() - t0
            bm25 = built.bm25
        for kind in ["flat", *[t for t in types_at.get(n, []) if t != "flat"]]:
            t0 = time.perf_counter()
            faiss_index = make_faiss_index(base, IndexConfig(index_type=kind))
            build_s = time.perf_counter() - t0
            index = RetrievalIndex(chunks, faiss_index, bm25, {"index_type": kind, "n_chunks": n})
            cfg = RetrievalConfig(mode="dense", top_k=top_k)
            ms, ids = _time_queries(index, keys, cfg, _Vectors(dim, queries=lookup))
            if kind == "flat":
                exact = ids
            ms_incl, _ = _time_queries(index, qtexts, cfg, embedder)
            recall = float(np.mean([len(set(a) & set(b)) / max(len(b), 1) for a, b in zip(ids, exact, strict=True)]))
            hit = float(np.mean([int(t) in a for t, a in zip(targets, ids, strict=True)]))
            res[kind] = {"build_s": build_s, **_percentiles(ms), "incl_embedding": _percentiles(ms_incl), f"hit@{top_k}": hit, f"recall@{top_k}_vs_flat": recall}
            if kind == "flat" and n == keyword_at:
                lookup_q = {**lookup, **dict(zip(qtexts, qvecs, strict=False))}
                for mode in ("bm25", "hybrid"):
                    mcfg = RetrievalConfig(mode=mode, top_k=top_k)
                    ms_m, _ = _time_queries(index, qtexts, mcfg, _Vectors(dim, queries=lookup_q))
                    ms_mi, _ = _time_queries(index, qtexts, mcfg, embedder) if mode == "hybrid" else (ms_m, None)
                    res[mode] = {**_percentiles(ms_m), "incl_embedding": _percentiles(ms_mi), "index": "flat" if mode == "hybrid" else "bm25"}
        out["sizes"][label(n)] = {"n_chunks": n, **res}
    return out


def bench_index_scaling(embedder: Any, chunks: list[Chunk], sizes: list[int]) -> list[dict[str, Any]]:
    """Seconds of ``build_index`` (embedding + FAISS flat + BM25) on the first k real chunks, per k."""
    from ..retrieval.index import build_index

    rows = []
    for k in sorted({min(k, len(chunks)) for k in sizes}):
        t0 = time.perf_counter()
        build_index(chunks[:k], IndexConfig(index_type="flat"), embedder)
        rows.append({"chunks": k, "build_s": time.perf_counter() - t0, "what": "build_index: embed + FAISS flat + BM25 (real chunks)"})
    return rows
