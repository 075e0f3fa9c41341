"""Freshness experiment: change N facts in a copy of the corpus and measure what each method needs to catch up.

RAG catches up by re-indexing (seconds); a LoRA adapter keeps answering the old facts until it is
retrained (minutes). ``run_freshness`` measures both on the changed facts: re-index time, accuracy
right after the edit and how often the OLD value comes back (stale), the old adapter's accuracy
before retraining, the retraining time and the accuracy after. The original corpus is never touched.
"""

from __future__ import annotations

import dataclasses
import json
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ConfigError, RunConfig
from ..evaluation.scoring import is_abstention, score_answer, strip_citations
from ..methods.registry import LORA, RAG, method_spec, methods_where
from ..storage import atomic_write_json, atomic_write_text
from ..textnorm import contains_tokens, normalize_answer
from ..types import Corpus, Question

Progress = Callable[[str, float, str], None]  # (stage, fraction of that stage, message), as run.Progress
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


# ------------------------------------------------------------------------------------------------------ new values


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


# ------------------------------------------------------------------------------------------------------ edits


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


def classify(answer: str, new_aliases: list[str], old: str) -> str:
    """Classify one reply: "new" (the changed fact), "old" (stale), "abstained" or "other"."""
    if is_abstention(answer):
        return "abstained"
    is_new = score_answer(answer, new_aliases, True)["correct"]
    is_old = score_answer(answer, [old], True)["correct"]
    if is_new and is_old:  # a fuzzy match on both (e.g. dates one year apart): the verbatim one wins
        clean = strip_citations(answer)
        is_new = any(contains_tokens(clean, a) for a in new_aliases) or not contains_tokens(clean, old)
        is_old = not is_new
    return "new" if is_new else "old" if is_old else "other"


# ------------------------------------------------------------------------------------------------------ experiment


def _answer(strategy: Any, questions: list[Question], batch_size: int) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(questions), batch_size):
        out += strategy.answer(questions[start : start + batch_size])
    return out


def _outcomes(method: str, phase: str, answers: list[Any], questions: list[Question], old: dict[str, str]) -> tuple[dict[str, float], list[dict]]:
    """Accuracy on the changed facts and the stale rate (the old value returned), plus per-question rows."""
    rows = []
    for q, a in zip(questions, answers, strict=True):
        outcome = classify(a.text, q.answers, old[q.id])
        rows.append({"method": method, "phase": phase, "question_id": q.id, "split": q.split, "new": q.answers[0], "old": old[q.id], "answer": a.text, "outcome": outcome})
    n = max(len(rows), 1)
    return {"accuracy": sum(r["outcome"] == "new" for r in rows) / n, "stale": sum(r["outcome"] == "old" for r in rows) / n}, rows


def _summary(result: dict[str, Any]) -> str:
    parts = [f"After changing {result['n_edits']} facts:"]
    rag, lora = result.get(RAG), result.get(LORA)
    if rag:
        parts.append(f"RAG re-indexed in {rag['reindex_seconds']:.1f}s and then answered {rag['accuracy_after_edit']:.0%} of them correctly ({rag['stale_rate']:.0%} stale);")
    if lora:
        text = f"the LoRA adapter answered {lora['accuracy_before_retrain']:.0%} correctly before retraining ({lora['stale_rate_before']:.0%} still the old value)"
        if lora.get("accuracy_after_retrain") is not None:
            text += f", retraining took {lora['retrain_seconds']:.0f}s and lifted it to {lora['accuracy_after_retrain']:.0%}"
        elif lora.get("retrain_seconds") is not None:
            text += f"; retraining (not run) would take about {lora['retrain_seconds']:.0f}s, as long as the original training"
        parts.append(text + ".")
    text = " ".join(parts)
    return text[:-1] + "." if text.endswith(";") else text


