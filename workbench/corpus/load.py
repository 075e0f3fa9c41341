"""Load a corpus folder (corpus.toml, docs/, questions) into a Corpus with train/test splits assigned.

``load_corpus`` is the one way a run, the app and ``check-corpus`` read a corpus; the pieces it is
made of (``read_corpus_toml``, ``read_questions``, ``assign_splits``) are public so the checker can
collect every problem instead of stopping at the first.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import tomllib

from ..config import ConfigError, build_config, corpus_default_sections
from ..language import DEFAULT_LANGUAGE, LANGUAGES, detect_language, with_language_defaults
from ..storage import stable_hash
from ..types import Corpus, Document, Question
from .importers import add_question, collecting, parse_json, read_questions_csv, read_squad_v2, read_text_file
from .loaders import DEFAULT_MAX_BYTES, CorpusError, DocumentError, Progress, check_inside, load_documents
from .twins import resolve_explicit, twin_groups
from .twins import summary as twin_summary

__all__ = [
    "CorpusError",
    "DocumentError",
    "QUESTION_FILES",
    "assign_splits",
    "corpus_fingerprint",
    "find_questions_file",
    "load_corpus",
    "questions_fingerprint",
    "read_corpus_toml",
    "read_questions",
    "read_questions_jsonl",
]

QUESTION_FILES = ("questions.jsonl", "questions.csv", "questions.json")  # first present wins
KINDS = ("facts", "behaviour")


def read_corpus_toml(root: Path) -> dict[str, Any]:
    """corpus.toml as {title, description, kind, instruction, language, defaults}; sensible values when it is absent.

    ``language`` ("en", "ko") comes from the file or is detected from the questions; its index defaults (a Korean
    corpus: multilingual-e5-small, kiwi BM25 tokens) join ``defaults`` wherever the file sets none.
    """
    root = Path(root)
    info: dict[str, Any] = {"title": root.name, "description": "", "kind": "facts", "instruction": "", "defaults": {}}
    path = root / "corpus.toml"
    if not path.is_file():
        info["language"] = _detected_language(root)
        info["defaults"] = with_language_defaults({}, info["language"])
        return info
    try:
        data = tomllib.loads(read_text_file(check_inside(path, root)))
    except tomllib.TOMLDecodeError as exc:
        raise CorpusError(f"is not valid TOML ({exc}); fix it or delete it", path) from None
    except RecursionError:
        raise CorpusError("is nested too deeply to be a settings file; simplify it", path) from None
    for key in ("title", "description", "instruction"):
        if key in data:
            if not isinstance(data[key], str):
                raise CorpusError(f"{key} must be a string", path)
            info[key] = data[key].strip()
    kind = str(data.get("kind", "facts")).strip().lower().replace("behavior", "behaviour")
    if kind not in KINDS:
        raise CorpusError(
            f"kind {data.get('kind')!r} is unknown; use 'facts' (answers are looked up) or 'behaviour' (answers are labels/format)", path
        )
    info["kind"] = kind
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise CorpusError("[defaults] must be a table of settings, e.g. chunk_size = 600", path)
    if "language" in data:
        code = data["language"]
        if not isinstance(code, str) or code.strip().lower() not in LANGUAGES:
            raise CorpusError(f"language {code!r} is not supported; use one of {', '.join(LANGUAGES)} (or leave it out to detect it)", path)
        info["language"] = code.strip().lower()
    else:
        info["language"] = _detected_language(root)
    if isinstance(defaults.get("index", {}), dict):
        defaults = with_language_defaults(defaults, info["language"])
    try:
        corpus_default_sections(defaults, f"{path} [defaults]")
        build_config(str(root), "custom", defaults)  # values too: a bad one is named here, before any work
    except ConfigError as exc:
        raise CorpusError(str(exc).removeprefix(f"{path} "), path) from None
    info["defaults"] = defaults
    return info


def _detected_language(root: Path, limit: int = 200_000) -> str:
    """The language of the corpus's questions (the start of its question file), "en" when there is none."""
    for name in QUESTION_FILES:
        path = root / name
        if path.is_file():
            try:
                with open(check_inside(path, root), encoding="utf-8", errors="replace") as fh:
                    return detect_language(fh.read(limit))
            except (OSError, CorpusError):  # the question reader reports these properly
                return DEFAULT_LANGUAGE
    return DEFAULT_LANGUAGE


def read_questions_jsonl(path: Path, errors: list[CorpusError] | None = None) -> list[Question]:
    """Questions from a JSONL file, one object a line; every error names file and line (collected if ``errors``)."""
    path = Path(path)
    questions: list[Question] = []
    seen: dict[str, int | str] = {}
    for lineno, raw in enumerate(read_text_file(path).splitlines(), start=1):
        if not raw.strip():
            continue
        with collecting(errors):
            add_question(parse_json(raw, path, lineno), path, lineno, seen, questions)
    return questions


def find_questions_file(root: Path) -> Path:
    """The corpus's question file: questions.jsonl, else questions.csv, else a SQuAD v2 questions.json."""
    for name in QUESTION_FILES:
        if (Path(root) / name).is_file():
            return check_inside(Path(root) / name, root)
    raise CorpusError(f"no question file; add {', '.join(QUESTION_FILES[:-1])} or a SQuAD v2 {QUESTION_FILES[-1]}", root)


