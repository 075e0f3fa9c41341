"""The retrieval index: chunks + FAISS (flat | hnsw | ivf) + BM25, hybrid search, and a content-addressed cache.

Saved folders hold only JSON, JSON lines, ``.npy`` arrays (loaded with ``allow_pickle=False``) and
FAISS's own format; nothing is ever unpickled, and a folder without our manifest is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.models import Progress
from ..config import IndexConfig, RetrievalConfig, SplitConfig
from ..errors import WorkbenchError
from ..evaluation.cost import dir_size_mb
from ..paths import cache_dir
from ..storage import atomic_write_json, atomic_write_jsonl, atomic_write_text, pid_alive, read_jsonl, stable_hash
from ..types import Chunk, Document, Retrieved
from .chunking import split_documents

FORMAT = "workbench-index/1"
HNSW_EF_SEARCH = 64
IVF_NPROBE = 8
FILES = ("manifest.json", "chunks.jsonl", "faiss.index", "bm25")
_TOKEN = re.compile(r"\w+", re.UNICODE)
log = logging.getLogger(__name__)


class IndexLoadError(WorkbenchError, RuntimeError):
    """A saved index folder is missing, incomplete, foreign or unsafe; rebuild it."""


def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


def bm25_tokens(text: str, stopwords: frozenset[str] | None = None, tokenizer: str = "words") -> list[str]:
    """BM25's view of a text: lowercased words without English stopwords, or (``kiwi``) Korean content morphemes."""
    if tokenizer == "kiwi":
        from ..korean import bm25_tokens_ko

        return bm25_tokens_ko(text)
    stop = _stopwords() if stopwords is None else stopwords
    return [t for t in _TOKEN.findall(text.lower()) if t not in stop]


def make_faiss_index(vectors: np.ndarray, cfg: IndexConfig) -> Any:
    """A FAISS inner-product index of the requested type, trained if needed, with ``vectors`` added."""
    import faiss

    n, d = vectors.shape
    if cfg.index_type == "flat":
        index = faiss.IndexFlatIP(d)
    elif cfg.index_type == "hnsw":
        index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        nlist = max(1, min(n, cfg.ivf_nlist or int(round(4 * math.sqrt(n)))))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.min_points_per_centroid = 1  # small corpora: no warning spam, clustering still fine
        index.train(vectors)
        index.nprobe = min(IVF_NPROBE, nlist)
    index.add(vectors)
    return index


def _set_search_params(index: Any, index_type: str) -> None:
    """Search-time knobs are not all serialised by FAISS; set them after load."""
    import faiss

    if index_type == "hnsw":
        faiss.downcast_index(index).hnsw.efSearch = HNSW_EF_SEARCH
    elif index_type == "ivf":
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = min(IVF_NPROBE, ivf.nlist)


def _bm25(token_lists: list[list[str]]) -> Any:
    import bm25s

    bm25 = bm25s.BM25()
    bm25.index(token_lists, show_progress=False)
    return bm25


def _rrf(rankings: list[list[int]], k: int) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: sum of 1/(k + rank) over the rankings; ties keep the first ranking's order."""
    scores: dict[int, float] = {}
    first_seen: dict[int, int] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + 1.0 / (k + rank)
            first_seen.setdefault(cid, len(first_seen))
    return sorted(scores.items(), key=lambda kv: (-kv[1], first_seen[kv[0]]))


