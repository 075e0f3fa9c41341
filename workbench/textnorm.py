"""SQuAD-style answer normalisation, shared by scoring, corpus checks and leakage guards."""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace (SQuAD v2 evaluation)."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    return normalize_answer(text).split()


def contains_tokens(haystack: str, needle: str) -> bool:
    """True if the normalised needle occurs in the normalised haystack on token boundaries."""
    n = normalize_answer(needle)
    if not n:
        return False
    return f" {n} " in f" {normalize_answer(haystack)} "
