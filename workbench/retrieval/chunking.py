"""Split documents into chunks with exact character offsets (langchain's recursive splitter).

Two guards keep huge or odd inputs linear: long documents are cut into blocks at whitespace before
langchain sees them, and whitespace-free runs (a 50 MB single "word") are windowed directly instead
of being split into one Python string per character.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from langchain_text_splitters import RecursiveCharacterTextSplitter

from ..config import ConfigError, SplitConfig
from ..types import Chunk, Document

SEPARATORS = ["\n\n", "\n", " ", ""]
CHARS_PER_TOKEN = 4  # window size for whitespace-free runs in tokens mode (a conservative estimate)


def make_splitter(cfg: SplitConfig, tokenizer: Any = None) -> RecursiveCharacterTextSplitter:
    """The langchain splitter for ``cfg``; tokens mode measures length in the embedder's tokenizer."""
    kw = dict(chunk_size=cfg.chunk_size, chunk_overlap=cfg.chunk_overlap, add_start_index=True, separators=SEPARATORS)
    if cfg.mode == "recursive":
        return RecursiveCharacterTextSplitter(**kw)
    if tokenizer is None:
        raise ConfigError("split mode 'tokens' needs the embedder's tokenizer; pass Embedder.tokenizer or use mode 'recursive'")
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        # Same count as from_huggingface_tokenizer's len(tokenizer.tokenize(text)), without the ~1 ms
        # per-call Python overhead of transformers 5 (langchain calls it once per piece). A private
        # copy, because tokenizer.json may switch on padding/truncation, which would inflate counts.
        from tokenizers import Tokenizer

        fast = Tokenizer.from_str(backend.to_str())
        fast.no_padding()
        fast.no_truncation()

        def n_tokens(text: str) -> int:
            return len(fast.encode(text, add_special_tokens=False).ids)

        return RecursiveCharacterTextSplitter(length_function=n_tokens, **kw)
    try:
        return RecursiveCharacterTextSplitter.from_huggingface_tokenizer(tokenizer, **kw)
    except ValueError as exc:
        raise ConfigError(f"split mode 'tokens': {exc}; pass a Hugging Face tokenizer (Embedder.tokenizer)") from exc


def _window_chars(cfg: SplitConfig) -> tuple[int, int]:
    """Window size and overlap, in characters, for text langchain cannot split cheaply."""
    scale = 1 if cfg.mode == "recursive" else CHARS_PER_TOKEN
    return cfg.chunk_size * scale, cfg.chunk_overlap * scale


def _segments(text: str, cfg: SplitConfig) -> Iterator[tuple[str, int, int]]:
    """Yield ("text" | "run", start, end) spans covering ``text``; runs are long whitespace-free stretches."""
    size, _ = _window_chars(cfg)
    min_run = max(4 * size, 4096)
    pos = 0
    for m in re.finditer(rf"\S{{{min_run},}}", text):
        if m.start() > pos:
            yield "text", pos, m.start()
        yield "run", m.start(), m.end()
        pos = m.end()
    if pos < len(text):
        yield "text", pos, len(text)


def _blocks(text: str, start: int, end: int, max_len: int) -> Iterator[tuple[int, int]]:
    """Cut ``text[start:end]`` into blocks of at most ``max_len`` chars, at a paragraph, line or space."""
    pos = start
    while end - pos > max_len:
        lo, hi = pos + max_len // 2, pos + max_len
        cut = -1
        for sep in ("\n\n", "\n", " "):
            cut = text.rfind(sep, lo, hi)
            if cut > 0:
                cut += len(sep)
                break
        if cut <= pos:
            cut = hi
        yield pos, cut
        pos = cut
    if pos < end:
        yield pos, end


def _windows(start: int, end: int, size: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Fixed character windows over ``[start, end)`` with ``overlap`` shared characters."""
    step = max(1, size - overlap)
    pos = start
    while True:
        stop = min(pos + size, end)
        yield pos, stop
        if stop >= end:
            return
        pos += step


def _locate(block: str, piece: str, hint: int, after: int, prev_end: int, last: bool = False) -> int:
    """Start of ``piece`` in ``block``: langchain's hint when it checks out, else the next match after ``after``.

    A chunk always reaches past the previous one's end (``prev_end``), so a match lying wholly inside the
    previous chunk is wrong: langchain's own hint is, for repeated text such as "0 0 0 ...". The ``last``
    chunk of a block ends where the block's text does (langchain strips whitespace), which in repeated text
    is the one placement that leaves nothing after it uncovered.
    """
    if last:  # (rstrip copies the block: only for the one chunk that needs it)
        tail = len(block.rstrip()) - len(piece)
        if tail > after and block.startswith(piece, tail):
            return tail
    if hint >= 0 and block.startswith(piece, hint) and hint > after and hint + len(piece) > prev_end:
        return hint
    idx = block.find(piece, max(after + 1, prev_end - len(piece) + 1))
    if idx < 0:
        idx = block.find(piece)
    if idx < 0:
        raise RuntimeError(f"chunk offset not found for a {len(piece)}-character chunk; this is a bug in chunking")
    return idx


def split_document(doc: Document, splitter: RecursiveCharacterTextSplitter, cfg: SplitConfig) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of the chunks of one document, in order."""
    text = doc.text
    size, overlap = _window_chars(cfg)
    block_len = max(200 * size, 100_000)
    spans: list[tuple[int, int]] = []
    for kind, s, e in _segments(text, cfg):
        if kind == "run":
            spans.extend(_windows(s, e, size, overlap))
            continue
        for b0, b1 in _blocks(text, s, e, block_len):
            block = text[b0:b1]
            after, prev_end = -1, 0
            pieces = [p for p in splitter.create_documents([block]) if p.page_content]
            for k, piece in enumerate(pieces):
                body = piece.page_content
                at = _locate(block, body, piece.metadata.get("start_index", -1), after, prev_end, last=k == len(pieces) - 1)
                spans.append((b0 + at, b0 + at + len(body)))
                after, prev_end = at, at + len(body)
    return spans


def split_documents(docs: list[Document], cfg: SplitConfig, tokenizer: Any = None) -> list[Chunk]:
    """All chunks of ``docs`` in order; ``chunk_id`` is the global position and ``doc.text[start:end] == text``."""
    splitter = make_splitter(cfg, tokenizer)
    chunks: list[Chunk] = []
    for doc in docs:
        for start, end in split_document(doc, splitter, cfg):
            chunks.append(Chunk(chunk_id=len(chunks), doc_id=doc.doc_id, text=doc.text[start:end], start=start, end=end))
    return chunks
