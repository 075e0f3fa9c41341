"""Per-answer scoring rules: abstention, citations, containment, F1, the long-answer guard, unanswerable questions."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.evaluation.scoring import is_abstention, score_answer, semantic_similarity, strip_citations, token_f1

SCORES = ("abstained", "correct", "hallucinated", "exact_match", "f1")


@pytest.mark.parametrize(
    "reply",
    [
        "I don't know",
        "I don't know.",
        "i DON'T KNOW!",
        "I do not know",
        "I don’t know",  # typographic apostrophe
        "I don't know [1]",
        "I don't know. [2]",
        "Answer: I don't know",
        "I don't know the answer.",
        "I don't know based on the provided context.",
        "I don't know. I don't know.",
        "Unknown",
        "I'm not sure.",
    ],
)
def test_abstention_variants(reply):
    assert is_abstention(reply)
    s = score_answer(reply, ["42 days"], True)
    assert s == {"abstained": True, "correct": False, "hallucinated": False, "exact_match": 0, "f1": 0.0, "match": "abstained", "why": "abstained on an answerable question"}


@pytest.mark.parametrize(
    "reply",
    [
        "42 days. I don't know about the rest.",
        "The retention period is 42 days, but I don't know who set it",
        "I don't know, but probably 42 days",
        "I don't know exactly, maybe 30",
        "I don't know the exact figure; it is around 40 days in 2023",
        "Kestrel Labs does not know",
        "",
    ],
)
def test_not_abstention(reply):
    assert not is_abstention(reply)


def test_strip_citations():
    assert strip_citations("42 days [1]") == "42 days"
    assert strip_citations("42 days [1][2]") == "42 days"
    assert strip_citations("42 days [1, 3]") == "42 days"
    assert strip_citations("42 days [passage 2].") == "42 days."
    assert strip_citations("Answer: 42 days") == "42 days"
    assert strip_citations("Model [X] rocks") == "Model [X] rocks"  # not a citation


def test_citation_does_not_break_exact_match():
    s = score_answer("42 days [1]", ["42 days"], True)
    assert s["exact_match"] == 1 and s["correct"] and s["f1"] == 1.0 and not s["hallucinated"]
    # Without stripping, "1" would be an extra token and exact match would fail.
    assert score_answer("The 42 days [2].", ["42 days"], True)["exact_match"] == 1


def test_containment_on_token_boundaries():
    s = score_answer("Data is kept for 42 days in total.", ["42 days"], True)
    assert s["correct"] and s["exact_match"] == 0 and 0 < s["f1"] < 0.8
    # "142 days" contains "42 days" as characters but not on token boundaries.
    s = score_answer("142 days", ["42 days"], True)
    assert not s["correct"] and s["hallucinated"]


def test_f1_match_without_containment():
    # F1("falcon x200 sensor", "falcon x200"): p=2/3, r=1 -> 0.8.
    assert token_f1("Falcon X200 sensor", "Falcon X200") == pytest.approx(0.8)
    s = score_answer("Falcon X200 sensor", ["X200 Falcon"], True)  # order differs: no containment, F1 = 0.8 counts
    assert s["correct"] and s["f1"] == pytest.approx(0.8) and s["exact_match"] == 0
    s = score_answer("Falcon X300 sensor unit", ["Falcon X200 sensor unit board"], True)
    assert s["f1"] == pytest.approx(2 * (3 / 4) * (3 / 5) / (3 / 4 + 3 / 5))
    assert not s["correct"]


def test_f1_is_max_over_aliases_and_exact_match_any_alias():
    s = score_answer("six weeks", ["42 days", "6 weeks", "six weeks"], True)
    assert s["exact_match"] == 1 and s["f1"] == 1.0
    assert token_f1("a", "the") == 1.0  # both normalise to nothing


def test_long_answer_guard():
    gold = ["outage P1"]  # 2 tokens -> containment counts up to 4*2+10 = 18 tokens
    listing = "outage P1 or bug P2 or billing P2 or account P3 or security P1 or feature P3 or outage P2 maybe"
    assert len(listing.split()) > 18
    s = score_answer(listing, gold, True)
    assert not s["correct"] and s["hallucinated"]
    # The same containment within the limit counts.
    assert score_answer("This looks like outage P1 to me", gold, True)["correct"]
    # A long answer whose F1 is high still counts (guard only disables containment).
    long_gold = ["the quick brown fox jumps over the lazy dog near the river bank"]
    assert score_answer("quick brown fox jumps over lazy dog near river bank today", long_gold, True)["correct"]


def test_unanswerable_handling():
    s = score_answer("I don't know", [], False)
    assert {k: s[k] for k in SCORES} == {"abstained": True, "correct": False, "hallucinated": False, "exact_match": 1, "f1": 1.0}
    assert s["match"] == "unanswerable" and "SQuAD v2" in s["why"]
    s = score_answer("42 days [1]", [], False)
    assert {k: s[k] for k in SCORES} == {"abstained": False, "correct": False, "hallucinated": True, "exact_match": 0, "f1": 0.0}
    # Plausible-answer aliases on an unanswerable question never make it correct.
    s = score_answer("42 days", ["42 days"], False)
    assert not s["correct"] and s["hallucinated"]


def test_wrong_answer_is_hallucinated():
    s = score_answer("30 days [1]", ["42 days"], True)
    assert {k: s[k] for k in SCORES} == {"abstained": False, "correct": False, "hallucinated": True, "exact_match": 0, "f1": pytest.approx(0.5)}
    assert s["match"] == "none" and "42 days" in s["why"]


class _BagOfWordsEmbedder:
    """Deterministic fake embedder: hashed bag of normalised words; counts calls to check batching."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts):
        from workbench.textnorm import tokens

        self.calls += 1
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, t in enumerate(texts):
            for w in tokens(t):
                out[i, sum(map(ord, w)) % 64] += 1.0
        return out


def test_semantic_similarity_fake_embedder_batched():
    emb = _BagOfWordsEmbedder()
    sims = semantic_similarity(
        ["42 days [1]", "I don't know", "blue", "42 days"],
        [["forty", "42 days"], ["42 days"], ["red"], []],
        emb,
        answerable=[True, True, True, False],
    )
    assert emb.calls == 1
    assert sims[0] == pytest.approx(1.0)  # closest alias, citation stripped
    assert sims[1] is None and sims[3] is None  # abstained, unanswerable
    assert sims[2] is not None and sims[2] < 0.5


@pytest.mark.slow
def test_semantic_similarity_real_embedder(tiny_embedder_dir):
    from workbench.backends.models import load_embedder

    emb = load_embedder(str(tiny_embedder_dir))
    sims = semantic_similarity(["six weeks", "a banana smoothie"], [["42 days", "six weeks"], ["forty-two days"]], emb)
    assert sims[0] == pytest.approx(1.0, abs=1e-2)
    assert sims[1] is not None and sims[1] < 0.6
