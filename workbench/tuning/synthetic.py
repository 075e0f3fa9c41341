"""Training data written by the base model from the corpus's own passages: synthetic Q/A and paraphrases."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from typing import Any

from ..methods import prompts
from ..textnorm import contains_tokens, normalize_answer
from .packing import encode

Progress = Callable[[str, float], None]

SYNTH_PROMPT = (
    "Read the passage and write one question that the passage answers, then its short answer "
    "(a few words copied from the passage).\nReply in exactly this format:\nQuestion: ...\nAnswer: ...\n\nPassage:\n{passage}"
)
PARAPHRASE_PROMPT = "Rewrite the passage in different words. Keep every fact, name, date and number.\n\nPassage:\n{passage}"


def _generate(model: Any, tokenizer: Any, prompts_: list[str], max_new_tokens: int, temperature: float, seed: int, progress: Progress | None) -> list[str]:
    from ..backends.hf import HFGenerator as Generator

    gen = Generator(model, tokenizer)
    rendered = [prompts.render(tokenizer, [{"role": "user", "content": p}]) for p in prompts_]
    out = gen.generate(rendered, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed, stop=prompts.stop_strings(tokenizer), batch_size=8, progress=progress)
    return [r.text for r in out]


_QA_RE = re.compile(r"Question:\s*(.+?)\s*\n+\s*Answer:\s*(.+)", re.S)


def synthetic_qa(model: Any, tokenizer: Any, chunks: list[tuple[str, str]], n: int, seed: int, progress: Progress | None = None) -> tuple[list[tuple[str, str, str]], int]:
    """Up to ``n`` (question, answer, doc_id) pairs written by the base model; answers must occur in their passage."""
    rng = random.Random(seed)
    order = list(range(len(chunks)))
    rng.shuffle(order)
    picked = [order[i % len(order)] for i in range(n)] if order else []
    texts = _generate(model, tokenizer, [SYNTH_PROMPT.format(passage=chunks[i][1]) for i in picked], 48, 0.0 if n <= len(chunks) else 0.7, seed, progress)
    pairs, seen, rejected = [], set(), 0
    for i, text in zip(picked, texts, strict=True):
        m = _QA_RE.search(text)
        q, a = (m.group(1).strip(), m.group(2).strip().split("\n")[0].strip()) if m else ("", "")
        key = normalize_answer(q)
        if not q or not a or key in seen or not contains_tokens(chunks[i][1], a):
            rejected += 1
            continue
        seen.add(key)
        pairs.append((q, a, chunks[i][0]))
    return pairs, rejected


def paraphrase_chunks(model: Any, tokenizer: Any, chunks: list[tuple[str, str]], per_chunk: int, seed: int, progress: Progress | None = None) -> tuple[list[tuple[str, str]], int]:
    """``per_chunk`` rewrites of every passage by the base model (greedy first, then sampled); too-short ones are rejected."""
    out: list[tuple[str, str]] = []
    rejected = 0
    lengths = [len(encode(tokenizer, t)) for _, t in chunks]
    for k in range(per_chunk):
        texts = _generate(model, tokenizer, [PARAPHRASE_PROMPT.format(passage=t) for _, t in chunks], min(int(max(lengths, default=0) * 1.3) + 8, 400), 0.0 if k == 0 else 0.8, seed + k, progress)
        for (doc_id, _), n, text in zip(chunks, lengths, texts, strict=True):
            if len(encode(tokenizer, text)) >= max(4, n // 3):
                out.append((doc_id, text))
            else:
                rejected += 1
    return out, rejected
