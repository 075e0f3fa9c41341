"""Training examples as token ids with their loss labels, and their packing into fixed-length blocks without pad tokens."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..errors import WorkbenchError
from ..methods import prompts

IGNORE = -100  # label of a token that takes no loss


class LoraDataError(WorkbenchError, ValueError):
    """The training data cannot be built; the message says what to change."""


@dataclass
class Example:
    part: str  # "chunks" | "qa" | "synthetic_qa" | "paraphrases"
    ids: list[int]
    labels: list[int]
    text: str  # what the model reads, for the leakage guard
    splittable: bool  # plain text may be cut across blocks; Q/A may not
    question: str = ""  # the question of a Q/A example (near-duplicate leakage check)
    answer: str = ""  # its trained answer
    meta: dict[str, Any] = field(default_factory=dict)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def eos_id(tokenizer: Any) -> int:
    """The EOS id that separates packed examples; LoraDataError when the tokenizer has none."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise LoraDataError("the tokenizer has no EOS token; packing needs one to separate examples")
    return int(eos)


def text_example(tokenizer: Any, text: str, part: str, meta: dict[str, Any]) -> Example:
    """Causal-LM example: every token (and the closing EOS) is trained."""
    ids = encode(tokenizer, text) + [eos_id(tokenizer)]
    return Example(part, ids, list(ids), text, True, meta=meta)


def qa_example(tokenizer: Any, question: str, answer: str, instruction: str, part: str, meta: dict[str, Any], language: str = "en") -> Example:
    """SFT example rendered exactly like the `lora` strategy's prompt in the corpus's ``language``; loss on the answer tokens only."""
    messages = prompts.zero_shot_messages(question, instruction, language)
    prompt = prompts.render(tokenizer, messages)
    full = prompts.render(tokenizer, messages, answer=answer)
    if not full.startswith(prompt):
        raise LoraDataError("the chat template renders the answer turn differently from the generation prompt; use a model whose template appends the answer")
    p_ids, a_ids = encode(tokenizer, prompt), encode(tokenizer, full[len(prompt) :])
    eos = eos_id(tokenizer)
    if eos not in a_ids:
        a_ids.append(eos)
    return Example(part, p_ids + a_ids, [IGNORE] * len(p_ids) + a_ids, full, False, question=question, answer=answer, meta=meta)


def dialogue_example(
    tokenizer: Any, pairs: list[tuple[str, str]], instruction: str, part: str, meta: dict[str, Any], system: Any = None, language: str = "en"
) -> Example:
    """Several Q/A turns under one system prompt, loss on every answer; the first turn is exactly the `lora` prompt in ``language``.

    Packing pairs as turns pays the system prompt once per dialogue instead of once per pair.
    """
    messages = (system("", instruction) if system else prompts.zero_shot_messages("", instruction, language))[:1]
    ids: list[int] = []
    labels: list[int] = []
    done = ""
    eos = eos_id(tokenizer)
    for q, a in pairs:
        messages = messages + [{"role": "user", "content": q}]
        prompt = prompts.render(tokenizer, messages)
        messages = messages + [{"role": "assistant", "content": a}]
        full = prompts.render(tokenizer, messages[:-1], answer=a)
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise LoraDataError("the chat template renders a multi-turn dialogue differently from its prefix; use a model whose template appends turns")
        p_ids, a_ids = encode(tokenizer, prompt[len(done) :]), encode(tokenizer, full[len(prompt) :])
        if not any(t == eos for t in a_ids) and not prompts.has_chat_template(tokenizer):
            a_ids.append(eos)
        ids += p_ids + a_ids
        labels += [IGNORE] * len(p_ids) + a_ids
        done = full
    text = done
    return Example(part, ids, labels, text, False, question=pairs[0][0], answer=pairs[0][1], meta={**meta, "pairs": [list(p) for p in pairs]})


def pack(examples: list[Example], seq_len: int, first_fit: bool = True) -> tuple[list[list[int]], list[list[int]], int]:
    """Pack examples into ``seq_len`` blocks without pad tokens; returns (ids, labels, filler_tokens).

    Plain text runs across block boundaries. A Q/A example that does not fit in the current block
    starts the next one; the gap is filled first by pulling the next plain-text example forward,
    then by the next Q/A example that fits it whole (first fit), else with the example's own leading
    tokens as untrained context. The last block is topped up with untrained tokens from the start
    of the stream. ``first_fit=False`` skips the Q/A look-ahead (the packing before it, for the bench).
    """
    blocks: list[list[int]] = []
    block_labels: list[list[int]] = []
    cur: list[int] = []
    cur_lab: list[int] = []
    filler = 0
    queue = list(examples)

    def emit() -> None:
        nonlocal cur, cur_lab
        blocks.append(cur)
        block_labels.append(cur_lab)
        cur, cur_lab = [], []

    while queue:
        ex = queue.pop(0)
        if ex.splittable:
            pos = 0
            while pos < len(ex.ids):
                take = min(seq_len - len(cur), len(ex.ids) - pos)
                cur += ex.ids[pos : pos + take]
                cur_lab += ex.labels[pos : pos + take]
                pos += take
                if len(cur) == seq_len:
                    emit()
            continue
        room = seq_len - len(cur)
        if len(ex.ids) <= room:
            cur += ex.ids
            cur_lab += ex.labels
        else:
            j = next((k for k, e in enumerate(queue) if e.splittable), None)
            if j is None and first_fit:
                j = next((k for k, e in enumerate(queue) if len(e.ids) <= room), None)
            if j is not None:
                queue.insert(0, ex)
                queue.insert(0, queue.pop(j + 1))
                continue
            cur += ex.ids[:room]
            cur_lab += [IGNORE] * room
            filler += room
            emit()
            cur, cur_lab = list(ex.ids), list(ex.labels)
        if len(cur) == seq_len:
            emit()
    if cur:
        stream = [t for e in examples for t in e.ids]
        need = seq_len - len(cur)
        top = (stream * (need // max(len(stream), 1) + 1))[:need]
        cur += top
        cur_lab += [IGNORE] * need
        filler += need
        emit()
    return blocks, block_labels, filler
