"""Questions in and out: one record validator for every format, CSV and SQuAD v2 import, JSONL export.

Every format goes through ``question_from_record`` so a question means the same whether it came from
JSONL, CSV or SQuAD; errors name the file and the line (or JSON position) and say what to do.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..storage import atomic_write_jsonl, atomic_write_text
from ..types import Question
from .loaders import CorpusError

MAX_QUESTION_CHARS = 4000
MAX_QUESTION_FILE_BYTES = 200 * 1024 * 1024
SPLITS = ("train", "test")
_RESERVED = {"id", "question", "answers", "answer", "answerable", "split", "sources"}
_TRUE = {"true", "yes", "y", "1"}
_FALSE = {"false", "no", "n", "0"}


_NON_FINITE = re.compile(r"(?<![\"\w])(-?Infinity|NaN)(?![\"\w])")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number; write a finite number or a string")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:30]} is too large to be a finite number; write a smaller number or a string")
    return value


def parse_json(text: str, file: str | Path, line: int | None, what: str = "not valid JSON") -> Any:
    """Strict JSON: no NaN/Infinity, no numbers that overflow, bounded nesting; CorpusError naming file:line otherwise."""
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        where = line if line is not None else exc.lineno
        raise CorpusError(f"{what} ({exc.msg} at column {exc.colno}); fix or remove the line", file, where) from None
    except RecursionError:
        raise CorpusError("JSON is nested too deeply to be a question record; flatten it", file, line) from None
    except ValueError as exc:  # NaN / Infinity / overflow / over-long integer
        where = line
        if where is None:
            m = _NON_FINITE.search(text)
            where = text.count("\n", 0, m.start()) + 1 if m else None
        reason = str(exc).splitlines()[0]
        if "integer string conversion" in reason:
            reason = "holds a number with more than 4,300 digits; write it as a string"
        raise CorpusError(reason, file, where) from None


def _check_text(rec: Any, where: str, file: str | Path, line: int | None) -> None:
    """Every string in a record (keys too) must round-trip through UTF-8: a lone surrogate escape such as \\ud800 cannot."""
    stack = [rec]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = item[exc.start : exc.start + 1].encode("unicode_escape").decode("ascii")
                raise CorpusError(
                    f"{where}text holds {bad}, a lone UTF-16 surrogate that cannot be written as UTF-8; fix or remove that escape", file, line
                ) from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise CorpusError(f"{where}holds {item}, not a finite number; write a number or a string", file, line)


def _answer_shapes(value: Any) -> Any:
    """Answers as public sets write them, as a list of aliases: Hugging Face SQuAD ``{"text": [...], "answer_start": [...]}``,
    TriviaQA ``{"value": ..., "aliases": [...]}``; anything else is returned unchanged (and validated by _alias_list)."""
    if isinstance(value, dict):
        if "text" in value:
            text = value["text"]
            return [text] if isinstance(text, str) else text
        if "value" in value or "aliases" in value:
            first = [value["value"]] if isinstance(value.get("value"), str) else []
            return first + (value.get("aliases") if isinstance(value.get("aliases"), list) else [])
    return value


def _alias_list(value: Any, where: str, file: str | Path, line: int | None, field: str = "answers") -> list[str]:
    if isinstance(value, str):
        raise CorpusError(f'{where}"{field}" must be a list of strings, e.g. ["Paris"]; wrap the value in [ ]', file, line)
    if not isinstance(value, list):
        raise CorpusError(f'{where}"{field}" must be a list of strings, not {type(value).__name__}; e.g. ["Paris"]', file, line)
    out: list[str] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise CorpusError(f'{where}"{field}" holds {json.dumps(item)[:40]}, not a string; use strings only', file, line)
        text = str(item).strip()
        if text and text not in out:
            out.append(text)
    return out


def _normalise_source(value: str) -> str:
    src = value.strip().replace("\\", "/")
    src = re.sub(r"^(\./)?docs/", "", src)
    return src.lstrip("/")


def question_from_record(rec: dict[str, Any], file: str | Path, line: int | None, where: str = "") -> Question:
    """Validate one raw question record (any format) into a Question; CorpusError names file:line on bad input."""
    if not isinstance(rec, dict):
        raise CorpusError(f"{where}expected a JSON object {{...}}, got {type(rec).__name__}; one question object per line", file, line)
    _check_text(rec, where, file, line)
    if "question" not in rec:
        raise CorpusError(f'{where}missing "question"; every record needs a "question" text', file, line)
    text = rec["question"]
    if not isinstance(text, str) or not text.strip():
        raise CorpusError(f'{where}"question" is empty or not a string; write the question text', file, line)
    text = text.strip()
    if len(text) > MAX_QUESTION_CHARS:
        raise CorpusError(
            f"{where}question is {len(text):,} characters long, over the {MAX_QUESTION_CHARS:,} limit; shorten it", file, line
        )
    if "answers" in rec and rec["answers"] is not None:
        answers = _alias_list(_answer_shapes(rec["answers"]), where, file, line)
    elif isinstance(rec.get("answer"), str):  # a single "answer" string is accepted as one alias
        answers = [rec["answer"].strip()] if rec["answer"].strip() else []
    elif isinstance(rec.get("answer"), (list, dict)):
        answers = _alias_list(_answer_shapes(rec["answer"]), where, file, line, field="answer")
    else:
        answers = []
    answerable = rec.get("answerable", bool(answers))
    if isinstance(answerable, str) and answerable.strip().lower() in _TRUE | _FALSE:
        answerable = answerable.strip().lower() in _TRUE
    if not isinstance(answerable, bool):
        raise CorpusError(f'{where}"answerable" must be true or false, not {json.dumps(answerable)[:40]}', file, line)
    if answerable and not answers:
        raise CorpusError(f"{where}answerable question has no answers; add an alias or set answerable false", file, line)
    split = rec.get("split") or ""
    if not isinstance(split, str) or split.strip().lower() not in ("",) + SPLITS:
        raise CorpusError(f'{where}"split" is {json.dumps(split)[:40]}; use "train", "test" or leave it out for a seeded split', file, line)
    sources_raw = rec.get("sources") or []
    if isinstance(sources_raw, str):
        sources_raw = [sources_raw]
    if not isinstance(sources_raw, list) or not all(isinstance(s, str) for s in sources_raw):
        raise CorpusError(f'{where}"sources" must be a list of document paths relative to docs/, e.g. ["hr/leave.md"]', file, line)
    qid = rec.get("id")
    if qid is None or (isinstance(qid, str) and not qid.strip()):
        qid = f"q-{line}" if line is not None else ""
    if isinstance(qid, (dict, list, bool)):
        raise CorpusError(f'{where}"id" must be a string or a number, not {json.dumps(qid)[:40]}', file, line)
    meta = {k: v for k, v in rec.items() if k not in _RESERVED}
    if line is not None:
        meta["line"] = line
    return Question(
        id=str(qid).strip(),
        question=text,
        answers=answers,
        answerable=answerable,
        split=split.strip().lower(),
        sources=[_normalise_source(s) for s in sources_raw if s.strip()],
        meta=meta,
    )


def read_text_file(path: Path, max_bytes: int = MAX_QUESTION_FILE_BYTES) -> str:
    """A question file's text: UTF-8 (a BOM is tolerated), size-capped, with a clear error otherwise."""
    path = Path(path)
    try:
        if path.stat().st_size > max_bytes:
            raise CorpusError(f"is over the {max_bytes / 1e6:.0f} MB limit for a question file; split it", path)
        data = path.read_bytes()
    except OSError as exc:
        raise CorpusError(f"cannot be read ({exc.strerror or exc}); check the path and permissions", path) from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CorpusError("is not valid UTF-8; re-save the file as UTF-8", path, line) from None


