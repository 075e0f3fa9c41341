"""Chunking: splitter settings, exact offsets, token mode, huge inputs, bad configs."""

from __future__ import annotations

import random

import pytest

from workbench.config import ConfigError, SplitConfig
from workbench.retrieval.chunking import split_documents
from workbench.types import Document


def _prose(n_paragraphs: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    words = "falcon kestrel osprey firmware battery warranty sensor office leave policy the a of and to in".split()
    paras = []
    for _ in range(n_paragraphs):
        sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(5, 18))).capitalize() + "." for _ in range(rng.randint(2, 6))]
        paras.append("  ".join(sentences) if rng.random() < 0.2 else " ".join(sentences))
    return "\n\n".join(paras) + "\n"


def _check_offsets(docs: list[Document], chunks) -> None:
    by_id = {d.doc_id: d for d in docs}
    assert [c.chunk_id for c in chunks] == list(range(len(chunks)))
    for c in chunks:
        assert by_id[c.doc_id].text[c.start : c.end] == c.text
        assert c.text and c.text == c.text.strip()


@pytest.mark.parametrize("size,overlap", [(800, 100), (200, 0), (64, 32)])
def test_recursive_offsets_and_sizes(size, overlap):
    docs = [Document("a.md", _prose(40, 1)), Document("b/c.txt", _prose(15, 2)), Document("empty.txt", "   \n")]
    chunks = split_documents(docs, SplitConfig(chunk_size=size, chunk_overlap=overlap))
    _check_offsets(docs, chunks)
    assert all(len(c.text) <= size for c in chunks)
    assert {c.doc_id for c in chunks} == {"a.md", "b/c.txt"}  # whitespace-only doc yields nothing
    starts = [c.start for c in chunks if c.doc_id == "a.md"]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    # together the chunks cover every non-space character of the document
    covered = set()
    for c in chunks:
        if c.doc_id == "a.md":
            covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(docs[0].text) if not ch.isspace())


def test_overlap_is_shared_text():
    doc = Document("a.md", _prose(30, 3).replace("\n\n", " "))  # one paragraph: words are merged with overlap
    chunks = split_documents([doc], SplitConfig(chunk_size=300, chunk_overlap=100))
    shared = [a.end - b.start for a, b in zip(chunks, chunks[1:], strict=False)]
    assert len(chunks) > 10 and all(0 < s <= 100 for s in shared)
    assert sum(shared) / len(shared) > 50


def test_repetitive_text_keeps_offsets():
    text = ("same line again\n" * 400) + "tail"
    doc = Document("rep.txt", text)
    chunks = split_documents([doc], SplitConfig(chunk_size=100, chunk_overlap=40))
    _check_offsets([doc], chunks)
    starts = [c.start for c in chunks]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert chunks[-1].end == len(text)


def test_tokens_mode_uses_embedder_tokenizer(tiny_embedder_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_embedder_dir))
    doc = Document("a.md", _prose(30, 4))
    chunks = split_documents([doc], SplitConfig(mode="tokens", chunk_size=64, chunk_overlap=8), tokenizer=tok)
    _check_offsets([doc], chunks)
    assert len(chunks) > 3
    assert all(len(tok.tokenize(c.text)) <= 64 for c in chunks)
    # tokens mode differs from characters: 64 tokens is far more than 64 characters
    assert max(len(c.text) for c in chunks) > 100


def test_tokens_mode_without_tokenizer_is_a_config_error():
    with pytest.raises(ConfigError, match="tokenizer"):
        split_documents([Document("a", "text")], SplitConfig(mode="tokens", chunk_size=64, chunk_overlap=8))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(chunk_size=100, chunk_overlap=100), "chunk_overlap"),
        (dict(chunk_size=100, chunk_overlap=150), "chunk_overlap"),
        (dict(chunk_size=8, chunk_overlap=0), "too small"),
        (dict(mode="sentences"), "unknown"),
        (dict(chunk_overlap=-1), "chunk_overlap"),
    ],
)
def test_bad_configs(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SplitConfig(**kwargs)


def test_huge_line_without_separators_is_split_into_bounded_chunks():
    text = "x" * 50_000_000
    doc = Document("blob.txt", text)
    chunks = split_documents([doc], SplitConfig(chunk_size=800, chunk_overlap=100))
    assert all(len(c.text) <= 800 for c in chunks)
    assert chunks[0].start == 0 and chunks[-1].end == len(text)
    assert all(b.start == a.end - 100 for a, b in zip(chunks[:50], chunks[1:51], strict=True))
    assert all(text[c.start : c.end] == c.text for c in chunks[:: max(1, len(chunks) // 100)])


def test_long_run_inside_prose_keeps_surrounding_text():
    blob = "Q" * 20_000
    text = "Intro paragraph about the falcon.\n\n" + blob + "\n\nOutro about the kestrel battery."
    doc = Document("mixed.txt", text)
    chunks = split_documents([doc], SplitConfig(chunk_size=500, chunk_overlap=50))
    _check_offsets([doc], chunks)
    assert chunks[0].text.startswith("Intro") and chunks[-1].text.endswith("battery.")
    assert sum(len(c.text) for c in chunks) >= len(blob)


def test_long_document_with_spaces_is_blocked_and_exact():
    text = _prose(3000, 5)  # ~ 0.5 MB, crosses the internal block size
    doc = Document("big.md", text)
    chunks = split_documents([doc], SplitConfig(chunk_size=800, chunk_overlap=100))
    _check_offsets([doc], chunks)
    assert all(len(c.text) <= 800 for c in chunks)
