"""Embedder: shape, dtype, unit norm, order restored after length sorting, semantic sanity."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.retrieval.embedding import Embedder


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


def test_shape_dtype_and_norm(embedder):
    texts = ["short", "a somewhat longer sentence about batteries", "x " * 300, ""]
    vecs = embedder.encode(texts, batch_size=2)
    assert vecs.shape == (4, embedder.dim) == (4, 384)
    assert vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert embedder.encode([]).shape == (0, embedder.dim)


def test_order_restored_and_batch_size_independent(embedder):
    texts = [("word " * n).strip() + f" item {n}" for n in (40, 1, 17, 3, 60, 8, 2, 25)]
    one_by_one = np.stack([embedder.encode([t])[0] for t in texts])
    batched = embedder.encode(texts, batch_size=3)
    # bf16 padding differences are tiny; each row must still match its own text, not a neighbour's
    sims = batched @ one_by_one.T
    assert (sims.argmax(axis=1) == np.arange(len(texts))).all()
    assert np.diag(sims).min() > 0.99


def test_progress_reports_to_one(embedder):
    seen: list[float] = []
    embedder.encode([f"text number {i}" for i in range(10)], batch_size=4, progress=lambda m, f: seen.append(f))
    assert len(seen) == 3 and seen[-1] == 1.0 and seen == sorted(seen)


def test_paraphrases_closer_than_unrelated(embedder):
    a = "The Falcon drone battery lasts about 40 minutes per charge."
    b = "On a single charge, the Falcon drone's battery runs for roughly forty minutes."
    c = "Employees may carry over five days of unused vacation into the next year."
    va, vb, vc = embedder.encode([a, b, c])
    assert float(va @ vb) > float(va @ vc) + 0.2
    assert float(va @ vb) > float(vb @ vc) + 0.2


def test_tokenizer_and_name(embedder):
    assert embedder.name == "all-MiniLM-L6-v2"
    assert embedder.tokenizer.tokenize("hello world") == ["hello", "world"]


def test_a_batch_embedded_before_comes_from_disk_without_loading_the_model(tiny_embedder_dir):
    texts = ["When was the company founded?", "Who leads the returns desk?"]
    first = Embedder(str(tiny_embedder_dir))
    vecs = first.encode(texts)
    assert first._model is not None  # embedded by the model
    again = Embedder(str(tiny_embedder_dir))
    np.testing.assert_array_equal(again.encode(texts), vecs)
    assert again._model is None  # served from the cache: sentence-transformers never loaded
    other = again.encode(texts + ["A new question?"])
    assert again._model is not None and other.shape == (3, vecs.shape[1])
    np.testing.assert_allclose(other[:2], vecs, atol=2e-2)


def test_a_damaged_cache_file_is_embedded_again(tiny_embedder_dir):
    texts = ["What does the warranty cover?"]
    emb = Embedder(str(tiny_embedder_dir))
    vecs = emb.encode(texts)
    emb._cache_path(texts).write_bytes(b"not a numpy file")
    np.testing.assert_allclose(Embedder(str(tiny_embedder_dir)).encode(texts), vecs, atol=1e-6)
