"""check-corpus: counts, and every problem reported with file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import BEHAVIOUR_CORPUS, FACT_CORPUS

from workbench.corpus.check import check_corpus, format_report, main

DOC = "# Leave\n\nAnnual leave is 27 days. The Osprey-7 weighs 2.4 kg. Firmware 3.8.0 shipped in January.\n"


def build(root: Path, questions: list[dict | str], docs: dict[str, bytes | str] | None = None, toml: str = "") -> Path:
    (root / "docs").mkdir(parents=True)
    for name, data in (docs or {"hr/leave.md": DOC}).items():
        (root / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "docs" / name).write_bytes(data.encode() if isinstance(data, str) else data)
    (root / "questions.jsonl").write_text("".join((q if isinstance(q, str) else json.dumps(q)) + "\n" for q in questions))
    if toml:
        (root / "corpus.toml").write_text(toml)
    return root


CLEAN = [
    {"id": "a", "question": "How many days of annual leave?", "answers": ["27 days", "27"], "sources": ["hr/leave.md"], "type": "numeric"},
    {"id": "b", "question": "What does the Osprey-7 weigh?", "answers": ["2.4 kg"], "type": "numeric"},
    {"id": "c", "question": "Who founded the Mars office?", "answers": [], "plausible_answer": "$380", "type": "unanswerable"},
]


def test_clean_corpus_counts_and_ok(tmp_path, capsys):
    report = check_corpus(build(tmp_path / "c", CLEAN, toml='title = "Tiny"\n'))
    assert report.ok and report.problems == []  # "$380" must not match "3.8.0"
    c = report.counts
    assert (c["documents"], c["questions"], c["answerable"], c["unanswerable"]) == (1, 3, 2, 1)
    assert c["train"] + c["test"] == 3 and c["test"] >= 1 and c["words"] == len(DOC.split())
    assert c["by_type"] == {"numeric": 2, "unanswerable": 1}
    text = format_report(report)
    assert "Corpus: Tiny (facts)" in text and "questions" in text and "type numeric" in text and text.rstrip().endswith("OK")
    assert main(str(tmp_path / "c")) == 0
    assert "0 error(s), 0 warning(s): OK" in capsys.readouterr().out


def test_every_problem_is_reported_with_file_and_line(tmp_path, capsys):
    questions = CLEAN + [
        '{"id": "broken", "question": ',
        {"id": "d", "question": "What is the warranty?", "answers": ["five years"]},
        {"id": "e", "question": "Is the Osprey lighter than 3 kg?", "answers": ["yes"], "answerable": False},
        {"id": "f", "question": "Who runs the Mars office?", "answers": [], "plausible_answer": "Annual leave"},
        {"id": "g", "question": "How many days of annual leave?", "answers": ["27"], "split": "test"},
        {"id": "h", "question": "What does the Osprey-7 weigh exactly?", "answers": ["2.4 kg"], "sources": ["products/osprey.md"]},
        {"id": "i", "question": "How many days of annual leave ?", "answers": ["27"], "sources": ["bad.txt"]},
        {"id": "a", "question": "dup id", "answers": ["x"]},
    ]
    docs = {"hr/leave.md": DOC, "bad.txt": b"\x00\x01\x02", "empty.md": "\n", "notes.docx": b"PK"}
    root = build(tmp_path / "c", questions, docs)
    report = check_corpus(root)
    assert not report.ok
    lines = [str(p) for p in report.problems]
    expected = [
        "bad.txt: error: contains NUL bytes",
        "docs/empty.md: error: yields no text",
        "questions.jsonl:4: error: not valid JSON",
        "questions.jsonl:11: error: duplicate id 'a' (first used at 1)",
        "questions.jsonl:9: error: question 'h': source 'products/osprey.md' is not a document in docs/",
        "questions.jsonl:10: error: question 'i': source 'bad.txt' is unreadable",
        "docs/notes.docx: warning: skipped: unsupported file type .docx",
        "questions.jsonl:5: warning: question 'd': none of its answers 'five years' occurs in any document",
        "questions.jsonl:6: warning: question 'e' is marked unanswerable but lists answers 'yes'",
        "questions.jsonl:7: warning: question 'f' is unanswerable but its plausible answer 'Annual leave' occurs in hr/leave.md",
        "questions.jsonl:8: warning: question 'g' is a duplicate of 'a' (line 1)",
        "questions.jsonl:10: warning: question 'i' is a duplicate of 'a' (line 1)",
    ]
    for want in expected:
        assert any(want in line for line in lines), f"missing {want!r} in:\n" + "\n".join(lines)
    assert len(lines) == len(expected), "unexpected problems:\n" + "\n".join(lines)  # nothing more (e.g. no near-duplicate: 'h' is reworded)
    assert report.errors and all(p.severity == "error" for p in report.problems[: len(report.errors)])
    assert main(str(root)) == 1
    out = capsys.readouterr().out
    assert "questions.jsonl:4: error: not valid JSON" in out and "NOT OK" in out


def test_near_duplicates_and_train_test_leak(tmp_path):
    qs = [
        {
            "id": "a",
            "question": "what is the weight of the osprey seven sensor station in kilograms today",
            "answers": ["2.4 kg"],
            "split": "train",
        },
        {
            "id": "b",
            "question": "What is the weight of the Osprey seven sensor station, in kilograms, today?",
            "answers": ["2.4 kg"],
            "split": "test",
        },
        {
            "id": "c",
            "question": "what is the weight of the osprey seven sensor station in kilograms today please",
            "answers": ["2.4 kg"],
            "split": "test",
        },
        {"id": "d", "question": "How many days of annual leave?", "answers": ["27"], "split": "test"},
    ]
    report = check_corpus(build(tmp_path / "c", qs))
    msgs = {p.line: p.message for p in report.problems}
    assert "duplicate of 'a'" in msgs[2] and "test score is inflated" in msgs[2]
    assert "near-duplicate (token Jaccard" in msgs[3] and "'a'" in msgs[3]
    assert 4 not in msgs and report.ok


def test_behaviour_corpus_skips_answer_lookup(tmp_path):
    qs = [
        {"id": f"t{i}", "question": f"ticket number {i} about {w}", "answers": ["billing P2"]}
        for i, w in enumerate(["refund", "invoice", "login"])
    ]
    report = check_corpus(build(tmp_path / "b", qs, toml='kind = "behaviour"\n'))
    assert report.kind == "behaviour" and report.ok and not report.problems
    report = check_corpus(build(tmp_path / "f", qs))
    assert len([p for p in report.problems if "occurs in any document" in p.message]) == 3


def test_structural_errors(tmp_path):
    report = check_corpus(tmp_path / "missing")
    assert not report.ok and "is not a folder" in report.problems[0].message
    (tmp_path / "empty").mkdir()
    report = check_corpus(tmp_path / "empty")
    messages = " ".join(str(p) for p in report.problems)
    assert "no docs/ folder" in messages and "no question file" in messages and not report.ok
    root = build(tmp_path / "c", [{"question": "q?", "answers": ["27"], "split": "train"}], toml="kind = 3\n")
    messages = " ".join(str(p) for p in check_corpus(root).problems)
    assert "corpus.toml: error: kind 3 is unknown" in messages and "no question is in the test split" in messages
    (root / "questions.csv").write_text("question,answer\n")
    assert any(p.file == "questions.csv" and "ignored" in p.message for p in check_corpus(root).problems)


@pytest.mark.parametrize("folder", [FACT_CORPUS, BEHAVIOUR_CORPUS], ids=["facts", "behaviour"])
def test_bundled_corpora(folder, capsys):
    if not (folder / "questions.jsonl").is_file():
        pytest.skip(f"{folder.name} not present yet")
    report = check_corpus(folder)
    print(format_report(report))
    out = capsys.readouterr().out
    assert report.counts["documents"] > 0 and report.counts["questions"] > 0 and report.counts["test_answerable"] > 0
    assert "documents" in out and "questions" in out
    assert report.ok, "\n".join(str(p) for p in report.errors)


def test_near_duplicate_search_matches_brute_force():
    import random

    from workbench.corpus.check import _duplicate_problems, _jaccard
    from workbench.textnorm import tokens
    from workbench.types import Question

    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(14)]
    base = [rng.sample(vocab, 12) for _ in range(5)]
    texts = list(
        dict.fromkeys(
            " ".join(sorted(set(rng.choice(base)[: rng.randint(9, 12)] + rng.sample(vocab, rng.randint(0, 1))))) for _ in range(300)
        )
    )
    qs = [Question(id=f"q{i}", question=t, answers=["x"], meta={"line": i + 1}) for i, t in enumerate(texts)]
    flagged = {p.line for p in _duplicate_problems(qs, "questions.jsonl")}
    sets = [frozenset(tokens(t)) for t in texts]
    brute = {i + 1 for i in range(len(sets)) if any(_jaccard(sets[i], sets[j]) >= 0.9 for j in range(i))}
    assert 0 < len(brute) < len(texts) and flagged == brute