def check_unique_id(q: Question, seen: dict[str, int | str], file: Path, line: int | None, where: str = "") -> None:
    """Raise if q.id was seen before in this file; remember where it was first used."""
    if q.id in seen:
        raise CorpusError(f"{where}duplicate id {q.id!r} (first used at {seen[q.id]}); make ids unique", file, line)
    seen[q.id] = line if line is not None else where.rstrip(": ")


@contextlib.contextmanager
def collecting(errors: list[CorpusError] | None) -> Iterator[None]:
    """Inside, a CorpusError is raised as usual, or kept in ``errors`` (and the block skipped) when the caller collects them."""
    try:
        yield
    except CorpusError as err:
        if errors is None:
            raise
        errors.append(err)


def add_question(rec: dict[str, Any], file: Path, line: int | None, seen: dict[str, int | str], into: list[Question], where: str = "") -> None:
    """Validate one record and append its Question to ``into``; a CorpusError naming file and line on a bad record or a repeated id."""
    q = question_from_record(rec, file, line, where)
    check_unique_id(q, seen, file, line, where)
    into.append(q)


def _csv_aliases(cell: str, path: Path, line: int) -> list[str]:
    """An answer cell: aliases split on '|', or a JSON list such as PopQA's '["Paris", "City of Light"]'."""
    text = cell.strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if isinstance(items, list):
            return _alias_list(items, "", path, line, field="answer")
    return [a.strip() for a in text.split("|") if a.strip()]