def run_freshness(
    corpus_path: str | Path,
    config: RunConfig,
    edits: list[FactEdit] | None = None,
    n_edits: int = 10,
    progress: Progress | None = None,
    retrain: bool = True,
) -> dict[str, Any]:
    """Edit facts in a temporary copy and measure re-index/retrain time and accuracy on the changed facts.

    Measures RAG when ``rag``/``rag+lora`` is among ``config.methods``, LoRA when ``lora``/``rag+lora``
    is. The baseline index and adapter come from the shared cache when a run already built them.
    Per method the result carries ``retrain_seconds`` and (adapter methods) ``stale_accuracy``, the
    keys ``decision.recommend`` reads from ``metrics["freshness"]``.
    """
    from ..backends.loader import open_generator
    from ..corpus.load import load_corpus
    from ..methods.strategies import make_strategy
    from ..retrieval.embedding import Embedder
    from ..retrieval.index import get_or_build_index
    from ..tuning.lora import get_or_train_adapter

    def report(stage: str, fraction: float, message: str) -> None:
        if progress:
            progress(stage, fraction, message)

    t_start = time.perf_counter()
    methods = list(config.methods)
    use_rag = any(m in methods_where(needs_index=True, baseline=False) for m in methods)
    use_lora = any(m in methods_where(needs_adapter=True) for m in methods)
    if not (use_rag or use_lora):
        raise FreshnessError(f"methods {', '.join(methods)} hold no rag, lora or rag+lora; freshness compares re-indexing with retraining")
    report("corpus", 0.0, f"loading {corpus_path}")
    corpus = load_corpus(corpus_path, test_fraction=config.eval.test_fraction, seed=config.seed)
    if edits is None:
        edits = generate_edits(corpus, n_edits, config.seed)
        if len(edits) < n_edits:
            report("corpus", 0.5, f"only {len(edits)} facts can be edited automatically (asked for {n_edits}); add a patch file for more")
    result: dict[str, Any] = {"corpus": Path(corpus_path).name, "model": config.model, "preset": config.preset, "seed": config.seed}
    with tempfile.TemporaryDirectory(prefix="workbench-freshness-") as tmp:
        _, applied, skipped = apply_edits_report(corpus_path, edits, Path(tmp) / "edited")
        edited = load_corpus(Path(tmp) / "edited", test_fraction=config.eval.test_fraction, seed=config.seed)
        ids = list(dict.fromkeys(e.question_id for e in applied))
        by_id = {q.id: q for q in edited.questions}
        questions = [by_id[i] for i in ids]
        old = {e.question_id: e.old for e in applied}
        split_of = {q.id: q.split for q in questions}
        result.update(n_edits=len(applied), edits=[{**e.to_dict(), "split": split_of[e.question_id]} for e in applied], skipped=skipped)
        report("corpus", 1.0, f"{len(applied)} facts changed ({sum(s == 'train' for s in split_of.values())} from the train split), {len(skipped)} skipped")

        report("model", 0.0, f"loading generator {config.model}")
        generator = open_generator(config.model)
        embedder = Embedder(config.index.embedder)
        bs = config.generation.batch_size
        rows: list[dict] = []
        new_index = None
        if use_rag:
            report("index", 0.0, "re-indexing the edited corpus")
            t0 = time.perf_counter()
            new_index, info = get_or_build_index(edited.documents, config.split, config.index, embedder, progress=lambda m, f: report("index", f, m))
            # wall time of chunking + embedding + indexing + saving; the recorded build time on a cache hit
            reindex_s = float(info.get("build_seconds", 0.0)) if info.get("cache_hit") else time.perf_counter() - t0
            report("index", 1.0, f"re-indexed in {reindex_s:.1f}s")
            strategy = make_strategy(RAG, generator=generator, index=new_index, embedder=embedder, pool=edited.train, cfg=config, instruction=edited.instruction)
            stats, r = _outcomes(RAG, "after_reindex", _answer(strategy, questions, bs), questions, old)
            rows += r
            result[RAG] = {
                "reindex_seconds": reindex_s, "reindex_cache_hit": bool(info.get("cache_hit")),
                "accuracy_after_edit": stats["accuracy"], "stale_rate": stats["stale"], "retrain_seconds": reindex_s,
            }  # fmt: skip
        if use_lora:
            def on_step(stage: str) -> Callable[[dict], None]:
                return lambda p: report(stage, p["step"] / max(1, p["total_steps"]), f"step {p['step']}/{p['total_steps']} loss {p['loss']:.3f}")

            acc: dict[tuple[str, str], dict[str, float]] = {}

            def answer_with(adapter_dir: Path, phase: str) -> None:
                adapted = generator.with_adapter(adapter_dir)
                for method in [m for m in methods_where(needs_adapter=True) if m in methods]:
                    report("answer", 0.0, f"{method} {phase.replace('_', ' ')}")
                    strategy = make_strategy(method, generator=generator, adapter_generator=adapted, index=new_index, embedder=embedder, pool=edited.train, cfg=config, instruction=edited.instruction)
                    acc[(method, phase)], r = _outcomes(method, phase, _answer(strategy, questions, bs), questions, old)
                    rows.extend(r)

            report("train", 0.0, "baseline adapter (reused when a run already trained it)")
            old_dir, old_info = get_or_train_adapter(config.model, corpus, config.split, config.train, config.seed, embedder=embedder, on_progress=on_step("train"))
            answer_with(old_dir, "before_retrain")
            retrain_s = train_loop_s = float(old_info.get("train_seconds") or 0.0)
            if retrain:
                report("retrain", 0.0, "retraining the adapter on the edited corpus")
                t0 = time.perf_counter()
                new_dir, new_info = get_or_train_adapter(config.model, edited, config.split, config.train, config.seed, embedder=embedder, on_progress=on_step("retrain"))
                # wall time of data preparation + leakage check + training; the recorded training time on a cache hit
                retrain_s = float(new_info.get("train_seconds") or 0.0) if new_info.get("cache_hit") else time.perf_counter() - t0
                train_loop_s = float(new_info.get("train_seconds") or 0.0)
                report("retrain", 1.0, f"retrained in {retrain_s:.0f}s")
                answer_with(new_dir, "after_retrain")
            for method in dict.fromkeys(m for m, _ in acc):
                before, after = acc[(method, "before_retrain")], acc.get((method, "after_retrain"))
                result[method] = {
                    "accuracy_before_retrain": before["accuracy"], "stale_rate_before": before["stale"],
                    "retrain_seconds": retrain_s + (result[RAG]["reindex_seconds"] if method_spec(method).needs_index else 0.0),
                    "retrain_estimated": not retrain, "train_loop_seconds": train_loop_s, "baseline_cache_hit": bool(old_info.get("cache_hit")),
                    "accuracy_after_retrain": after["accuracy"] if after else None, "stale_rate_after": after["stale"] if after else None,
                    "stale_accuracy": before["accuracy"],
                }  # fmt: skip
    result["per_question"] = rows
    result["elapsed_seconds"] = round(time.perf_counter() - t_start, 1)
    result["summary"] = _summary(result)
    return result



def store_in_run(run_dir: str | Path, result: dict[str, Any]) -> None:
    """Put the result under metrics["freshness"] of a run folder (atomic) and refresh its recommendation."""
    from ..storage import FolderLock

    run_dir = Path(run_dir)
    with FolderLock(run_dir):
        metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
        metrics["freshness"] = {k: v for k, v in result.items() if k != "per_question"}
        if metrics.get("recommendation"):
            from ..decision.recommend import recommend

            inputs = metrics["recommendation"].get("inputs") or {}
            metrics["recommendation"] = recommend(metrics, inputs.get("criteria"), inputs.get("weights"))
        atomic_write_json(run_dir / "metrics.json", metrics)
        atomic_write_json(run_dir / "freshness.json", result)