def read_questions(root: Path, errors: list[CorpusError] | None = None) -> tuple[list[Question], Path]:
    """(questions, the file they came from) for a corpus folder; no question at all is an error."""
    path = find_questions_file(root)
    reader = {".jsonl": read_questions_jsonl, ".csv": read_questions_csv, ".json": read_squad_v2}[path.suffix]
    questions = reader(path, errors)
    if not questions and errors is None:
        raise CorpusError("holds no questions; add one JSON object a line with question and answers", path)
    return questions, path


def _stratum(q: Question) -> str:
    return f"{q.answerable}|{q.meta.get('type', '')}"


def assign_splits(
    questions: list[Question], test_fraction: float = 0.4, seed: int = 0, groups: list[list[int]] | None = None
) -> list[Question]:
    """Keep explicit splits; give the rest a seeded split stratified by answerable and meta type (deterministic).

    ``groups`` (indices of twin questions, from ``twins.twin_groups``) keep each group on one side:
    free twins follow an explicit one, train twins of a test question are withheld, and free groups
    are split as units. Without groups every question is its own unit.
    """
    if not 0 < test_fraction < 1:
        raise CorpusError(f"test_fraction {test_fraction} must be between 0 and 1")
    questions, free_groups = resolve_explicit(questions, groups if groups is not None else [[i] for i in range(len(questions))])
    units = {min((questions[i] for i in g), key=lambda q: q.id).id: g for g in free_groups}
    reps = [q for q in questions if q.id in units]
    strata: dict[str, list[Question]] = defaultdict(list)
    for q in sorted(reps, key=lambda q: q.id):
        strata[_stratum(q)].append(q)
    # Largest-remainder allocation so the total held out is round(n * fraction) even with tiny strata.
    total = round(len(reps) * test_fraction)
    if len(reps) >= 2:
        total = min(max(total, 1), len(reps) - 1)
    keys = sorted(strata)
    quota = {k: int(len(strata[k]) * test_fraction) for k in keys}
    rng = random.Random(f"workbench-split-{seed}")
    order = sorted(keys, key=lambda k: (-(len(strata[k]) * test_fraction - quota[k]), rng.random()))
    for k in order[: max(total - sum(quota.values()), 0)]:
        quota[k] += 1
    test_idx: set[int] = set()
    for k in keys:
        members = list(strata[k])
        random.Random(f"workbench-split-{seed}-{k}").shuffle(members)
        for q in members[: quota[k]]:
            test_idx.update(units[q.id])
    free_idx = {i for g in free_groups for i in g}
    return [dataclasses.replace(q, split="test" if i in test_idx else "train") if i in free_idx else q for i, q in enumerate(questions)]


def corpus_fingerprint(corpus: Corpus) -> str:
    """Stable hash of the document ids and texts: the cache key of anything built from the documents."""
    return documents_fingerprint(corpus.documents)


def documents_fingerprint(documents: list[Document]) -> str:
    """Stable hash of (doc_id, sha256 of text) pairs, order-independent."""
    return stable_hash(sorted((d.doc_id, hashlib.sha256(d.text.encode("utf-8")).hexdigest()) for d in documents))


def questions_fingerprint(questions: list[Question]) -> str:
    """Stable hash of the questions' contract fields and splits (meta and line numbers excluded)."""
    return stable_hash([(q.id, q.question, q.answers, q.answerable, q.split, q.sources) for q in questions])


def load_corpus(
    path: str | Path,
    allow_unreadable: bool = False,
    test_fraction: float = 0.4,
    seed: int = 0,
    progress: Progress | None = None,
    max_file_bytes: int = DEFAULT_MAX_BYTES,
    embedder: Any = None,
) -> Corpus:
    """Read a corpus folder exactly as a run uses it: settings, documents, questions with splits.

    Twin questions (same normalised text; with an ``embedder`` also paraphrases with the same
    answer) stay on one side of the split; ``Corpus.twins`` says how many were grouped or withheld.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise CorpusError("is not a folder; give the corpus folder holding docs/ and questions.jsonl", root)
    info = read_corpus_toml(root)
    documents, problems = load_documents(root / "docs", allow_unreadable=allow_unreadable, progress=progress, max_bytes=max_file_bytes)
    for problem in problems if progress else ():
        progress(f"skipped {problem}", 1.0)
    questions, _ = read_questions(root)
    groups, joined = twin_groups(questions, embedder)
    questions = assign_splits(questions, test_fraction=test_fraction, seed=seed, groups=groups)
    return Corpus(
        root=root.resolve(),
        documents=documents,
        questions=questions,
        title=info["title"],
        description=info["description"],
        kind=info["kind"],
        instruction=info["instruction"],
        language=info["language"],
        defaults=info["defaults"],
        twins=twin_summary(questions, groups, joined, embedder is not None),
    )


def corpus_defaults(corpus: str) -> dict[str, Any]:
    """corpus.toml [defaults], read and checked exactly as the corpus loader does."""
    try:
        return read_corpus_toml(Path(corpus))["defaults"]
    except CorpusError as exc:
        raise ConfigError(str(exc)) from None
