"""Twin questions: grouped onto one side of the split, withheld from training and few-shot when a file splits them."""

from __future__ import annotations

import pytest

from workbench.corpus.load import assign_splits
from workbench.corpus.twins import WITHHELD, summary, twin_groups
from workbench.methods.few_shot import FewShotLeakError, few_shot_leakage
from workbench.tuning.leakage import check_leakage, same_answer
from workbench.types import Question


@pytest.fixture(scope="module")
def embedder():
    from workbench.retrieval.embedding import Embedder

    return Embedder()


def _free(n: int) -> list[Question]:
    return [Question(f"q{i:02d}", f"What is fact number {i} about product {i * 7}?", [f"answer {i}"]) for i in range(n)]


def test_same_text_twins_land_on_one_side_of_a_seeded_split():
    qs = _free(20) + [Question("twin-a", "Who founded Kestrel Labs?", ["Mira Holt"]), Question("twin-b", "who founded kestrel labs", ["Mira Holt"])]
    for seed in range(6):
        groups, joined = twin_groups(qs)
        out = {q.id: q.split for q in assign_splits(qs, 0.4, seed, groups=groups)}
        assert out["twin-a"] == out["twin-b"]
        assert joined["text"] == 1
    assert set(out.values()) == {"train", "test"}


def test_singletons_split_exactly_as_without_groups():
    qs = _free(30)
    assert [q.split for q in assign_splits(qs, 0.4, 3)] == [q.split for q in assign_splits(qs, 0.4, 3, groups=twin_groups(qs)[0])]


def test_explicit_split_twins_are_withheld_not_aborted(embedder):
    qs = [
        Question("t1", "What is the religion of Paul Grégoire?", ["Catholic Church"], split="test"),
        Question("t2", "what is the religion of Paul Grégoire", ["Catholic Church"], split="train"),  # same text
        Question("p1", "In what year was the Falcon drone released?", ["2019"], split="test"),
        Question("p2", "In which year was the Falcon drone released?", ["2019"], split="train"),  # paraphrase, same answer
        Question("o1", "In which year was the Falcon drone recalled?", ["2021"], split="train"),  # similar, other answer
        Question("f1", "What is the religion of Paul Grégoire?", ["Catholic Church"]),  # free twin follows the test side
    ]
    groups, joined = twin_groups(qs, embedder)
    out = {q.id: q for q in assign_splits(qs, 0.4, 0, groups=groups)}
    assert out["t2"].split == WITHHELD and out["t2"].meta["withheld_twin_of"] == "t1"
    assert out["p2"].split == WITHHELD
    assert out["o1"].split == "train" and out["f1"].split == "test"
    info = summary(list(out.values()), groups, joined, True)
    assert info["withheld"] == 2 and set(info["withheld_ids"]) == {"t2", "p2"}
    # the leakage guard, the final proof, finds nothing left on the train side
    train = [q for q in out.values() if q.split == "train"]
    held = [q for q in out.values() if q.split == "test"]
    report = check_leakage([], held, embedder, questions=[q.question for q in train], answers=[q.answers[0] for q in train])
    assert report.ok, report.to_dict()
    assert few_shot_leakage(train, held, embedder)["ok"]


def test_few_shot_pool_twin_is_refused(embedder):
    held = [Question("h", "In what year was the Falcon drone released?", ["2019"], split="test")]
    pool = [Question("p", "In which year was the Falcon drone released?", ["2019"], split="train")]
    with pytest.raises(FewShotLeakError, match="few-shot pool"):
        few_shot_leakage(pool, held, embedder)


def test_unanswerable_paraphrases_are_not_a_same_answer_leak(embedder):
    held = Question("h", "How many sick days does the handbook grant?", [], answerable=False, split="test")
    assert not same_answer("I don't know", held)
    report = check_leakage([], [held], embedder, questions=["How many sick days does the employee handbook grant?"], answers=["I don't know"])
    assert report.ok and report.similar_other_answer == 1


def test_short_question_inside_a_longer_question_is_not_verbatim():
    held = [Question("h", "What is the religion of Paul?", ["Anglicanism"], split="test")]
    from workbench.tuning.leakage import exact_matches

    assert exact_matches([], held, ["What is the religion of Paul Grégoire?"]) == []
    assert exact_matches(["Paul converted. what is the religion of paul? Nobody knew."], held) != []  # inside document text it still counts


def test_real_leaks_still_trigger(embedder):
    held = [Question("h", "What is the religion of Paul?", ["Anglicanism"], split="test")]
    verbatim = check_leakage([], held, embedder, questions=["What is the religion of Paul?"], answers=["Anglicanism"])
    assert [e["id"] for e in verbatim.exact] == ["h"]
    paraphrase = check_leakage([], held, embedder, questions=["What religion is Paul?"], answers=["Anglicanism"])
    assert paraphrase.near and paraphrase.near[0]["id"] == "h"
