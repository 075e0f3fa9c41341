"""Fact edits for the freshness experiment: pick facts in a corpus copy, give them new values, rewrite documents and answers."""

from __future__ import annotations

import dataclasses
import json
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError
from ..storage import atomic_write_json, atomic_write_text
from ..textnorm import contains_tokens, normalize_answer
from ..types import Corpus, Question

EDITABLE_SUFFIXES = (".txt", ".md", ".markdown")  # PDF/HTML facts cannot be rewritten faithfully


EDITS_FILE = "freshness_edits.json"  # written into the edited copy: applied and skipped edits


MAX_OCCURRENCES = 3  # a generated edit's old value may occur at most this often in its document


_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"


_DATE = re.compile(rf"\b(?:{_MONTHS})\b|\b\d{{4}}-\d{{2}}-\d{{2}}\b")


_YEAR = re.compile(r"(?<!\d)(?:19|20)\d\d(?!\d)")


_DAY = re.compile(rf"\b(?P<m1>(?:{_MONTHS}) )(?P<d1>\d{{1,2}})\b|\b(?P<d2>\d{{1,2}})(?P<m2> (?:{_MONTHS})\b)")


_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")


_CODE = re.compile(r"\b(?=[A-Z]*\d)(?=\d*[A-Z])[A-Z0-9]{2,}\b")  # a token mixing capitals and digits (IP67, 9F3C)


_VERSION = re.compile(r"(?<![\d.])(\d+)\.(\d+)((?:\.\d+)+)(?![\d.])")


_WORD_NUMBERS = "two three four five six seven eight nine ten eleven twelve fifteen twenty".split()


_SYLLABLES = "bra cor dil fen gar hul jor kel lum mor nix pel quo ros sil tav ur vex wen yor zan thal drin mek osk val".split()


_KEEP_WORDS = {"the", "of", "a", "an", "and", "in", "on", "at", "for", "to", "by", "with"}


class FreshnessError(ConfigError):
    """The edits or the experiment cannot proceed; the message names the file/entry and what to do."""


@dataclass(frozen=True)
class FactEdit:
    """One changed fact: every occurrence of ``old`` in ``doc_id`` becomes ``new``; ``question_id`` checks it."""

    doc_id: str
    old: str
    new: str
    question_id: str
    split: str = ""  # the question's split (train: the adapter was taught the old fact)
    kind: str = ""  # how ``new`` was made: number, date, code, word, name (or "patch")

    def to_dict(self) -> dict[str, str]:
        return dataclasses.asdict(self)


def _pattern(old: str) -> re.Pattern[str]:
    """``old`` verbatim on word boundaries; any run of whitespace matches any other (loaders normalise it)."""
    body = r"\s+".join(re.escape(part) for part in old.split())
    return re.compile(rf"(?<!\w){body}(?!\w)")


def _new_number(token: str, rng: random.Random, context: str = "") -> str:
    decimals = len(token.split(".")[1]) if "." in token else 0
    value = float(token.replace(",", ""))
    if decimals == 0 and value < 10:
        return str(rng.choice([d for d in range(2, 10) if d != value]))
    if 1900 <= int(value) <= 2099 and "," not in token:  # a year (or a year.month release)
        year, dot, rest = token.partition(".")
        return f"{int(year) + rng.choice([-3, -2, -1, 1, 2, 3])}{dot}{rest}"
    whole = str(int(value))
    step = 10 ** (len(whole) - len(whole.rstrip("0"))) if decimals == 0 else 10**-decimals
    for _ in range(20):
        x = round(value * rng.choice([rng.uniform(0.6, 0.85), rng.uniform(1.2, 1.6)]) / step) * step
        capped = value <= 100 < x and ("%" in context or "percent" in context)
        if x > 0 and x != value and not capped and len(str(int(x))) == len(whole):  # same number of digits
            break
    else:
        x = value + step
    text = f"{x:,.{decimals}f}" if "," in token else f"{x:.{decimals}f}"
    return text


