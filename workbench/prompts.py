"""Prompt builders shared by every strategy and by LoRA training data, so training and evaluation match."""

from __future__ import annotations

from typing import Any

from .config import ABSTAIN_REPLY

SYSTEM_FACTS = (
    "You answer questions about a specific organisation's documents. Reply with the short answer only "
    f'(a few words), no explanation. If you do not know the answer, reply exactly "{ABSTAIN_REPLY}".'
)
SYSTEM_RAG = (
    "Answer the question using only the numbered context passages. Reply with the short answer only "
    "(a few words) followed by the passage number you used in brackets, e.g. \"42 days [2]\". "
    f'If the passages do not contain the answer, reply exactly "{ABSTAIN_REPLY}".'
)

Messages = list[dict[str, str]]


def _system(instruction: str, rag: bool) -> str:
    base = SYSTEM_RAG if rag else SYSTEM_FACTS
    return f"{base}\n{instruction}".strip() if instruction else base


def zero_shot_messages(question: str, instruction: str = "") -> Messages:
    """Closed book: the question alone (also the prompt of the `lora` strategy)."""
    return [{"role": "system", "content": _system(instruction, rag=False)}, {"role": "user", "content": question}]


def few_shot_messages(question: str, examples: list[tuple[str, str]], instruction: str = "") -> Messages:
    """Closed book with k solved examples from the train split as prior turns."""
    msgs: Messages = [{"role": "system", "content": _system(instruction, rag=False)}]
    for q, a in examples:
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    msgs.append({"role": "user", "content": question})
    return msgs


def format_contexts(contexts: list[str]) -> str:
    return "\n\n".join(f"[{i}] {c.strip()}" for i, c in enumerate(contexts, 1))


def rag_messages(question: str, contexts: list[str], instruction: str = "") -> Messages:
    """Numbered passages then the question (also the prompt of `rag+lora`)."""
    user = f"Context:\n{format_contexts(contexts)}\n\nQuestion: {question}"
    return [{"role": "system", "content": _system(instruction, rag=True)}, {"role": "user", "content": user}]


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render(tokenizer: Any, messages: Messages, answer: str | None = None) -> str:
    """Prompt text for generation (answer=None) or a full training example (answer given).

    Chat models use their chat template; base models get a plain transcript whose turns end at a
    blank line, so generation stops on the stop string "\\n\\n".
    """
    if has_chat_template(tokenizer):
        if answer is None:
            return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)
    lines: list[str] = []
    for m in messages:
        if m["role"] == "system":
            lines.append(m["content"] + "\n")
        elif m["role"] == "user":
            lines.append(f"Question: {m['content']}")
        else:
            lines.append(f"Answer: {m['content']}\n")
    lines.append("Answer:" + (f" {answer}\n" if answer is not None else ""))
    return "\n".join(lines)


PLAIN_STOP = ["\n\n", "\nQuestion:"]


def stop_strings(tokenizer: Any) -> list[str]:
    """Stop strings for base models without a chat template (chat models stop at EOS)."""
    return [] if has_chat_template(tokenizer) else PLAIN_STOP
