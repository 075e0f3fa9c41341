"""Secondary hallucination signals: unsupported numbers/names against context and corpus, judged groundedness."""

from __future__ import annotations

import pytest

from workbench.evaluation.hallucination import corpus_support_text, groundedness, groundedness_prompt, unsupported_content

CORPUS = corpus_support_text(
    [
        "The Falcon X200 costs $1,299 per seat. Battery life is 2.3 hours.",
        "Dr. Mira Okafor leads the Harrier project at Kestrel Labs since 3 March 2021.",
    ]
)
CTX = ["Support tickets are answered within 42 hours by the Osprey team."]


def test_invented_number_is_detected():
    assert unsupported_content("It costs $1,499 per seat [1]", CTX, CORPUS) == ["1,499"]
    assert unsupported_content("It costs $1,299 per seat [1]", CTX, CORPUS) == []


def test_numbers_with_decimals_dates_and_context():
    assert unsupported_content("2.3 hours", [], CORPUS) == []
    assert unsupported_content("4.7 hours", [], CORPUS) == ["4.7"]
    assert unsupported_content("42 hours [1]", CTX, CORPUS) == []  # only in the retrieved context
    assert unsupported_content("42 hours", [], CORPUS) == ["42"]  # nowhere without the context
    assert unsupported_content("Since March 3, 2021.", [], CORPUS) == []  # date numbers in another order
    assert unsupported_content("Since 2021-03-03", [], CORPUS) == []  # digit groups all supported
    assert unsupported_content("Since 2019-03-03", [], CORPUS) == ["2019-03-03"]


def test_citation_numbers_are_not_content():
    assert unsupported_content("Mira Okafor [3]", [], CORPUS) == []
    assert unsupported_content("Mira Okafor [1, 2]", [], CORPUS) == []


def test_invented_names_detected_and_sentence_initial_words_ignored():
    assert unsupported_content("The project lead is Mira Okafor.", [], CORPUS) == []
    assert unsupported_content("Dr. Okafor", [], CORPUS) == []
    assert unsupported_content("It was led by Jonas Whitfield.", [], CORPUS) == ["Jonas Whitfield"]
    assert unsupported_content("Osprey team [1]", CTX, CORPUS) == []
    assert unsupported_content("Osprey team", [], CORPUS) == ["Osprey"]
    # Lower-case words are never flagged; "I" and sentence-initial common words are skipped.
    assert unsupported_content("I think it is about battery life. Yes.", [], CORPUS) == []
    # A capitalised word mid-sentence that the corpus lacks is flagged even if common.
    assert unsupported_content("Kestrel Labs and Zephyr Labs", [], CORPUS) == ["Zephyr Labs"]


def test_hyphenated_names_codes_and_plurals():
    sup = corpus_support_text(["Rafael Oyelaran-Stone is CFO. The Osprey 7 uses WPA3 and ships in Lichen Grey. Still Air Friday."])
    assert unsupported_content("Rafael Oyelaran Stone", [], sup) == []
    assert unsupported_content("Rafael Oyelaran-Stone", [], sup) == []
    assert unsupported_content("WPA3", [], sup) == []
    assert unsupported_content("WPA2", [], sup) == ["WPA2"]
    assert unsupported_content("Still Air Fridays", [], sup) == []
    assert unsupported_content("Rafael Oyelaran-Smith", [], sup) == ["Rafael Oyelaran-Smith"]


def test_thousands_and_decimals_are_atomic():
    sup = corpus_support_text(["Price: 1,299 or 499 units; weight 2.3 kg; 7 items."])
    assert unsupported_content("1,499", [], sup) == ["1,499"]  # "1" and "499" exist, but not 1,499
    assert unsupported_content("7.3 kg", [], sup) == ["7.3"]