def _new_date(old: str, rng: random.Random) -> str:
    if _YEAR.search(old):
        delta = rng.choice([-3, -2, -1, 1, 2, 3])
        return _YEAR.sub(lambda m: str(int(m.group()) + delta), old)
    if _DAY.search(old):

        def shift(m: re.Match[str]) -> str:
            day = int(m.group("d1") or m.group("d2"))
            new = str(rng.choice([d for d in range(2, 29) if d != day]))
            return f"{m.group('m1')}{new}" if m.group("d1") else f"{new}{m.group('m2')}"

        return _DAY.sub(shift, old, count=1)
    return _new_number(_NUMBER.search(old).group(), rng) if _NUMBER.search(old) else _invented(old, rng)


def _new_code(old: str, rng: random.Random) -> str:
    def swap(ch: str) -> str:
        pool = "0123456789" if ch.isdigit() else "ABCDEFGHJKLMNPRSTUVWXYZ" if ch.isalpha() else ch
        return rng.choice([c for c in pool if c != ch] or [ch])

    return "".join(swap(c) for c in old)


def _invented_word(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.choice([2, 2, 3])))


def _invented(old: str, rng: random.Random) -> str:
    """Each word of ``old`` becomes a made-up word of the same case shape; small words stay."""

    def repl(m: re.Match[str]) -> str:
        word = m.group()
        if word.lower() in _KEEP_WORDS:
            return word
        new = _invented_word(rng)
        return new.upper() if word.isupper() and len(word) > 1 else new.capitalize() if word[0].isupper() else new

    return re.sub(r"[A-Za-z]+", repl, old)


def new_value(old: str, qtype: str, rng: random.Random) -> tuple[str, str]:
    """A different value of the same kind as ``old``: (new, kind) with kind number/date/code/word/name."""
    if qtype == "date" or _DATE.search(old) or re.fullmatch(r"(?:19|20)\d\d", old.strip()):
        return _new_date(old, rng), "date"
    if _CODE.search(old) and re.fullmatch(r"[A-Z0-9 \-]+", old):
        return _new_code(old, rng), "code"
    v = _VERSION.search(old)
    if v:  # a version: another minor release of the same major
        minor = rng.choice([x for x in range(0, 10) if x != int(v.group(2))])
        return old[: v.start()] + f"{v.group(1)}.{minor}{v.group(3)}" + old[v.end() :], "number"
    m = _NUMBER.search(old)
    if m:
        return old[: m.start()] + _new_number(m.group(), rng, old) + old[m.end() :], "number"
    words = [w for w in re.findall(r"[a-z]+", old.lower()) if w in _WORD_NUMBERS + ["one", "seven"]]
    if words:
        choice = rng.choice([w for w in _WORD_NUMBERS if w != words[0]])
        return re.sub(rf"\b{words[0]}\b", choice, old, count=1, flags=re.IGNORECASE), "number"
    return _invented(old, rng), "name" if old[:1].isupper() else "word"


def _editable(doc_id: str) -> bool:
    return Path(doc_id).suffix.lower() in EDITABLE_SUFFIXES


