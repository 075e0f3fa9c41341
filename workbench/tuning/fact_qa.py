"""Questions written for the facts of every sentence: pick answer spans, have the base model ask for each.

Free-form generation ("write 3 questions about this passage") lets a small writer repeat the easy
facts: on kestrel_labs only 16 of 93 held-out answers were the answer of any generated pair. Here
the answers are chosen first, from every sentence of every chunk (numbers, dates, amounts, names;
never by looking at questions), and the model writes one question per (sentence, answer): the same
corpus covers 51 of those 93 with one answer per sentence, 63 with two. Each question is cached on
its own, keyed by the writer, the prompt, the sentence and the answer, so a larger budget reuses
what a smaller one wrote.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..methods import prompts
from ..paths import cache_dir
from ..storage import atomic_write_json, stable_hash
from ..textnorm import normalize_answer
from .corpus_qa import quality_check

FACT_VERSION = 1
Progress = Callable[[str, float], None]
FACT_PROMPT = (
    'Write one question whose answer is "{answer}", using only the facts in the text. The question must name its '
    "subject in full and must not contain the answer.\n\nText ({title}): {sentence}\n\nQuestion:"
)
_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\.?"
_SPAN = re.compile(
    rf"{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}\s+{_MONTH}\s+\d{{4}}|{_MONTH}\s+\d{{4}}"  # dates
    r"|(?:[$€£]|USD\s?|EUR\s?)\d[\d,]*(?:\.\d+)?(?:\s?(?:million|billion|k|M))?"  # amounts
    r"|\d[\d,]*(?:[.:]\d+)*(?:\s?(?:%|°C|°F)|(?:\s[a-z]+){1,2})?"  # a number (or time) and up to two unit words
    r"|[A-Z][\w\-]*(?:[ \-](?:of|de|the|and|&)?\s?[A-Z][\w\-]*)*"  # capitalised names
)
_SENTENCE = re.compile(r"(?<=[.!?;])\s+(?=[A-Z0-9\"'(])|\n+")
_NOT_UNITS = set("in on at by of and or to for from with per as than the a an is was are were has had that which who when it its".split())
_NUMERIC = re.compile(rf"^(?:[$€£\d]|USD|EUR|{_MONTH}\s+\d)")
_LEADING = set(
    "The A An This That These Those It Its In On At For And But Or If When Where What Who How Each Every All Any Our We You They He She His "
    "Her Their There Some No Not Within During After Before Since Until From By With Per Under Over About Around Between Across Both Only Also".split()
)
MAX_SPAN_WORDS = 6


@dataclass(frozen=True)
class Fact:
    chunk: int  # index of the first chunk holding the sentence
    doc_id: str
    title: str
    sentence: str
    answer: str

    @property
    def key(self) -> str:
        return stable_hash(self.title, self.sentence, self.answer)


def _plain_words(texts: list[str]) -> set[str]:
    return {w for t in texts for w in re.findall(r"\b[a-z][a-z\-]+\b", t)}


def answer_spans(sentence: str, plain_words: set[str]) -> list[str]:
    """Candidate answers in a sentence: numbers, dates and amounts first, then names (the sentence's subject last); labels ("Revenue:") skipped."""
    found: list[str] = []
    for m in _SPAN.finditer(sentence):
        words = m.group(0).strip(" ,.-").split()
        while words and words[0] in _LEADING:
            words = words[1:]
        cut = next((i for i, w in enumerate(words[1:], 1) if w.lower() in _NOT_UNITS), len(words))
        words = words[:cut]  # "2009 in Tartu": the number without "in"
        span = " ".join(words).strip(" ,.-")
        if len(span) < 2 or span in found or len(words) > MAX_SPAN_WORDS:
            continue
        if not _NUMERIC.match(span):
            if span.isupper() and len(span) > 4:  # headings in capitals
                continue
            if re.search(re.escape(span) + r"\s*:", sentence):
                continue
            if len(words) == 1 and (span.lower() in plain_words or sentence.lstrip("-#* ").startswith(span)):
                continue  # a capitalised ordinary word
        found.append(span)
    opening = sentence.lstrip("-#* ")
    return sorted(found, key=lambda s: (not _NUMERIC.match(s), opening.startswith(s), -len(s.split())))  # the subject last


def _title(text: str, doc_id: str) -> str:
    first = next((line.strip("#*- ").strip() for line in text.splitlines() if line.strip()), "")
    return first[:80] if 0 < len(first.split()) <= 12 else doc_id


def facts(chunks: list[tuple[str, str]], per_sentence: int) -> list[Fact]:
    """Up to ``per_sentence`` answers from every sentence of every chunk (a sentence shared by overlapping chunks once)."""
    plain = _plain_words([t for _, t in chunks])
    titles: dict[str, str] = {}
    seen: set[str] = set()
    out: list[Fact] = []
    for ci, (doc_id, text) in enumerate(chunks):
        title = titles.setdefault(doc_id, _title(text, doc_id))
        for sentence in _SENTENCE.split(text):
            sentence = sentence.strip()
            key = normalize_answer(sentence)
            if len(sentence.split()) < 4 or key in seen:
                continue
            seen.add(key)
            out += [Fact(ci, doc_id, title, sentence, a) for a in answer_spans(sentence, plain)[:per_sentence]]
    return out


def facts_cache_path(model_fingerprint: str) -> Any:
    return cache_dir("generated_qa") / f"facts-{stable_hash(FACT_VERSION, model_fingerprint, FACT_PROMPT)}.json"


def generate_fact_pairs(
    generator: Any,
    chunks: list[tuple[str, str]],
    per_sentence: int,
    seed: int = 0,
    progress: Progress | None = None,
    batch_size: int = 16,
) -> dict[str, Any]:
    """One question per fact of every chunk; questions already written by this generator are reused.

    Returns {"pairs": [{"question", "answer", "doc_id", "chunk", "synthetic": True}], "stats", "cache_hit", "key"}.
    """
    items = facts(chunks, per_sentence)
    path = facts_cache_path(generator.fingerprint)
    written: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    todo = [f for f in items if f.key not in written]
    started = time.perf_counter()
    out_tokens = prompt_tokens = 0
    if todo:
        rendered = [prompts.render(generator.tok, [{"role": "user", "content": FACT_PROMPT.format(answer=f.answer, title=f.title, sentence=f.sentence)}]) for f in todo]
        out = generator.generate(rendered, max_new_tokens=40, temperature=0.0, seed=seed, stop=["\n"], batch_size=batch_size, progress=progress)
        written.update({f.key: r.text.strip() for f, r in zip(todo, out, strict=True)})
        out_tokens, prompt_tokens = sum(r.output_tokens for r in out), sum(r.prompt_tokens for r in out)
        atomic_write_json(path, written)
    pairs, seen = [], set()
    stats = {"chunks": len(chunks), "asked": len(items), "written_now": len(todo), "parsed": 0, "answer_not_in_chunk": 0, "duplicate_question": 0, "malformed": 0, "answer_in_question": 0}
    for f in items:
        question = written[f.key].removeprefix("Question:").strip().strip('"').strip()
        stats["parsed"] += bool(question)
        kept, dropped = quality_check([(question, f.answer)], chunks[f.chunk][1], seen)
        for k, v in dropped.items():
            stats[k] += v
        pairs += [{"question": q, "answer": a, "doc_id": f.doc_id, "chunk": f.chunk, "synthetic": True} for q, a in kept]
    stats.update(kept=len(pairs), chunks_covered=len({p["chunk"] for p in pairs}), prompt_tokens=prompt_tokens, output_tokens=out_tokens)
    stats["seconds"] = round(time.perf_counter() - started, 2) if todo else 0.0
    key = stable_hash(path.name, [f.key for f in items])
    return {"key": key, "pairs": pairs, "stats": stats, "cache_hit": not todo}
