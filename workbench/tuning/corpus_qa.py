"""Question/answer pairs generated from every chunk of the corpus by the base model, quality-checked and cached.

One prompt per chunk asks for several questions in different wordings, each with a short answer
copied from the passage; a pair is kept only when its answer occurs in that chunk (extractive
check), its question is new and it is not a twin of a held-out question. The pairs are cached by
content (model, chunk texts, prompt, count), so an unchanged rerun reuses them without generating.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..language import language as _language
from ..methods import prompts
from ..paths import cache_dir
from ..storage import atomic_write_json, stable_hash
from ..textnorm import contains_tokens, normalize_answer

GEN_VERSION = 1
Progress = Callable[[str, float], None]
QA_PROMPT = (
    "Read the passage. Write {n} different questions that the passage answers, each followed by its short answer "
    "copied word for word from the passage (a name, number, date or short phrase). Each question must name its "
    "subject in full, so it can be understood without the passage.\nReply exactly in this format:\n{form}\n\nPassage:\n{passage}"
)
_PAIR = re.compile(r"Q\d*\s*[:.]\s*(.+?)\s*\n+\s*A\d*\s*[:.]\s*(.+)")
MAX_ANSWER_WORDS = 12


def parse_pairs(text: str) -> list[tuple[str, str]]:
    """(question, answer) pairs from a "Q: ... / A: ..." reply; lines that do not fit are skipped."""
    return [(q.strip(), a.strip().split("\n")[0].strip()) for q, a in _PAIR.findall(text)]


def gives_away(question: str, answer: str) -> bool:
    """True when every word of the answer is already in the question (possessive "'s" ignored)."""
    words = set(normalize_answer(question).split())
    words |= {w[:-1] for w in words if w.endswith("s")}
    return all(w in words for w in normalize_answer(answer).split())


def quality_check(pairs: list[tuple[str, str]], chunk: str, seen: set[str]) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """Keep pairs whose answer is in the chunk, short, not given away by the question, and whose question is new."""
    kept, dropped = [], {"answer_not_in_chunk": 0, "duplicate_question": 0, "malformed": 0, "answer_in_question": 0}
    for q, a in pairs:
        a = a.rstrip(".").strip()
        key = normalize_answer(q)
        if not key or not normalize_answer(a) or len(a.split()) > MAX_ANSWER_WORDS or normalize_answer(a) == key or not q.rstrip().endswith("?"):
            dropped["malformed"] += 1
        elif gives_away(q, a):
            dropped["answer_in_question"] += 1  # "What is Chiara Valdemar's title?" -> "Chiara Valdemar" teaches nothing
        elif key in seen:
            dropped["duplicate_question"] += 1
        elif not contains_tokens(chunk, a):
            dropped["answer_not_in_chunk"] += 1
        else:
            seen.add(key)
            kept.append((q, a))
    return kept, dropped


def _drop_given_away(blob: dict[str, Any]) -> dict[str, Any]:
    """Pairs cached before the answer-in-question check get it on reading (the generation itself is unchanged)."""
    pairs = [p for p in blob["pairs"] if not gives_away(p["question"], p["answer"])]
    stats = dict(blob["stats"])
    stats["answer_in_question"] = stats.get("answer_in_question", 0) + len(blob["pairs"]) - len(pairs)
    stats["kept"] = len(pairs)
    stats["chunks_covered"] = len({p["chunk"] for p in pairs})
    return {**blob, "pairs": pairs, "stats": stats}


def qa_prompt(language: str = "en") -> str:
    """The writer's prompt for a corpus in ``language``: the English one, plus the language's note where it has one."""
    note = _language(language).writer_note
    return QA_PROMPT.replace("\nReply exactly", f" {note}\nReply exactly", 1) if note else QA_PROMPT


def generation_key(model_fingerprint: str, chunks: list[tuple[str, str]], per_chunk: int, language: str = "en") -> str:
    """Cache key: the generator, the chunk texts, the prompt and the number of pairs asked per chunk."""
    return stable_hash(GEN_VERSION, model_fingerprint, [(d, stable_hash(t)) for d, t in chunks], qa_prompt(language), per_chunk)


def generate_pairs(
    generator: Any,
    chunks: list[tuple[str, str]],
    per_chunk: int,
    seed: int = 0,
    progress: Progress | None = None,
    batch_size: int = 16,
    language: str = "en",
) -> dict[str, Any]:
    """Generated pairs for every chunk, from the cache when the same generator already wrote them for these chunks.

    Returns {"pairs": [{"question", "answer", "doc_id", "chunk", "synthetic": True}], "stats": {...}, "cache_hit"}.
    """
    key = generation_key(generator.fingerprint, chunks, per_chunk, language)
    path = cache_dir("generated_qa") / f"{key}.json"
    if path.is_file():
        blob = json.loads(path.read_text(encoding="utf-8"))
        return {**_drop_given_away(blob), "cache_hit": True}
    form = "\n".join("Q: ...\nA: ..." for _ in range(per_chunk))
    rendered = [prompts.render(generator.tok, [{"role": "user", "content": qa_prompt(language).format(n=per_chunk, form=form, passage=t)}]) for _, t in chunks]
    out = generator.generate(rendered, max_new_tokens=28 * per_chunk + 8, temperature=0.0, seed=seed, stop=[], batch_size=batch_size, progress=progress)
    pairs, seen = [], set()
    stats = {"chunks": len(chunks), "asked": len(chunks) * per_chunk, "parsed": 0, "answer_not_in_chunk": 0, "duplicate_question": 0, "malformed": 0, "answer_in_question": 0}
    for ci, ((doc_id, text), r) in enumerate(zip(chunks, out, strict=True)):
        parsed = parse_pairs(r.text)[:per_chunk]
        stats["parsed"] += len(parsed)
        kept, dropped = quality_check(parsed, text, seen)
        for k, v in dropped.items():
            stats[k] += v
        pairs += [{"question": q, "answer": a, "doc_id": doc_id, "chunk": ci, "synthetic": True} for q, a in kept]
    stats["kept"] = len(pairs)
    stats["chunks_covered"] = len({p["chunk"] for p in pairs})
    stats["prompt_tokens"] = sum(r.prompt_tokens for r in out)
    stats["output_tokens"] = sum(r.output_tokens for r in out)
    stats["seconds"] = round(sum(r.latency_s for r in out), 2)
    blob = {"key": key, "pairs": pairs, "stats": stats}
    atomic_write_json(path, blob)
    return {**blob, "cache_hit": False}


def cached_pairs_path(key: str) -> Path:
    return cache_dir("generated_qa") / f"{key}.json"