def generate_edits(corpus: Corpus, n: int, seed: int = 0) -> list[FactEdit]:
    """Pick ``n`` answerable single-source questions (train split first) whose answer is in an editable doc; invent new values.

    Deterministic for the same corpus, n and seed. A candidate's first alias must occur verbatim in
    its .md/.txt source at most MAX_OCCURRENCES times, be no other question's answer and appear in
    no question text, so changing it changes exactly the fact its question checks.
    """
    if n < 1:
        raise FreshnessError(f"the number of edits must be at least 1, not {n}")
    docs = {d.doc_id: d for d in corpus.documents}
    answers = {normalize_answer(a) for q in corpus.questions for a in q.answers}
    counts: dict[str, int] = {}
    for q in corpus.questions:
        for a in {normalize_answer(a) for a in q.answers}:
            counts[a] = counts.get(a, 0) + 1
    texts = " ".join(q.question for q in corpus.questions)
    rng = random.Random(f"freshness-{seed}")
    ranked: list[tuple[tuple[int, int, float], Question, str]] = []
    for q in sorted(corpus.questions, key=lambda q: q.id):
        if not (q.answerable and q.answers and len(q.sources) == 1 and q.sources[0] in docs and _editable(q.sources[0])):
            continue
        old = q.answers[0].strip()
        norm = normalize_answer(old)
        if len(norm) < 2 or counts.get(norm, 0) > 1 or contains_tokens(texts, old):
            continue
        pat = _pattern(old)
        hits = len(pat.findall(docs[q.sources[0]].text))
        if not 1 <= hits <= MAX_OCCURRENCES:
            continue
        elsewhere = sum(1 for d in corpus.documents if d.doc_id != q.sources[0] and pat.search(d.text))
        ranked.append(((q.split != "train", elsewhere > 0, rng.random()), q, old))
    if not ranked:
        raise FreshnessError(
            f"{corpus.root}: no question can be edited automatically (needs an answerable question with one .md/.txt source "
            "holding its first answer verbatim); write a patch file with --patch"
        )
    ranked.sort(key=lambda r: r[0])
    edits: list[FactEdit] = []
    for _, q, old in ranked:
        if len(edits) == n:
            break
        doc_text = docs[q.sources[0]].text
        for _attempt in range(10):
            new, kind = new_value(old, str(q.meta.get("type", "")), rng)
            if normalize_answer(new) != normalize_answer(old) and normalize_answer(new) not in answers and not _pattern(new).search(doc_text):
                break
        else:
            continue
        clash = [e for e in edits if e.doc_id == q.sources[0] and (old in e.old or e.old in old or old in e.new or e.new in new)]
        if clash:  # overlapping values in one document would make the edits depend on their order
            continue
        answers.add(normalize_answer(new))
        edits.append(FactEdit(q.sources[0], old, new, q.id, q.split, kind))
    return edits


def load_patch(path: str | Path) -> list[FactEdit]:
    """Edits from a JSON file: a list of {"doc_id", "old", "new", "question_id"}; errors name the entry index."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FreshnessError(f"{path}: patch file not found; give a JSON file listing the edits") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FreshnessError(f"{path}: not valid JSON ({exc}); write a list of edit objects") from None
    if not isinstance(data, list) or not data:
        raise FreshnessError(f'{path}: expected a non-empty JSON list like [{{"doc_id": "hr/leave.md", "old": "20 days", "new": "25 days", "question_id": "q-1"}}]')
    edits = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise FreshnessError(f"{path}: entry {i} is {type(entry).__name__}, not an object; each entry needs doc_id, old, new, question_id")
        for key in ("doc_id", "old", "new", "question_id"):
            value = entry.get(key)
            if not isinstance(value, str) or not value.strip():
                raise FreshnessError(f"{path}: entry {i} has no {key!r} (a non-empty string); each entry needs doc_id, old, new, question_id")
        if entry["old"].strip() == entry["new"].strip():
            raise FreshnessError(f"{path}: entry {i}: 'old' and 'new' are the same ({entry['old']!r}); give a changed value")
        doc_id = entry["doc_id"].strip().replace("\\", "/").removeprefix("docs/")
        edits.append(FactEdit(doc_id, entry["old"].strip(), entry["new"].strip(), entry["question_id"].strip(), kind="patch"))
    return edits


def _rewrite_questions(src_root: Path, dst_root: Path, new_answers: dict[str, list[str]]) -> None:
    """Set the edited questions' answers in the copy (JSONL kept line by line; CSV/SQuAD rewritten as JSONL)."""
    from ..corpus.importers import write_questions_jsonl
    from ..corpus.load import find_questions_file, read_questions

    qfile = find_questions_file(src_root)
    found: set[str] = set()
    if qfile.suffix == ".jsonl":
        lines = []
        for raw in qfile.read_text(encoding="utf-8").splitlines():
            rec = json.loads(raw) if raw.strip() else None
            if isinstance(rec, dict) and str(rec.get("id")) in new_answers:
                found.add(str(rec["id"]))
                rec["answers"] = new_answers[str(rec["id"])]
                rec.pop("answer", None)
                raw = json.dumps(rec, ensure_ascii=False)
            lines.append(raw)
        atomic_write_text(dst_root / qfile.name, "\n".join(lines) + "\n")
    else:
        questions, _ = read_questions(src_root)
        out = []
        for q in questions:
            if q.id in new_answers:
                found.add(q.id)
                q = dataclasses.replace(q, answers=new_answers[q.id])
            out.append(q)
        (dst_root / qfile.name).unlink(missing_ok=True)
        write_questions_jsonl(out, dst_root / "questions.jsonl")
    missing = sorted(set(new_answers) - found)
    if missing:
        raise FreshnessError(f"{qfile}: no question with id {', '.join(missing)}; fix question_id in the edits")


