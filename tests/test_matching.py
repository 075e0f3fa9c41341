"""The answer matcher on the misjudgements a careful reader found (issue 22), and its why-field."""

from __future__ import annotations

import pytest

from workbench.evaluation.scoring import score_answer
from workbench.textnorm import concept_tokens

POPQA_CATHOLIC = ["Catholic Church", "Roman Catholic Church", "Church", "Catholicism", "Roman Catholicism"]


@pytest.mark.parametrize(
    ("answer", "gold", "rule"),
    [
        ("Catholic", ["Catholic Church"], "core"),
        ("Catholic", POPQA_CATHOLIC, "forms"),  # same concept key as the alias "Catholicism"
        ("Anglican", ["Anglicanism"], "forms"),
        ("Christian", ["Christianity"], "forms"),
        ("Catholicism", ["Catholic"], "forms"),
        ("Japanese Buddhist monk", ["Buddhism"], "contains"),
        ("He was a Protestant.", ["Protestantism"], "contains"),
        ("the sixteenth century", ["16th century"], "forms"),
        ("Church", POPQA_CATHOLIC, "exact"),
    ],
)
def test_word_forms_of_the_gold_concept_are_right(answer, gold, rule):
    s = score_answer(answer, gold, True)
    assert s["correct"] and not s["hallucinated"], s["why"]
    assert s["match"] == rule


@pytest.mark.parametrize(
    ("answer", "gold", "rule", "reason"),
    [
        ("United Methodist Church in America", ["Church"], "generic", "generic word"),
        ("United Methodist Church in America", ["Catholic Church"], "none", "matches no gold alias"),
        ("United Methodist Church in America", POPQA_CATHOLIC, "generic", "generic word"),
        ("16th century and 18th", ["16th century"], "contradicts", "\"18\""),
        ("Catholic or Anglican", POPQA_CATHOLIC, "contradicts", "alternatives"),
        ("not Catholic", POPQA_CATHOLIC, "contradicts", "negates"),
        ("142 days", ["42 days"], "none", "matches no gold alias"),
        ("WPA3.8", ["WPA3"], "none", "matches no gold alias"),  # a LoRA answer on kestrel_labs: another name, not WPA3
        ("v2.1", ["v2"], "none", "matches no gold alias"),
    ],
)
def test_generic_aliases_and_contradicting_content_are_wrong(answer, gold, rule, reason):
    s = score_answer(answer, gold, True)
    assert not s["correct"] and s["hallucinated"]
    assert s["match"] == rule and reason in s["why"]


def test_why_names_the_alias_that_matched():
    s = score_answer("Japanese Buddhist monk", ["Zen", "Buddhism"], True)
    assert s["why"] == 'contains "Buddhism"'
    s = score_answer("Catholic", ["Catholic Church"], True)
    assert '"Catholic Church"' in s["why"] and "generic word" in s["why"]


def test_restated_question_numbers_are_not_contradictions():
    q = "How many devices did the Kaunas team ship in September 2024?"
    assert score_answer("5,120 devices in September 2024", ["5,120"], True, question=q)["correct"]
    # Without the question the year is still a different kind of number than a count: harmless.
    assert score_answer("5,120 devices in September 2024", ["5,120"], True)["correct"]
    assert not score_answer("5,120 or 6,000", ["5,120"], True, question=q)["correct"]


def test_exact_match_and_f1_keep_the_squad_meaning():
    s = score_answer("Catholic", ["Catholic Church"], True)
    assert s["exact_match"] == 0 and s["f1"] == pytest.approx(2 / 3)  # SQuAD figures, not the matcher's
    assert score_answer("I don't know", ["x"], False)["exact_match"] == 1


def test_concept_tokens_relate_word_forms_numbers_and_demonyms():
    assert concept_tokens("Catholicism") == concept_tokens("Catholic")
    assert concept_tokens("Buddhist") == concept_tokens("Buddhism")
    assert concept_tokens("Japanese") == concept_tokens("Japan")
    assert concept_tokens("three weeks") == concept_tokens("3 weeks")
    assert concept_tokens("5,120") == ["5120"] and concept_tokens("2.5") != concept_tokens("25")
    assert concept_tokens("Methodist") != concept_tokens("Catholic")


def test_rescore_rows_recomputes_verdicts_and_keeps_other_fields():
    from workbench.evaluation.predictions import rescore_rows

    row = {"method": "rag", "question_id": "q1", "question": "What is the religion of Paul?", "gold": ["Catholic Church", "Church"],
           "answerable": True, "answer": "Catholic", "correct": False, "abstained": False, "hallucinated": True, "exact_match": 0,
           "f1": 0.67, "latency_s": 0.5}
    (new,) = rescore_rows([row])
    assert new["correct"] and not new["hallucinated"] and new["match"] == "core" and new["latency_s"] == 0.5
    assert row["correct"] is False  # the input rows are not changed
