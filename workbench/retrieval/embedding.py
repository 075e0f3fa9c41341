"""Sentence embeddings for chunks and queries: L2-normalised float32, batched by token length."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backends.models import DEFAULT_EMBEDDER, Progress, load_embedder


def unit_rows(x: Any) -> np.ndarray:
    """Rows of ``x`` as float32 unit vectors (a zero row stays zero), so a dot product is a cosine."""
    arr = np.asarray(x, dtype=np.float32)
    return arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)


class Embedder:
    """A bf16 SentenceTransformer behind a small, fast ``encode`` (texts sorted by length, order restored)."""

    def __init__(self, name: str = DEFAULT_EMBEDDER, device: str | None = None, model: Any = None):
        self.name = name
        self.model = model if model is not None else load_embedder(name, device=device)
        self.dim = int(self.model.get_embedding_dimension())
        self.max_seq_length = int(self.model.max_seq_length or 512)

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

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None) -> np.ndarray:
        """Embeddings of ``texts`` as a float32 ``(n, dim)`` array with unit-length rows, in input order."""
        import torch

        texts = [t if isinstance(t, str) else str(t) for t in texts]
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
