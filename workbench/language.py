"""Per-language defaults: the abstention reply, prompt wording, BM25 tokenizer and embedder of a corpus's language.

A corpus declares ``language = "ko"`` in corpus.toml, or its language is detected from its questions
(Hangul share). English ("en") is the default, and its defaults are exactly what the workbench did before
languages existed, so English corpora are unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")
_LETTER = re.compile(r"[^\W\d_]")
HANGUL_SHARE = 0.3  # a text whose letters are at least this share Hangul is Korean


@dataclass(frozen=True)
class Language:
    """What changes with a corpus's language."""

    code: str
    name: str
    abstain_reply: str
    system_facts: str  # closed-book system prompt ({abstain} is filled in)
    system_rag: str  # system prompt with numbered passages
    context_label: str = "Context"
    question_label: str = "Question"
    index_defaults: dict[str, Any] = field(default_factory=dict)  # [defaults.index] unless the corpus sets them
    writer_note: str = ""  # added to the Q/A writer's prompt (tuning.corpus_qa): the language its questions must be in


LANGUAGES: dict[str, Language] = {
    "en": Language(
        "en",
        "English",
        "I don't know",
        "You answer questions about a specific organisation's documents. Reply with the short answer only "
        '(a few words), no explanation. If you do not know the answer, reply exactly "{abstain}".',
        "Answer the question using only the numbered context passages. Reply with the short answer only "
        '(a few words), no explanation. If the passages do not contain the answer, reply exactly "{abstain}".',
    ),
    "ko": Language(
        "ko",
        "Korean",
        "모르겠습니다",
        "당신은 특정 조직의 문서에 관한 질문에 한국어로 답합니다. 설명 없이 짧은 답(몇 단어)만 답하세요. "
        '답을 모르면 정확히 "{abstain}"라고만 답하세요.',
        "번호가 붙은 문맥 단락만 사용해 질문에 한국어로 답하세요. 설명 없이 짧은 답(몇 단어)만 답하세요. "
        '단락에 답이 없으면 정확히 "{abstain}"라고만 답하세요.',
        context_label="문맥",
        question_label="질문",
        index_defaults={"embedder": "multilingual-e5-small", "bm25_tokenizer": "kiwi"},
        writer_note="질문과 답은 모두 한국어로 쓰세요. 답은 단락에서 그대로 복사하세요.",  # questions and answers in Korean, the answer copied from the passage
    ),
}
DEFAULT_LANGUAGE = "en"


def language(code: str | None) -> Language:
    """The Language for ``code`` (English for None or ""); ValueError naming the known codes otherwise."""
    code = (code or DEFAULT_LANGUAGE).strip().lower()
    if code not in LANGUAGES:
        raise ValueError(f"language {code!r} is not supported; use one of {', '.join(LANGUAGES)}")
    return LANGUAGES[code]


def has_hangul(text: str) -> bool:
    return bool(_HANGUL.search(text))


def detect_language(text: str) -> str:
    """ "ko" when at least 30% of the letters are Hangul, else "en"."""
    letters = len(_LETTER.findall(text))
    return "ko" if letters and len(_HANGUL.findall(text)) / letters >= HANGUL_SHARE else DEFAULT_LANGUAGE


def abstain_replies() -> tuple[str, ...]:
    """The abstention reply of every supported language (scoring recognises all of them)."""
    return tuple(lang.abstain_reply for lang in LANGUAGES.values())


def with_language_defaults(defaults: dict[str, Any], code: str) -> dict[str, Any]:
    """corpus.toml [defaults] with the language's index defaults added where the corpus sets none."""
    extra = language(code).index_defaults
    if not extra:
        return defaults
    index = defaults.get("index") if isinstance(defaults.get("index"), dict) else {}
    merged = {**extra, **index}
    return {**defaults, "index": merged}
