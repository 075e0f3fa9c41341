"""Leakage guard: held-out questions must not reach LoRA training, verbatim or paraphrased."""

from __future__ import annotations

import pytest

from workbench.tuning.leakage import LeakageError, check_leakage, exact_matches, leaking_indices
from workbench.types import Question

HELD_OUT = [
    Question("h-founded", "What year was Kestrel Labs founded?", ["2011"], split="test"),
    Question("h-weight", "How much does the Merlin radio weigh?", ["41 grams"], split="test"),
    Question("h-ceo", "Who is the CEO?", ["Ola Berg"], split="test"),
]
CHUNKS = ["Kestrel Labs builds flight controllers in Tromso.", "The Merlin radio weighs 41 grams."]


@pytest.fixture(scope="module")
def embedder():
    from workbench.retrieval.embedding import Embedder

    return Embedder()


def test_clean_data_passes(embedder):
    report = check_leakage(CHUNKS + ["Which bands does Merlin support?"], HELD_OUT, embedder, questions=["Which bands does Merlin support?"])
    assert report.ok and report.leaked_ids == []
    assert report.n_held_out == 3 and report.n_compared_questions == 1
    assert 0 < report.max_cosine < 0.92
    report.raise_if_leaked()  # no error


def test_exact_held_out_question_inside_training_text_is_caught(embedder):
    texts = CHUNKS + ["FAQ. What year was Kestrel Labs founded? It was 2011, in a garage."]
    report = check_leakage(texts, HELD_OUT, embedder, questions=[])
    assert [e["id"] for e in report.exact] == ["h-founded"]
    assert report.exact[0]["text_index"] == 2
    with pytest.raises(LeakageError, match=r"held-out question h-founded appears in the LoRA training data verbatim") as err:
        report.raise_if_leaked()
    assert "\n" not in str(err.value)


def test_short_questions_only_match_whole_texts():
    # "who is ceo" occurs inside a sentence: too short to call a leak by containment
    assert exact_matches(["Ask who is the CEO of the month in the newsletter."], HELD_OUT) == []
    assert [h["id"] for h in exact_matches(["who is the CEO"], HELD_OUT)] == ["h-ceo"]


def test_paraphrased_held_out_question_is_caught(embedder):
    train_q = ["Which year was Kestrel Labs founded in?", "Which bands does Merlin support?"]
    report = check_leakage(CHUNKS, HELD_OUT, embedder, questions=train_q, answers=["2011", "868 MHz"])
    assert report.leaked_ids == ["h-founded"]
    assert report.near[0]["match"] == train_q[0] and report.near[0]["cosine"] >= 0.92
    with pytest.raises(LeakageError, match="h-founded appears in the LoRA training data as a near-duplicate"):
        report.raise_if_leaked()


def test_similar_question_with_a_different_answer_is_not_a_leak(embedder):
    # the small embedder rates these two very close, yet training on one does not give the other away
    report = check_leakage(CHUNKS, HELD_OUT, embedder, questions=["Who founded Kestrel Labs?"], answers=["Mira Holt"])
    cosine_only = check_leakage(CHUNKS, HELD_OUT, embedder, questions=["Who founded Kestrel Labs?"])
    assert not cosine_only.ok and cosine_only.leaked_ids == ["h-founded"]  # the premise: by cosine alone this is a near-duplicate
    assert report.ok and report.similar_other_answer == 1


def test_report_is_serialisable(embedder):
    import json

    report = check_leakage(CHUNKS, HELD_OUT, embedder, questions=["What year was Kestrel Labs founded"], answers=["2011"])
    d = json.loads(json.dumps(report.to_dict()))
    assert d["ok"] is False and d["leaked_ids"] == ["h-founded"] and d["n_exact"] == 1 and d["n_near"] == 1
    assert d["embedder"] == "all-MiniLM-L6-v2"


def test_leaking_synthetic_candidates_are_found(embedder):
    cands = ["In which year was Kestrel Labs founded?", "What colour is the Merlin box?", "how much does the merlin radio weigh"]
    assert leaking_indices(cands, HELD_OUT, embedder, answers=["2011", "blue", "41 grams"]) == [0, 2]
    assert leaking_indices([], HELD_OUT, embedder) == []
