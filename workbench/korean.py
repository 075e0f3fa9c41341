"""Korean text through kiwipiepy (Kiwi morphological analyser; its model ships in the kiwipiepy-model package).

Used where whitespace words do not work for Korean, because particles and endings attach to the word
("부산에", "3,200명입니다"): BM25 tokens and the answer matcher's words. Loaded lazily, once per process.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from .errors import WorkbenchError

# Morpheme tags without content: particles (J*), endings (E*), the copula (VCP), affixes that only inflect
# (XSV/XSA), and symbols. Nouns, verb/adjective stems, numbers (SN), Latin (SL) and Hanja (SH) stay.
_GRAMMAR = ("J", "E", "VCP", "XSV", "XSA", "XPN", "SF", "SP", "SS", "SE", "SO", "SW", "SB", "W_", "Z")
_LOCK = threading.Lock()


class KoreanTokenizerError(WorkbenchError, RuntimeError):
    """kiwipiepy is missing or cannot load its model."""


@lru_cache(maxsize=1)
def kiwi() -> Any:
    """The process-wide Kiwi analyser."""
    try:
        from kiwipiepy import Kiwi
    except ImportError as exc:
        raise KoreanTokenizerError("Korean text needs kiwipiepy; run: pip install kiwipiepy==0.24.1 kiwipiepy-model==0.24.0") from exc
    try:
        return Kiwi(num_workers=0)
    except Exception as exc:  # noqa: BLE001 - one line saying what to do
        raise KoreanTokenizerError(f"kiwipiepy cannot load its model ({type(exc).__name__}: {str(exc)[:160]}); reinstall kiwipiepy-model==0.24.0") from exc


def _content(tag: str) -> bool:
    return not tag.startswith(_GRAMMAR)


@lru_cache(maxsize=65536)
def content_morphemes(text: str) -> tuple[str, ...]:
    """The content morphemes of ``text``, lower-cased: "본사는 부산에 있습니다" -> ("본사", "부산", "있")."""
    with _LOCK:  # one analyser shared by threads
        analysed = kiwi().tokenize(text)
    return tuple(t.form.lower() for t in analysed if _content(t.tag))


def bm25_tokens_ko(text: str) -> list[str]:
    """BM25's view of a Korean (or mixed) text: content morphemes, numbers without thousands separators."""
    return [m.replace(",", "") for m in content_morphemes(text)]