def apply_edits_report(corpus_dir: str | Path, edits: list[FactEdit], out_dir: str | Path) -> tuple[Path, list[FactEdit], list[dict[str, str]]]:
    """Like ``apply_edits`` but also returns (applied edits, skipped edits with the reason)."""
    from ..corpus.loaders import decode_text

    src, dst = Path(corpus_dir).resolve(), Path(out_dir).resolve()
    if not (src / "docs").is_dir():
        raise FreshnessError(f"{src}: not a corpus folder (no docs/); give the folder holding docs/ and questions.jsonl")
    if dst == src or src in dst.parents:
        raise FreshnessError(f"{dst}: the edited copy must be outside the original corpus {src}")
    if dst.exists() and any(dst.iterdir()):
        raise FreshnessError(f"{dst}: folder exists and is not empty; give a new folder for the edited copy")
    if not edits:
        raise FreshnessError("no edits to apply; generate some or give a patch file")
    shutil.copytree(src, dst, dirs_exist_ok=True)
    applied: list[FactEdit] = []
    skipped: list[dict[str, str]] = []
    for i, e in enumerate(edits):
        path = dst / "docs" / e.doc_id
        if not path.is_file():
            raise FreshnessError(f"edit {i} ({e.question_id}): document {e.doc_id!r} not found under {src / 'docs'}; fix doc_id")
        if not _editable(e.doc_id):
            skipped.append({**e.to_dict(), "reason": f"{path.suffix} documents cannot be edited faithfully; only .md/.txt"})
            continue
        data = path.read_bytes()
        text, encoding = decode_text(data, path)
        new_text, count = _pattern(e.old).subn(lambda _m, new=e.new: new, text)
        if not count:
            raise FreshnessError(f"edit {i} ({e.question_id}): {e.old!r} does not occur in {e.doc_id}; copy the old value verbatim from the document")
        path.write_bytes(new_text.encode(encoding))
        applied.append(e)
    if not applied:
        raise FreshnessError("every edit targets a PDF/HTML document, which cannot be edited; choose facts from .md/.txt documents")
    new_answers: dict[str, list[str]] = {}
    for e in applied:
        new_answers.setdefault(e.question_id, []).append(e.new)
    _rewrite_questions(src, dst, new_answers)
    atomic_write_json(dst / EDITS_FILE, {"source": str(src), "applied": [e.to_dict() for e in applied], "skipped": skipped})
    return dst, applied, skipped


def apply_edits(corpus_dir: str | Path, edits: list[FactEdit], out_dir: str | Path) -> Path:
    """Copy the corpus to ``out_dir`` and apply the edits there (docs and answers); the original is untouched.

    Edits on PDF/HTML documents are skipped and listed, with the reason, in ``out_dir/freshness_edits.json``.
    """
    return apply_edits_report(corpus_dir, edits, out_dir)[0]