class RetrievalIndex:
    """Chunks with a FAISS index over their embeddings and a BM25 index over their words."""

    def __init__(self, chunks: list[Chunk], faiss_index: Any, bm25: Any, manifest: dict[str, Any]):
        self.chunks = chunks
        self.faiss_index = faiss_index
        self.bm25 = bm25
        self.manifest = manifest
        self._stop = _stopwords()
        self.bm25_tokenizer = manifest.get("bm25_tokenizer", "words")  # absent in English (and older) indexes

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def index_type(self) -> str:
        return self.manifest["index_type"]

    # ----------------------------------------------------------------- search
    def _dense(self, qvecs: np.ndarray, depth: int) -> list[list[tuple[int, float]]]:
        import faiss

        depth = min(depth, len(self.chunks))
        if self.index_type == "hnsw":
            faiss.downcast_index(self.faiss_index).hnsw.efSearch = max(HNSW_EF_SEARCH, depth)
        # One query runs on one thread anyway; an OpenMP team next to torch's only adds wake-up
        # latency (bench: flat p50 at 100k chunks 60 -> 16 ms, hybrid at 10k 20 -> 0.6 ms).
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1 if len(qvecs) < 2 else threads)
        try:
            scores, ids = self.faiss_index.search(np.ascontiguousarray(qvecs, dtype=np.float32), depth)
        finally:
            faiss.omp_set_num_threads(threads)
        return [[(int(i), float(s)) for i, s in zip(row_i, row_s, strict=True) if i >= 0] for row_i, row_s in zip(ids, scores, strict=True)]

    def _keyword(self, query: str, depth: int) -> list[tuple[int, float]]:
        ids = self.bm25.get_tokens_ids(bm25_tokens(query, self._stop, self.bm25_tokenizer))
        if not ids:
            return []
        scores = self.bm25.get_scores_from_ids(ids)
        depth = min(depth, len(scores))
        top = np.argpartition(-scores, depth - 1)[:depth]
        top = top[np.lexsort((top, -scores[top]))]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def search_batch(self, queries: list[str], cfg: RetrievalConfig, embedder: Any) -> list[list[Retrieved]]:
        """Top ``cfg.top_k`` chunks for each query (dense, BM25, or their reciprocal-rank fusion)."""
        if not queries:
            return []
        k = cfg.top_k
        depth = k if cfg.mode != "hybrid" else 4 * k
        dense: list[list[tuple[int, float]]] = [[] for _ in queries]
        if cfg.mode in ("dense", "hybrid"):
            encode = getattr(embedder, "encode_queries", embedder.encode)  # asymmetric embedders (e5) mark queries
            dense = self._dense(encode(queries), depth)
        results: list[list[Retrieved]] = []
        for qi, query in enumerate(queries):
            if cfg.mode == "dense":
                hits = dense[qi][:k]
            elif cfg.mode == "bm25":
                hits = self._keyword(query, k)
            else:
                keyword = self._keyword(query, depth)
                hits = _rrf([[c for c, _ in dense[qi]], [c for c, _ in keyword]], cfg.rrf_k)[:k]
            results.append([self._retrieved(cid, score, rank) for rank, (cid, score) in enumerate(hits, start=1)])
        return results

    def search(self, query: str, cfg: RetrievalConfig, embedder: Any) -> list[Retrieved]:
        """Top chunks for one query."""
        return self.search_batch([query], cfg, embedder)[0]

    def _retrieved(self, cid: int, score: float, rank: int) -> Retrieved:
        c = self.chunks[cid]
        return Retrieved(chunk_id=c.chunk_id, doc_id=c.doc_id, text=c.text, score=score, rank=rank)

    # ------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        """Write the index to ``folder`` (created); manifest last, so a half-written folder never loads."""
        import faiss

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_jsonl(folder / "chunks.jsonl", (dataclasses.asdict(c) for c in self.chunks))
        faiss.write_index(self.faiss_index, str(folder / "faiss.index"))
        self.bm25.save(str(folder / "bm25"), allow_pickle=False, show_progress=False)
        files = {
            p.relative_to(folder).as_posix(): _sha256(p) for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "manifest.json"
        }
        atomic_write_json(folder / "manifest.json", {**self.manifest, "format": FORMAT, "files": files})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RetrievalIndex:
        """Read a folder written by :meth:`save`; refuses anything else (never unpickles)."""
        import bm25s
        import faiss

        folder = Path(folder)
        if not folder.is_dir():
            raise IndexLoadError(f"{folder}: index folder not found; build the index first")
        unsafe = [p.name for p in folder.rglob("*") if p.suffix.lower() in (".pkl", ".pickle", ".joblib")]
        if unsafe:
            raise IndexLoadError(f"{folder}: holds pickle file {unsafe[0]}, which is never loaded; delete the folder and rebuild the index")
        missing = [name for name in FILES if not (folder / name).exists()]
        if missing:
            raise IndexLoadError(f"{folder}: not a workbench index (missing {', '.join(missing)}); delete the folder and rebuild the index")
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexLoadError(f"{folder / 'manifest.json'}: unreadable ({exc}); delete the folder and rebuild the index") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise IndexLoadError(
                f"{folder / 'manifest.json'}: format is not {FORMAT!r}; this folder was not written by the workbench, rebuild the index"
            )
        for rel, digest in (manifest.get("files") or {}).items():
            path = folder / rel
            if not path.is_file() or _sha256(path) != digest:
                raise IndexLoadError(f"{path}: missing or changed since the index was saved; delete {folder} and rebuild the index")
        try:
            chunks = [Chunk(**row) for row in read_jsonl(folder / "chunks.jsonl")]
            index = faiss.read_index(str(folder / "faiss.index"))
            bm25 = bm25s.BM25.load(str(folder / "bm25"), allow_pickle=False, show_progress=False)
        except Exception as exc:  # noqa: BLE001 - any parse failure means the same thing to the user
            raise IndexLoadError(
                f"{folder}: cannot be read ({type(exc).__name__}: {str(exc)[:160]}); delete it and rebuild the index"
            ) from exc
        if not (len(chunks) == index.ntotal == manifest.get("n_chunks")):
            raise IndexLoadError(f"{folder}: {len(chunks)} chunks but {index.ntotal} vectors; delete it and rebuild the index")
        _set_search_params(index, manifest["index_type"])
        return cls(chunks, index, bm25, manifest)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_index(chunks: list[Chunk], index_cfg: IndexConfig, embedder: Any, progress: Progress | None = None) -> RetrievalIndex:
    """Embed ``chunks`` and build the FAISS and BM25 indexes over them (no caching)."""
    if not chunks:
        raise ValueError("nothing to index: the documents produced no chunks; check that the corpus docs/ folder has text")
    t0 = time.perf_counter()

    def embed_progress(msg: str, frac: float) -> None:
        if progress:
            progress(msg, 0.05 + 0.85 * frac)

    vectors = embedder.encode([c.text for c in chunks], batch_size=index_cfg.embed_batch_size, progress=embed_progress)
    if progress:
        progress(f"building {index_cfg.index_type} index over {len(chunks)} chunks", 0.9)
    faiss_index = make_faiss_index(vectors, index_cfg)
    stop = _stopwords()
    tokenizer = index_cfg.bm25_tokenizer
    bm25 = _bm25([bm25_tokens(c.text, stop, tokenizer) or [""] for c in chunks])
    manifest = {
        "format": FORMAT,
        "index_type": index_cfg.index_type,
        "embedder": embedder.name,
        "dim": int(vectors.shape[1]),
        "n_chunks": len(chunks),
        "n_docs": len({c.doc_id for c in chunks}),
        "build_seconds": round(time.perf_counter() - t0, 3),
    }
    if tokenizer != "words":  # English manifests stay as they were
        manifest["bm25_tokenizer"] = tokenizer
    if progress:
        progress("index ready", 1.0)
    return RetrievalIndex(chunks, faiss_index, bm25, manifest)


