"""Corpus folder loading: corpus.toml, questions.jsonl validation with file:line errors, seeded splits, fingerprints."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from workbench.corpus.load import (
    CorpusError,
    assign_splits,
    corpus_fingerprint,
    load_corpus,
    questions_fingerprint,
    read_questions_jsonl,
)
from workbench.types import Question


def make_corpus(root: Path, questions: list[dict] | str, toml: str | None = None) -> Path:
    (root / "docs").mkdir(parents=True, exist_ok=True)
    (root / "docs" / "facts.md").write_text("# Facts\n\nThe Osprey-7 weighs 2.4 kg. Annual leave is 27 days.\n")
    body = questions if isinstance(questions, str) else "".join(json.dumps(q) + "\n" for q in questions)
    (root / "questions.jsonl").write_text(body, encoding="utf-8")
    if toml is not None:
        (root / "corpus.toml").write_text(toml)
    return root


def qfile(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def test_load_corpus_reads_toml_docs_questions(tmp_path):
    toml = 'title = "Demo"\ndescription = "d"\nkind = "behavior"\ninstruction = "Reply with a label."\n[defaults]\nchunk_size = 600\n'
    qs = [
        {
            "id": "a",
            "question": "How heavy is the Osprey-7?",
            "answers": ["2.4 kg"],
            "type": "numeric",
            "sources": ["docs/facts.md"],
            "priority": "P1",
        },
        {"question": "How many leave days?", "answers": ["27", "27 days"], "split": "train"},
        {"question": "Who is the CEO of Mars?", "answers": []},
    ]
    corpus = load_corpus(make_corpus(tmp_path / "c", qs, toml), seed=3)
    assert (corpus.title, corpus.kind, corpus.instruction, corpus.defaults) == (
        "Demo",
        "behaviour",
        "Reply with a label.",
        {"chunk_size": 600},
    )
    assert [d.doc_id for d in corpus.documents] == ["facts.md"]
    a, b, c = corpus.questions
    assert a.sources == ["facts.md"] and a.meta["type"] == "numeric" and a.meta["priority"] == "P1" and a.meta["line"] == 1
    assert b.id == "q-2" and b.split == "train" and b.answers == ["27", "27 days"] and b.answerable
    assert c.id == "q-3" and not c.answerable
    assert all(q.split in ("train", "test") for q in corpus.questions)


def test_corpus_without_toml_gets_folder_name(tmp_path):
    corpus = load_corpus(make_corpus(tmp_path / "my_corpus", [{"question": "q?", "answers": ["x"]}, {"question": "r?", "answers": ["y"]}]))
    assert corpus.title == "my_corpus" and corpus.kind == "facts"


@pytest.mark.parametrize(
    "line, pattern",
    [
        ('{"question": "ok?", "answers": ["x"]', r"questions\.jsonl:2: not valid JSON"),
        ('{"answers": ["x"]}', r'questions\.jsonl:2: missing "question"'),
        ('{"question": "x?", "answers": "Paris"}', r'questions\.jsonl:2: "answers" must be a list'),
        ('{"question": "x?", "answers": {"a": 1}}', r'questions\.jsonl:2: "answers" must be a list'),
        ('{"question": "   ", "answers": ["x"]}', r'questions\.jsonl:2: "question" is empty'),
        ('{"id": "one", "question": "again?", "answers": ["x"]}', r"questions\.jsonl:2: duplicate id 'one' \(first used at 1\)"),
        (
            '{"question": "x?", "answers": [], "answerable": true}',
            r"questions\.jsonl:2: answerable question has no answers; add an alias or set answerable false",
        ),
        ('{"question": "x?", "answers": ["a"], "split": "dev"}', r'questions\.jsonl:2: "split" is "dev"; use "train", "test"'),
        ('{"question": "x?", "answers": ["a"], "answerable": "maybe"}', r'questions\.jsonl:2: "answerable" must be true or false'),
        ("[1, 2]", r"questions\.jsonl:2: expected a JSON object"),
    ],
)
def test_question_line_errors_name_file_and_line(tmp_path, line, pattern):
    path = qfile(tmp_path, '{"id": "one", "question": "first?", "answers": ["a"]}\n' + line + "\n")
    with pytest.raises(CorpusError, match=pattern):
        read_questions_jsonl(path)


def test_errors_can_be_collected_instead_of_raised(tmp_path):
    path = qfile(tmp_path, 'not json\n{"question": "fine?", "answers": ["a"]}\n\n{"question": ""}\n')
    errors: list[CorpusError] = []
    questions = read_questions_jsonl(path, errors)
    assert [q.question for q in questions] == ["fine?"]
    assert [(e.line, e.file) for e in errors] == [(1, str(path)), (4, str(path))]


def test_bom_tolerated_and_blank_lines_skipped(tmp_path):
    path = qfile(tmp_path, b'\xef\xbb\xbf{"question": "Q?", "answers": ["A"]}\n\n{"question": "R?", "answers": ["B"]}\n')
    qs = read_questions_jsonl(path)
    assert [(q.id, q.question) for q in qs] == [("q-1", "Q?"), ("q-3", "R?")]


def test_huge_question_is_rejected_clearly(tmp_path):
    path = qfile(tmp_path, json.dumps({"question": "x" * 100_000, "answers": ["a"]}) + "\n")
    with pytest.raises(CorpusError, match=r"questions\.jsonl:1: question is 100,000 characters long, over the 4,000 limit; shorten it"):
        read_questions_jsonl(path)


def test_non_utf8_question_file(tmp_path):
    path = qfile(tmp_path, '{"question": "ok?", "answers": ["a"]}\n{"question": "caf\xe9?", "answers": ["a"]}\n'.encode("latin-1"))
    with pytest.raises(CorpusError, match=r"questions\.jsonl:2: is not valid UTF-8"):
        read_questions_jsonl(path)


def test_answer_singular_numbers_and_defaults(tmp_path):
    path = qfile(tmp_path, '{"id": 7, "question": "n?", "answers": [42, " 42 ", ""]}\n{"question": "s?", "answer": "Paris"}\n')
    a, b = read_questions_jsonl(path)
    assert a.id == "7" and a.answers == ["42"] and a.answerable
    assert b.answers == ["Paris"] and b.answerable


def test_corpus_level_errors(tmp_path):
    with pytest.raises(CorpusError, match="is not a folder"):
        load_corpus(tmp_path / "nope")
    root = make_corpus(tmp_path / "c", [{"question": "q?", "answers": ["a"]}], toml="title = [unclosed\n")
    with pytest.raises(CorpusError, match=r"corpus\.toml: is not valid TOML"):
        load_corpus(root)
    (root / "corpus.toml").write_text('kind = "poetry"\n')
    with pytest.raises(CorpusError, match=r"kind 'poetry' is unknown"):
        load_corpus(root)
    (root / "corpus.toml").unlink()
    (root / "questions.jsonl").unlink()
    with pytest.raises(CorpusError, match="no question file; add questions.jsonl, questions.csv or a SQuAD v2 questions.json"):
        load_corpus(root)
    (root / "questions.jsonl").write_text("\n")
    with pytest.raises(CorpusError, match=r"questions\.jsonl: holds no questions"):
        load_corpus(root)


def _questions(n: int) -> list[Question]:
    out = []
    for i in range(n):
        answerable = i % 4 != 0
        out.append(
            Question(
                id=f"q{i:03d}",
                question=f"question {i}?",
                answers=["a"] if answerable else [],
                answerable=answerable,
                meta={"type": ["date", "numeric"][i % 2]},
            )
        )
    return out


def test_assign_splits_deterministic_stratified_and_keeps_explicit():
    qs = _questions(100)
    qs[0].split = "train"
    qs[1].split = "test"
    a = assign_splits(qs, 0.4, seed=0)
    b = assign_splits(list(reversed(qs)), 0.4, seed=0)
    assert {q.id: q.split for q in a} == {q.id: q.split for q in b}  # order-independent, deterministic
    assert a[0].split == "train" and a[1].split == "test"
    assert [q.id for q in a] == [q.id for q in qs]
    free = [q for q in a if q.id not in ("q000", "q001")]
    assert Counter(q.split for q in free)["test"] == round(98 * 0.4)
    strata = Counter((q.answerable, q.meta["type"], q.split) for q in free)
    for answerable in (True, False):
        for kind in ("date", "numeric"):
            total = strata[(answerable, kind, "test")] + strata[(answerable, kind, "train")]
            assert abs(strata[(answerable, kind, "test")] - 0.4 * total) <= 1
    c = assign_splits(qs, 0.4, seed=1)
    assert {q.id: q.split for q in c} != {q.id: q.split for q in a}
    assert all(q.split == "" for q in qs[2:])  # inputs are not mutated


def test_assign_splits_small_sets_get_both_sides():
    qs = _questions(3)
    splits = Counter(q.split for q in assign_splits(qs, 0.1, seed=0))
    assert splits["test"] == 1 and splits["train"] == 2
    with pytest.raises(CorpusError, match="test_fraction"):
        assign_splits(qs, 1.0)


def test_fingerprints_are_stable_and_sensitive(tmp_path):
    root = make_corpus(tmp_path / "c", [{"question": "q?", "answers": ["a"]}, {"question": "r?", "answers": ["b"]}])
    one, two = load_corpus(root), load_corpus(root)
    assert corpus_fingerprint(one) == corpus_fingerprint(two)
    assert questions_fingerprint(one.questions) == questions_fingerprint(two.questions)
    edited = [Question(**{**q.to_dict(), "answers": ["other"]}) for q in one.questions]
    assert questions_fingerprint(edited) != questions_fingerprint(one.questions)
    (root / "docs" / "facts.md").write_text("changed")
    assert corpus_fingerprint(load_corpus(root)) != corpus_fingerprint(one)