def test_fact_corpus_gold_supported_and_invented_answers_flagged():
    from conftest import FACT_CORPUS

    if not (FACT_CORPUS / "questions.jsonl").is_file():
        pytest.skip("fact corpus not present")
    from workbench.corpus.load import load_corpus

    corpus = load_corpus(str(FACT_CORPUS))
    sup = corpus_support_text([d.text for d in corpus.documents])
    gold = [a for q in corpus.questions for a in q.answers]
    invented = [q.meta["plausible_answer"] for q in corpus.questions if q.meta.get("plausible_answer")]
    false_alarms = sum(bool(unsupported_content(a, [], sup)) for a in gold)
    caught = sum(bool(unsupported_content(a, [], sup)) for a in invented)
    assert len(gold) > 100 and false_alarms / len(gold) < 0.02  # measured: 2 of 353 ("Lichen Gray" vs "Grey")
    assert len(invented) > 20 and caught / len(invented) > 0.4  # measured: 31 of 52 without any context


def test_abstentions_are_supported():
    assert unsupported_content("I don't know", [], CORPUS) == []
    assert unsupported_content("I do not know. [1]", [], "") == []


class _FakeJudge:
    """Exposes Generator.score_yes: 0.9 when the answer's words are in the context, else 0.1."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def score_yes(self, prompts):
        self.prompts += prompts
        out = []
        for p in prompts:
            ctx = p.split("Question:")[0].lower()
            ans = p.split("\nAnswer:")[1].split("\n")[0].strip().lower()
            out.append(0.9 if ans and ans in ctx else 0.1)
        return out


def test_groundedness_with_fake_judge():
    judge = _FakeJudge()
    res = groundedness(
        judge,
        ["How fast?", "How fast?", "Who?", "Who?"],
        ["42 hours [1]", "7 days [1]", "I don't know", "Mira"],
        [CTX, CTX, CTX, None],
        batch_size=1,
    )
    assert res == [0.9, 0.1, None, None]  # abstention and closed-book rows are not judged
    assert len(judge.prompts) == 2
    p = judge.prompts[0]
    assert p.startswith("Context:\n[1] Support tickets") and "Question: How fast?" in p and "Answer: 42 hours\n" in p
    assert p.endswith("Is this answer supported by the context? Answer Yes or No.")
    assert groundedness_prompt("q", "a [2]", ["x", "y"]).count("[2]") == 1  # answer citation stripped, passage [2] kept


def test_groundedness_rejects_bad_judge_output():
    class Broken:
        def score_yes(self, prompts):
            return [1.5 for _ in prompts]

    with pytest.raises(RuntimeError, match="expected a probability"):
        groundedness(Broken(), ["q"], ["a"], [["ctx"]])
    with pytest.raises(ValueError, match="one of each"):
        groundedness(Broken(), ["q"], ["a", "b"], [["ctx"]])


def test_groundedness_on_tiny_generator_renders_chat_template(tiny_lm_dir):
    from workbench.backends.hf import HFGenerator as Generator
    from workbench.backends.models import load_generator

    gen = Generator(*load_generator(str(tiny_lm_dir)), name="tiny")
    seen: list[str] = []
    real = gen.score_yes
    gen.score_yes = lambda prompts: (seen.extend(prompts), real(prompts))[1]
    res = groundedness(gen, ["How fast?", "How fast?", "Who?"], ["42 hours [1]", "I don't know", "Mira"], [CTX, CTX, []])
    assert res[1] is None and res[2] is None
    assert isinstance(res[0], float) and 0.0 <= res[0] <= 1.0
    assert len(seen) == 1 and seen[0].startswith("<|im_start|>system") and seen[0].endswith("<|im_start|>assistant\n")


@pytest.mark.slow
def test_groundedness_real_model_prefers_supported_answer():
    from workbench.backends.hf import HFGenerator as Generator

    gen = Generator.from_name("qwen2.5-0.5b")
    ctx = ["Kestrel Labs keeps audit logs for 42 days; after that they are deleted."]
    q = "How long are audit logs kept?"
    supported, contradicted = groundedness(gen, [q, q], ["42 days [1]", "10 years [1]"], [ctx, ctx])
    assert supported > contradicted