def read_questions_csv(path: Path, errors: list[CorpusError] | None = None) -> list[Question]:
    """Questions from a CSV with columns question, answer[, split][, id]; aliases in answer are split on '|'."""
    path = Path(path)
    text = read_text_file(path)
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise CorpusError("is empty; add a header row: question,answer[,split][,id]", path) from None
    except csv.Error as exc:
        raise CorpusError(f"header is not valid CSV ({exc})", path, 1) from None
    for alias in ("answers", "possible_answers"):  # PopQA's CSV calls its alias list possible_answers
        if alias in header and "answer" not in header:
            header[header.index(alias)] = "answer"
    for column in ("question", "answer"):
        if column not in header:
            raise CorpusError(f"missing column {column!r}; the header must have question, answer[, split][, id]", path, 1)
    questions: list[Question] = []
    seen: dict[str, int | str] = {}
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            err = CorpusError(f"not valid CSV ({exc}); fix the quoting", path, start)
            if errors is None:
                raise err from None
            errors.append(err)
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        with collecting(errors):
            if len(row) > len(header):
                raise CorpusError(
                    f"has {len(row)} cells but the header has {len(header)} columns; quote cells that contain commas", path, line
                )
            rec: dict[str, Any] = {k: v for k, v in zip(header, row, strict=False) if k}
            aliases = _csv_aliases(rec.pop("answer", ""), path, line)
            rec["answers"] = aliases
            if "sources" in rec:
                rec["sources"] = [s.strip() for s in rec["sources"].split("|") if s.strip()]
            if not str(rec.get("answerable", "")).strip():
                rec.pop("answerable", None)
            add_question(rec, path, line, seen, questions)
    return questions


def _json_file(path: Path) -> Any:
    return parse_json(read_text_file(path), path, None, "is not valid JSON")


def read_squad_v2(path: Path, errors: list[CorpusError] | None = None) -> list[Question]:
    """Questions from a SQuAD v2 JSON file: answers from answers.text, is_impossible -> unanswerable."""
    path = Path(path)
    data = _json_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise CorpusError('is not SQuAD v2 JSON (no top-level "data" list); use questions.jsonl or the SQuAD format', path)
    questions: list[Question] = []
    seen: dict[str, int | str] = {}
    for ti, article in enumerate(data["data"]):
        title = str(article.get("title", "")) if isinstance(article, dict) else ""
        paragraphs = article.get("paragraphs", []) if isinstance(article, dict) else []
        for pi, para in enumerate(paragraphs if isinstance(paragraphs, list) else []):
            for qi, qa in enumerate(para.get("qas", []) if isinstance(para, dict) else []):
                where = f"data[{ti}].paragraphs[{pi}].qas[{qi}]: "
                with collecting(errors):
                    if not isinstance(qa, dict):
                        raise CorpusError(f"{where}expected an object with question and answers", path)
                    impossible = bool(qa.get("is_impossible", False))
                    texts = [a.get("text", "") for a in qa.get("answers", []) if isinstance(a, dict)]
                    plausible = [a.get("text", "") for a in qa.get("plausible_answers", []) if isinstance(a, dict)]
                    rec: dict[str, Any] = {
                        "id": qa.get("id") or f"squad-{ti}-{pi}-{qi}",
                        "question": qa.get("question", ""),
                        "answers": [] if impossible else texts,
                        "answerable": not impossible,
                        "title": title,
                        "context_doc": squad_doc_id(title, ti, pi),
                    }
                    if plausible:
                        rec["plausible_answers"] = list(dict.fromkeys(t for t in plausible if t))
                        rec["plausible_answer"] = rec["plausible_answers"][0] if rec["plausible_answers"] else ""
                    add_question(rec, path, None, seen, questions, where)
    if not questions and errors is None:
        raise CorpusError("holds no questions (data[].paragraphs[].qas[] is empty); add questions", path)
    return questions


def squad_doc_id(title: str, article: int, paragraph: int) -> str:
    """The doc id (relative to the docs folder it is written to) of one SQuAD context."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", title).strip("._") or "untitled"
    return f"{article:03d}_{slug[:60]}/p{paragraph:03d}.txt"


def squad_contexts_to_docs(path: Path, out_docs_dir: Path) -> list[Path]:
    """Write every SQuAD context as a text document (title line, blank line, context); returns the files written."""
    path, out_docs_dir = Path(path), Path(out_docs_dir)
    data = _json_file(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise CorpusError('is not SQuAD v2 JSON (no top-level "data" list)', path)
    written: list[Path] = []
    for ti, article in enumerate(data["data"]):
        title = str(article.get("title", "")).replace("_", " ")
        for pi, para in enumerate(article.get("paragraphs", [])):
            context = str(para.get("context", "")).strip()
            if not context:
                continue
            target = out_docs_dir / squad_doc_id(str(article.get("title", "")), ti, pi)
            atomic_write_text(target, f"{title}\n\n{context}\n" if title else context + "\n")
            written.append(target)
    if not written:
        raise CorpusError("holds no contexts to write; check the file is SQuAD v2", path)
    return written


def question_to_record(q: Question) -> dict[str, Any]:
    """The JSONL row of a question: the contract fields, then its meta (the source line number dropped)."""
    row: dict[str, Any] = {k: v for k, v in q.meta.items() if k not in _RESERVED and k != "line"}
    row.update({"id": q.id, "question": q.question, "answers": list(q.answers), "answerable": q.answerable})
    if q.split:
        row["split"] = q.split
    if q.sources:
        row["sources"] = list(q.sources)
    return row


def write_questions_jsonl(questions: list[Question], path: Path) -> None:
    """Write questions as questions.jsonl (atomically); reading it back gives the same questions."""
    atomic_write_jsonl(path, [question_to_record(q) for q in questions])