def index_key(documents: list[Document], split_cfg: SplitConfig, index_cfg: IndexConfig, embedder_name: str) -> str:
    """Cache key: what the index depends on (document ids and texts, split and index settings, embedder)."""
    docs = [(d.doc_id, hashlib.sha256(d.text.encode("utf-8")).hexdigest()) for d in documents]
    index_part = {k: v for k, v in dataclasses.asdict(index_cfg).items() if k != "embed_batch_size"}
    if index_part.get("bm25_tokenizer") == "words":  # the default keeps the keys of indexes built before the setting existed
        del index_part["bm25_tokenizer"]
    return stable_hash(FORMAT, docs, dataclasses.asdict(split_cfg), index_part, embedder_name)


def get_or_build_index(
    documents: list[Document],
    split_cfg: SplitConfig,
    index_cfg: IndexConfig,
    embedder: Any,
    progress: Progress | None = None,
) -> tuple[RetrievalIndex, dict[str, Any]]:
    """The cached index for these documents and settings, building (and caching) it on a miss."""
    key = index_key(documents, split_cfg, index_cfg, embedder.name)
    folder = cache_dir("indexes") / key
    if folder.is_dir() or folder.is_symlink():
        t0 = time.perf_counter()
        try:
            index = RetrievalIndex.load(_real_folder(folder))
            verify_entry(index, folder, documents)
        except IndexLoadError as exc:  # a damaged or altered cache entry is never used: rebuild it below
            message = f"warning: cached index {key} is not usable ({str(exc)[:200]}); rebuilding it"
            if progress:
                progress(message, 0.0)
            else:
                log.warning(message)
            _discard(folder)
        else:
            return index, _info(index, folder, key, True, time.perf_counter() - t0)
    t0 = time.perf_counter()
    if progress:
        progress(f"splitting {len(documents)} documents", 0.0)
    chunks = split_documents(documents, split_cfg, embedder.tokenizer if split_cfg.mode == "tokens" else None)
    if not chunks:
        raise ValueError(f"nothing to index: {len(documents)} documents produced no chunks; check that the corpus docs/ folder has text")
    index = build_index(chunks, index_cfg, embedder, progress)
    index.manifest["build_seconds"] = round(time.perf_counter() - t0, 3)  # split + embed + index
    _remove_stale_builds(folder.parent)
    tmp = folder.with_name(f"{key}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    index.save(tmp)
    seal = hashlib.sha256((tmp / "manifest.json").read_bytes()).hexdigest()
    try:
        os.replace(tmp, folder)
    except OSError:  # another process finished the same key first: its copy is equivalent
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        atomic_write_text(_seal_path(folder), seal + "\n")
    return index, _info(index, folder, key, False, 0.0)


def _seal_path(folder: Path) -> Path:
    """The entry's seal, kept outside the entry (and the entries' folder): sha256 of its manifest, which holds the sha256 of every file."""
    return cache_dir("index_seals") / folder.name


def _real_folder(folder: Path) -> Path:
    if folder.is_symlink():
        raise IndexLoadError(f"{folder}: is a symbolic link, not an entry the workbench wrote")
    return folder


def _discard(folder: Path) -> None:
    if folder.is_symlink():
        folder.unlink(missing_ok=True)
    else:
        shutil.rmtree(folder, ignore_errors=True)
    _seal_path(folder).unlink(missing_ok=True)


def verify_entry(index: RetrievalIndex, folder: Path, documents: list[Document]) -> None:
    """A cached index is used only if it is what these documents produce: its manifest matches the seal written
    beside it when it was built, and every chunk's text is exactly the slice of its document it claims to be."""
    seal = _seal_path(folder)
    try:
        expected = seal.read_text(encoding="utf-8").strip()
    except OSError:
        raise IndexLoadError(f"{seal}: missing, so the entry cannot be verified") from None
    if hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest() != expected:
        raise IndexLoadError(f"{folder / 'manifest.json'}: changed since the index was built")
    texts = {d.doc_id: d.text for d in documents}
    for c in index.chunks:
        text = texts.get(c.doc_id)
        if text is None or text[c.start : c.end] != c.text:
            raise IndexLoadError(f"{folder / 'chunks.jsonl'}: chunk {c.chunk_id} does not match document {c.doc_id!r}")
    missing = set(texts) - {c.doc_id for c in index.chunks}
    if any(texts[d].strip() for d in missing):
        raise IndexLoadError(f"{folder / 'chunks.jsonl'}: has no chunk of document {sorted(missing)[0]!r}")


def _remove_stale_builds(root: Path) -> None:
    """Delete ``*.tmp-<pid>`` build folders left by processes that died mid-build."""
    for tmp in root.glob("*.tmp-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _info(index: RetrievalIndex, folder: Path, key: str, hit: bool, load_s: float) -> dict[str, Any]:
    return {
        "cache_hit": hit,
        "build_seconds": float(index.manifest.get("build_seconds", 0.0)),
        "load_seconds": round(load_s, 4),
        "n_chunks": len(index),
        "artifact_mb": round(dir_size_mb(folder), 3),
        "key": key,
    }
