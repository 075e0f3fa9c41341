"""Prompt builders shared by every strategy and by LoRA training data, so training and evaluation match."""

from __future__ import annotations

import re
from typing import Any

from ..config import ABSTAIN_REPLY
from ..language import language as _language

SYSTEM_FACTS = _language("en").system_facts.format(abstain=ABSTAIN_REPLY)  # wording in workbench.language
# No in-text citation request: on Qwen2.5-0.5B it cut RAG accuracy from 14/18 to 4/18 (the model copied the
# example "42 days [2]" or replied with a bare passage number); strategies attribute passages instead.
SYSTEM_RAG = _language("en").system_rag.format(abstain=ABSTAIN_REPLY)

Messages = list[dict[str, str]]


def _system(instruction: str, rag: bool, language: str = "en") -> str:
    lang = _language(language)
    base = (lang.system_rag if rag else lang.system_facts).format(abstain=lang.abstain_reply)
    return f"{base}\n{instruction}".strip() if instruction else base


def zero_shot_messages(question: str, instruction: str = "", language: str = "en") -> Messages:
    """Closed book: the question alone (also the prompt of the `lora` strategy); wording in the corpus's ``language``."""
    return [{"role": "system", "content": _system(instruction, False, language)}, {"role": "user", "content": question}]


def few_shot_messages(question: str, examples: list[tuple[str, str]], instruction: str = "", language: str = "en") -> Messages:
    """Closed book with k solved examples from the train split as prior turns."""
    msgs: Messages = [{"role": "system", "content": _system(instruction, False, language)}]
    for q, a in examples:
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    msgs.append({"role": "user", "content": question})
    return msgs


def format_contexts(contexts: list[str]) -> str:
    return "\n\n".join(f"[{i}] {c.strip()}" for i, c in enumerate(contexts, 1))


def rag_messages(question: str, contexts: list[str], instruction: str = "", language: str = "en") -> Messages:
    """Numbered passages then the question (also the prompt of `rag+lora`)."""
    lang = _language(language)
    user = f"{lang.context_label}:\n{format_contexts(contexts)}\n\n{lang.question_label}: {question}"
    return [{"role": "system", "content": _system(instruction, True, language)}, {"role": "user", "content": user}]


_SPECIAL_PATTERNS: dict[int, tuple[Any, re.Pattern[str] | None]] = {}


def _special_pattern(tokenizer: Any) -> re.Pattern[str] | None:
    """A regex matching the tokenizer's added/special token strings (cached per tokenizer)."""
    cached = _SPECIAL_PATTERNS.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return cached[1]
    strings = {str(t) for t in getattr(tokenizer, "all_special_tokens", []) or []}
    strings |= {getattr(t, "content", str(t)) for t in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values()}
    strings = {t for t in strings if len(t) > 1}
    alternatives = "|".join(re.escape(t) for t in sorted(strings, key=len, reverse=True))
    first = "".join(sorted({re.escape(t[0]) for t in strings}))
    pattern = re.compile(f"(?=[{first}])(?:{alternatives})") if strings else None  # lookahead: cheap on plain prose
    _SPECIAL_PATTERNS[id(tokenizer)] = (tokenizer, pattern)
    return pattern


def defang_special_tokens(tokenizer: Any, text: str) -> str:
    """Break up special-token strings (e.g. ``<|im_start|>``) inside untrusted text so it cannot open a new chat turn."""
    pattern = _special_pattern(tokenizer)
    if pattern is None or not text:
        return text
    return pattern.sub(lambda m: m.group(0)[0] + " " + m.group(0)[1:], text)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render(tokenizer: Any, messages: Messages, answer: str | None = None) -> str:
    """Prompt text for generation (answer=None) or a full training example (answer given).

    Chat models use their chat template; base models get a plain transcript whose turns end at a
    blank line, so generation stops on the stop string "\\n\\n".
    """
    messages = [{**m, "content": defang_special_tokens(tokenizer, m["content"])} for m in messages]
    if answer is not None:
        answer = defang_special_tokens(tokenizer, answer)
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
