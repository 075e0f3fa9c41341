"""check-corpus: read a corpus exactly as a run would and report its counts and every problem found.

Errors stop a run (unreadable files, bad question lines, sources naming missing documents, no
held-out questions); warnings flag data that would make the measurement misleading (answers that
occur in no document, plausible answers of "unanswerable" questions that do occur, near-duplicate
questions, possibly across the train/test boundary).
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..textnorm import normalize_answer, occurs, tokens
from ..types import Document, Question
from .load import QUESTION_FILES, assign_splits, read_corpus_toml, read_questions
from .loaders import CorpusError, scan_documents

NEAR_DUPLICATE_JACCARD = 0.9


@dataclass
class Problem:
    severity: Literal["error", "warning"]
    file: str  # relative to the corpus folder where possible
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.severity}: {self.message}"


@dataclass
class CheckReport:
    path: str
    counts: dict[str, Any] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    title: str = ""
    kind: str = "facts"

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when nothing would stop a run (warnings allowed)."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "title": self.title,
            "kind": self.kind,
            "ok": self.ok,
            "counts": self.counts,
            "problems": [vars(p) for p in self.problems],
        }


def _rel(path: str | Path | None, root: Path) -> str:
    if path is None:
        return str(root)
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


def _rel_link(path: str, root: Path) -> str:
    """A link's own path relative to the corpus (not its target's)."""
    try:
        return Path(path).absolute().relative_to(root.absolute()).as_posix()
    except ValueError:
        return path


def _from_error(err: CorpusError, root: Path, severity: Literal["error", "warning"] = "error") -> Problem:
    return Problem(severity, _rel(err.file, root), err.line, err.reason)


def _fmt_aliases(aliases: list[str], limit: int = 3) -> str:
    shown = ", ".join(repr(a) for a in aliases[:limit])
    return shown + (f" (+{len(aliases) - limit} more)" if len(aliases) > limit else "")


def _spaced(text: str) -> str:
    """Stricter normalisation: punctuation becomes a space, so '3.8.0' does not read as '380'."""
    return " ".join(re.sub(r"[^\w\s]|_", " ", text.lower()).split())


class _DocIndex:
    """Normalised document texts for token-boundary phrase lookup."""

    def __init__(self, documents: list[Document]):
        self.texts = {d.doc_id: f" {normalize_answer(d.text)} " for d in documents}
        self.spaced = {d.doc_id: f" {_spaced(d.text)} " for d in documents}

    def docs_with(self, phrase: str, within: list[str] | None = None, strict: bool = False) -> list[str]:
        """Doc ids whose text holds the phrase (SQuAD-normalised; ``strict`` also requires the punctuation-split form)."""
        needle, spaced = normalize_answer(phrase), _spaced(phrase)
        if not needle:
            return []
        ids = within if within is not None else list(self.texts)
        hits = [i for i in ids if i in self.texts and occurs(needle, self.texts[i])]
        return [i for i in hits if occurs(spaced, self.spaced[i])] if strict and spaced else hits


def _answer_problems(questions: list[Question], docs: _DocIndex, file: str, kind: str) -> list[Problem]:
    out: list[Problem] = []
    for q in questions:
        line = q.meta.get("line")
        if q.answerable and kind != "behaviour":
            found = [a for a in q.answers if docs.docs_with(a)]
            if not found:
                out.append(
                    Problem(
                        "warning",
                        file,
                        line,
                        f"question {q.id!r}: none of its answers {_fmt_aliases(q.answers)} occurs in any document; fix the alias or add the document that holds it",
                    )
                )
            elif q.sources and all(s in docs.texts for s in q.sources) and not any(docs.docs_with(a, q.sources) for a in q.answers):
                out.append(
                    Problem(
                        "warning",
                        file,
                        line,
                        f"question {q.id!r}: its answers occur in the corpus but not in its sources {', '.join(q.sources)}; fix sources",
                    )
                )
        if not q.answerable:
            if q.answers:
                out.append(
                    Problem(
                        "warning",
                        file,
                        line,
                        f"question {q.id!r} is marked unanswerable but lists answers {_fmt_aliases(q.answers)}; they are ignored in scoring",
                    )
                )
            plausible = q.meta.get("plausible_answers") or ([q.meta["plausible_answer"]] if q.meta.get("plausible_answer") else [])
            for alias in plausible if isinstance(plausible, list) else []:
                where = docs.docs_with(str(alias), strict=True) if isinstance(alias, (str, int, float)) else []
                if where:
                    out.append(
                        Problem(
                            "warning",
                            file,
                            line,
                            f"question {q.id!r} is unanswerable but its plausible answer {str(alias)!r} occurs in {where[0]}; check that it really cannot be answered",
                        )
                    )
                    break
    return out


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _duplicate_problems(questions: list[Question], file: str, threshold: float = NEAR_DUPLICATE_JACCARD) -> list[Problem]:
    """Exact (normalised) and near (token Jaccard >= threshold) duplicates, via prefix filtering on rare tokens."""
    out: list[Problem] = []
    first_by_text: dict[str, Question] = {}
    sets: list[tuple[Question, frozenset[str]]] = []
    for q in questions:
        norm = normalize_answer(q.question)
        if norm in first_by_text:
            out.append(_dup(q, first_by_text[norm], file, "duplicate of"))
            continue
        first_by_text[norm] = q
        sets.append((q, frozenset(tokens(q.question))))
    freq = Counter(t for _, s in sets for t in s)
    postings: dict[str, list[int]] = defaultdict(list)
    for i, (q, s) in enumerate(sets):
        ordered = sorted(s, key=lambda t: (freq[t], t))
        prefix = ordered[: len(ordered) - math.ceil(threshold * len(ordered)) + 1]
        candidates = {j for t in prefix for j in postings[t]}
        best = max(((_jaccard(s, sets[j][1]), j) for j in candidates), default=(0.0, -1))
        if best[0] >= threshold:
            out.append(_dup(q, sets[best[1]][0], file, f"near-duplicate (token Jaccard {best[0]:.2f}) of"))
        for t in prefix:
            postings[t].append(i)
    return out


def _dup(q: Question, first: Question, file: str, what: str) -> Problem:
    where = f" (line {first.meta['line']})" if first.meta.get("line") is not None else ""
    leak = (
        "; one is in train and one in test, so the test score is inflated — drop one"
        if {q.split, first.split} == {"train", "test"}
        else "; drop or reword one"
    )
    return Problem("warning", file, q.meta.get("line"), f"question {q.id!r} is a {what} {first.id!r}{where}{leak}")


def _count(documents: list[Document], questions: list[Question]) -> dict[str, Any]:
    types = Counter(str(q.meta.get("type", "")) or "(none)" for q in questions)
    return {
        "documents": len(documents),
        "words": sum(len(d.text.split()) for d in documents),
        "questions": len(questions),
        "answerable": sum(q.answerable for q in questions),
        "unanswerable": sum(not q.answerable for q in questions),
        "train": sum(q.split == "train" for q in questions),
        "test": sum(q.split == "test" for q in questions),
        "test_answerable": sum(q.split == "test" and q.answerable for q in questions),
        "by_type": dict(sorted(types.items())) if set(types) != {"(none)"} else {},
    }


def check_corpus(path: str | Path, test_fraction: float = 0.4, seed: int = 0) -> CheckReport:
    """Load the corpus as a run would and report counts plus every problem (never stops at the first)."""
    root = Path(path).expanduser()
    report = CheckReport(path=str(root))
    if not root.is_dir():
        report.problems.append(
            Problem("error", str(root), None, "is not a folder; give the corpus folder holding docs/ and questions.jsonl")
        )
        return report
    try:
        info = read_corpus_toml(root)
    except CorpusError as err:
        report.problems.append(_from_error(err, root))
        info = {"title": root.name, "kind": "facts"}
    report.title, report.kind = info["title"], info["kind"]

    documents: list[Document] = []
    try:
        skipped: list[str] = []
        documents, unreadable, unsupported = scan_documents(root / "docs", skipped=skipped)
        report.problems += [_from_error(e, root) for e in unreadable]
        for line in skipped:
            where, _, why = line.partition(": ")
            report.problems.append(Problem("warning", _rel_link(where, root), None, why))
        report.problems += [
            Problem(
                "warning",
                _rel(p, root),
                None,
                f"skipped: unsupported file type {p.suffix or '(none)'}; convert it to .txt, .md, .pdf or .html",
            )
            for p in unsupported
        ]
        if not documents:
            report.problems.append(Problem("error", "docs", None, "no document yields text; add .txt/.md/.pdf/.html files"))
    except CorpusError as err:
        report.problems.append(_from_error(err, root))

    questions: list[Question] = []
    qfile = "questions.jsonl"
    try:
        errors: list[CorpusError] = []
        questions, qpath = read_questions(root, errors)
        qfile = _rel(qpath, root)
        report.problems += [_from_error(e, root) for e in errors]
        ignored = [n for n in QUESTION_FILES if (root / n).is_file() and n != qpath.name]
        report.problems += [
            Problem("warning", n, None, f"ignored because {qpath.name} takes precedence; delete one of them") for n in ignored
        ]
        if not questions:
            report.problems.append(
                Problem("error", qfile, None, "holds no usable questions; add one JSON object a line with question and answers")
            )
        questions = assign_splits(questions, test_fraction=test_fraction, seed=seed)
    except CorpusError as err:
        report.problems.append(_from_error(err, root))

    report.counts = _count(documents, questions)
    if questions:
        if report.counts["test"] == 0:
            report.problems.append(
                Problem(
                    "error",
                    qfile,
                    None,
                    'no question is in the test split, so nothing can be evaluated; remove some explicit "split": "train" values',
                )
            )
        elif report.counts["test_answerable"] == 0:
            report.problems.append(
                Problem("warning", qfile, None, "the test split holds no answerable question, so accuracy cannot be measured")
            )
        if report.counts["train"] == 0:
            report.problems.append(
                Problem(
                    "warning",
                    qfile,
                    None,
                    "no question is in the train split; few-shot examples and LoRA Q/A training will have nothing to learn from",
                )
            )
    doc_ids = {d.doc_id for d in documents}
    unreadable_ids = {p.file.removeprefix("docs/") for p in report.problems if p.file.startswith("docs/")}
    for q in questions:
        for src in q.sources:
            if src not in doc_ids:
                why = "is unreadable" if src in unreadable_ids else "is not a document in docs/"
                report.problems.append(
                    Problem(
                        "error", qfile, q.meta.get("line"), f"question {q.id!r}: source {src!r} {why}; fix the path (relative to docs/)"
                    )
                )
    if documents and questions:
        report.problems += _answer_problems(questions, _DocIndex(documents), qfile, report.kind)
    report.problems += _duplicate_problems(questions, qfile)
    report.problems.sort(key=lambda p: (p.severity != "error", p.file, p.line or 0))
    return report


def format_report(report: CheckReport) -> str:
    """Human-readable report: a counts table, then one 'file:line: severity: message' line per problem."""
    lines = [f"Corpus: {report.title or Path(report.path).name} ({report.kind})", f"Folder: {report.path}"]
    flat = [(k, v) for k, v in report.counts.items() if k != "by_type"]
    flat += [(f"  type {t}", n) for t, n in report.counts.get("by_type", {}).items()]
    width = max((len(k) for k, _ in flat), default=0)
    lines += ([""] if flat else []) + [f"{k.ljust(width)}  {v:>8,}" for k, v in flat]
    if report.problems:
        lines += ["", "Problems:"] + [str(p) for p in report.problems]
    verdict = "OK" if report.ok else "NOT OK (fix the errors before a run)"
    lines += ["", f"{len(report.errors)} error(s), {len(report.warnings)} warning(s): {verdict}"]
    return "\n".join(lines)


def main(path: str) -> int:
    """Print the report for a corpus folder; return the exit code (0 ok, 1 errors)."""
    report = check_corpus(path)
    print(format_report(report), file=sys.stdout)
    return 0 if report.ok else 1
