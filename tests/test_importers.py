"""Question import (CSV, SQuAD v2) and JSONL export round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.corpus.importers import read_questions_csv, read_squad_v2, squad_contexts_to_docs, write_questions_jsonl
from workbench.corpus.load import load_corpus, read_questions_jsonl
from workbench.corpus.loaders import CorpusError
from workbench.types import Question

SQUAD = {
    "version": "v2.0",
    "data": [
        {
            "title": "Super_Bowl_50",
            "paragraphs": [
                {
                    "context": "Super Bowl 50 was played at Levi's Stadium in Santa Clara, California. The Denver Broncos won.",
                    "qas": [
                        {"id": "s1", "question": "Where was Super Bowl 50 played?", "is_impossible": False,
                         "answers": [{"text": "Levi's Stadium", "answer_start": 28}, {"text": "Levi's Stadium", "answer_start": 28},
                                     {"text": "Santa Clara, California", "answer_start": 46}]},
                        {"id": "s2", "question": "Who lost Super Bowl 49?", "is_impossible": True, "answers": [],
                         "plausible_answers": [{"text": "Denver Broncos", "answer_start": 75}]},
                    ],
                },
                {"context": "The game was broadcast by CBS.", "qas": [{"id": "s3", "question": "Who broadcast the game?", "answers": [{"text": "CBS", "answer_start": 26}]}]},
            ],
        }
    ],
}  # fmt: skip


def test_csv_import_aliases_split_id_bom_and_quotes(tmp_path):
    path = tmp_path / "questions.csv"
    path.write_bytes(
        "\ufeffQuestion,Answer,Split,ID,category\n"
        '"How heavy is it, roughly?",2.4 kg | 2.4 kilograms,test,w1,specs\n'
        "Is there a moon base?,,,,\n"
        '"A question\nover two lines?",yes,train,,\n'.encode()
    )
    a, b, c = read_questions_csv(path)
    assert (a.id, a.question, a.answers, a.split, a.meta["category"]) == (
        "w1",
        "How heavy is it, roughly?",
        ["2.4 kg", "2.4 kilograms"],
        "test",
        "specs",
    )
    assert a.meta["line"] == 2
    assert b.answers == [] and not b.answerable and b.split == "" and b.id == "q-3"
    assert c.question == "A question\nover two lines?" and c.id == "q-4"


def test_csv_missing_column_names_file_and_column(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("question,split\nWhat?,test\n")
    with pytest.raises(CorpusError, match=r"q\.csv:1: missing column 'answer'; the header must have question, answer"):
        read_questions_csv(path)
    path.write_text("")
    with pytest.raises(CorpusError, match=r"q\.csv: is empty"):
        read_questions_csv(path)


def test_csv_row_errors_carry_row_line(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('question,answer,split\nfine?,a,\n"multi\nline?",b,\n,c,\nx?,y,validation\n')
    with pytest.raises(CorpusError, match=r'q\.csv:5: "question" is empty'):
        read_questions_csv(path)
    errors: list[CorpusError] = []
    qs = read_questions_csv(path, errors)
    assert [q.question for q in qs] == ["fine?", "multi\nline?"]
    assert [e.line for e in errors] == [5, 6] and "split" in errors[1].reason
    path.write_text("question,answer\nfirst?,a,extra\n")
    with pytest.raises(CorpusError, match=r"q\.csv:2: has 3 cells but the header has 2 columns"):
        read_questions_csv(path)


def test_squad_v2_import(tmp_path):
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(SQUAD))
    s1, s2, s3 = read_squad_v2(path)
    assert s1.answers == ["Levi's Stadium", "Santa Clara, California"] and s1.answerable
    assert s2.answers == [] and not s2.answerable and s2.meta["plausible_answer"] == "Denver Broncos"
    assert s2.meta["plausible_answers"] == ["Denver Broncos"] and s1.meta["title"] == "Super_Bowl_50"
    assert s3.id == "s3" and s3.meta["context_doc"] == "000_Super_Bowl_50/p001.txt"


def test_squad_errors(tmp_path):
    path = tmp_path / "questions.json"
    path.write_text('{"data": [')
    with pytest.raises(CorpusError, match=r"questions\.json:1: is not valid JSON"):
        read_squad_v2(path)
    path.write_text('{"version": "v2.0"}')
    with pytest.raises(CorpusError, match="not SQuAD v2 JSON"):
        read_squad_v2(path)
    bad = {"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"id": "x", "question": "q?", "answers": []}]}]}]}
    path.write_text(json.dumps(bad))
    with pytest.raises(CorpusError, match=r"questions\.json: data\[0\]\.paragraphs\[0\]\.qas\[0\]: answerable question has no answers"):
        read_squad_v2(path)


def test_squad_contexts_become_a_loadable_corpus(tmp_path):
    root = tmp_path / "squad"
    root.mkdir()
    (root / "questions.json").write_text(json.dumps(SQUAD))
    written = squad_contexts_to_docs(root / "questions.json", root / "docs")
    assert [p.relative_to(root / "docs").as_posix() for p in written] == ["000_Super_Bowl_50/p000.txt", "000_Super_Bowl_50/p001.txt"]
    corpus = load_corpus(root)
    assert {d.doc_id for d in corpus.documents} == {q.meta["context_doc"] for q in corpus.questions}
    assert corpus.documents[0].text.startswith("Super Bowl 50\n\nSuper Bowl 50 was played")
    assert len(corpus.questions) == 3 and {q.split for q in corpus.questions} == {"train", "test"}


def test_csv_corpus_loads_when_no_jsonl(tmp_path):
    root = tmp_path / "c"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.txt").write_text("Paris is the capital of France.")
    (root / "questions.csv").write_text("question,answer\nCapital of France?,Paris\nCapital of Spain?,Madrid\n")
    corpus = load_corpus(root)
    assert [q.answers for q in corpus.questions] == [["Paris"], ["Madrid"]]


def test_jsonl_round_trip(tmp_path):
    qs = [
        Question(
            id="a", question="Q1?", answers=["x", "y"], split="train", sources=["hr/leave.md"], meta={"type": "date", "priority": "P1"}
        ),
        Question(id="b", question="Q2 with “quotes” and é?", answers=[], answerable=False, meta={"plausible_answer": "z"}),
        Question(id="c", question="Q3?", answers=["42"], split="test"),
    ]
    path = tmp_path / "out" / "questions.jsonl"
    write_questions_jsonl(qs, path)
    back = read_questions_jsonl(path)
    for orig, got in zip(qs, back, strict=True):
        got.meta.pop("line")
        assert got == orig
    write_questions_jsonl(back, path)  # meta["line"] is dropped on write, so a second round trip is identical
    assert [q.to_dict() for q in read_questions_jsonl(path)] == [
        dict(q.to_dict(), meta={**q.meta, "line": i + 1}) for i, q in enumerate(back)
    ]
    assert not list(Path(path.parent).glob(".*.tmp"))


def test_public_answer_shapes_are_read_as_aliases(tmp_path):
    """Records as Hugging Face SQuAD, TriviaQA and PopQA exports write them, taken as they come."""
    rows = [
        {"id": "sq1", "question": "Where is the Eiffel Tower?", "answers": {"text": ["Paris", "Paris, France"], "answer_start": [10, 10]}},
        {"id": "sq2", "question": "Who built the moon base?", "answers": {"text": [], "answer_start": []}},  # SQuAD v2 unanswerable
        {"id": "tq1", "question": "Which planet is red?", "answer": {"value": "Mars", "aliases": ["Mars", "the Red Planet"], "normalized_value": "mars"}},
        {"id": "n1", "question": "In which year did it open?", "answer": [1889, "1889 AD"]},
    ]
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    qs = {q.id: q for q in read_questions_jsonl(path)}
    assert qs["sq1"].answers == ["Paris", "Paris, France"] and qs["sq1"].answerable
    assert qs["sq2"].answers == [] and not qs["sq2"].answerable
    assert qs["tq1"].answers == ["Mars", "the Red Planet"] and qs["tq1"].answerable
    assert qs["n1"].answers == ["1889", "1889 AD"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "x?", "answers": {"text": [{"nested": 1}]}}) + "\n")
    with pytest.raises(CorpusError, match=r"bad\.jsonl:1.*not a string"):
        read_questions_jsonl(bad)


def test_popqa_csv_with_possible_answers_json_list(tmp_path):
    path = tmp_path / "popqa.csv"
    path.write_text(
        "id,subj,prop,obj,possible_answers,question\n"
        '1,George Rankin,occupation,politician,"[""politician"", ""political leader""]",What is George Rankin\'s occupation?\n'
        '2,John Mayne,occupation,journalist,"[""journalist""]",What is John Mayne\'s occupation?\n'
    )
    qs = read_questions_csv(path)
    assert [q.answers for q in qs] == [["politician", "political leader"], ["journalist"]]
    assert qs[0].meta["subj"] == "George Rankin" and qs[0].id == "1"
