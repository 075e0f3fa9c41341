"""RAFT examples: a question with its gold passage among distractors (or only distractors), answered from the passages."""

from __future__ import annotations

import random
from typing import Any

from ..config import TrainConfig
from ..language import language as _language
from ..methods import prompts
from ..textnorm import contains_tokens, normalize_answer
from .packing import IGNORE, Example, encode, eos_id


def _words(text: str) -> set[str]:
    return set(normalize_answer(text).split())


def _window(text: str, chars: int, answer: str | None, rng: random.Random) -> str:
    """About ``chars`` characters of a passage on word boundaries; with ``answer``, a window that contains it."""
    if len(text) <= chars:
        return text
    at = text.lower().find(answer.lower()) if answer else -1
    if at < 0:
        start = 0 if answer is None else rng.randrange(0, len(text) - chars + 1)
    else:
        lo, hi = max(0, at + len(answer) - chars), min(at, len(text) - chars)
        start = rng.randint(lo, max(lo, hi))
    cut = text[start : start + chars]
    return (cut.split(" ", 1)[-1] if start else cut).rsplit(" ", 1)[0]


def raft_examples(
    tokenizer: Any, pairs: list[dict[str, Any]], chunks: list[tuple[str, str]], cfg: TrainConfig, instruction: str, seed: int, language: str = "en"
) -> list[Example]:
    """RAFT examples: a generated question, its gold chunk among lexically similar distractors (or only distractors), answered from the passages.

    The target is the answer when a passage holds it, else the ``language``'s abstention reply, matching the rag prompt in that language.
    """
    abstain = _language(language).abstain_reply
    rng = random.Random(f"workbench-raft-{seed}")
    picked = list(pairs)
    rng.shuffle(picked)
    # one question per chunk first, so the examples cover as many chunks as possible
    by_chunk: dict[int, dict[str, Any]] = {}
    rest = []
    for p in picked:
        if p["chunk"] in by_chunk:
            rest.append(p)
        else:
            by_chunk[p["chunk"]] = p
    picked = (list(by_chunk.values()) + rest)[: cfg.raft_examples]
    words = [_words(t) for _, t in chunks]
    chars = cfg.raft_passage_tokens * 4
    out = []
    for i, p in enumerate(picked):
        qw = _words(p["question"])
        ranked = sorted((j for j in range(len(chunks)) if j != p["chunk"]), key=lambda j: (-len(qw & words[j]), j))
        distractors = [_window(chunks[j][1], chars, None, rng) for j in ranked[: cfg.raft_distractors]]
        with_gold = rng.random() < cfg.raft_gold_share
        passages = list(distractors)
        if with_gold:
            passages.insert(rng.randrange(len(passages) + 1), _window(chunks[p["chunk"]][1], chars, p["answer"], rng))
        held = any(contains_tokens(t, p["answer"]) for t in passages)
        target = p["answer"] if held else abstain
        messages = prompts.rag_messages(p["question"], passages, instruction, language)
        prompt = prompts.render(tokenizer, messages)
        full = prompts.render(tokenizer, messages, answer=target)
        p_ids, a_ids = encode(tokenizer, prompt), encode(tokenizer, full[len(prompt) :])
        eos = eos_id(tokenizer)
        if eos not in a_ids:
            a_ids.append(eos)
        meta = {"doc_id": p["doc_id"], "synthetic": True, "gold_in_passages": with_gold, "abstain": not held, "n": i}
        out.append(Example("raft", p_ids + a_ids, [IGNORE] * len(p_ids) + a_ids, full, False, question=p["question"], answer=target, meta=meta))
    return out
