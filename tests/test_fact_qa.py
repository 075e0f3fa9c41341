"""Questions written per fact: answer spans picked from every sentence, one question each, cached per fact."""

from __future__ import annotations

from test_corpus_qa import DOCS, FakeGenerator

from workbench.tuning import fact_qa
from workbench.tuning.fact_qa import answer_spans, facts, generate_fact_pairs


def test_answer_spans_put_numbers_dates_and_amounts_before_names_and_skip_labels():
    plain = {"revenue", "the", "returns"}
    spans = answer_spans("Brellin Optics was founded in 2009 in Tartu by Oskar Veem.", plain)
    assert spans[0] == "2009" and "2009 in" not in spans  # a function word is not a unit
    assert spans.index("Oskar Veem") < spans.index("Brellin Optics")  # the sentence's subject last
    assert set(answer_spans("The list price is $2,140 and it shipped on March 3, 2019.", plain)[:2]) == {"$2,140", "March 3, 2019"}
    assert answer_spans("Its battery lasts 14 hours.", plain) == ["14 hours"]
    assert "Revenue" not in answer_spans("- Revenue in fiscal year 2023: EUR 61.7 million", plain)
    assert answer_spans("Returns are accepted within 23 days.", plain) == ["23 days"]  # "Returns": a capitalised ordinary word


def test_facts_cover_every_sentence_once_even_across_overlapping_chunks():
    text = DOCS["history.md"]
    chunks = [("history.md", text), ("history.md", text.split(". ", 1)[1])]  # the second chunk repeats the last sentence
    one = facts(chunks, 1)
    assert [f.answer for f in one] == ["2009", "2015"] and {f.chunk for f in one} == {0}
    assert [f.answer for f in facts(chunks, 2)] == ["2009", "Oskar Veem", "2015", "Lisbon"]


def test_fact_questions_are_quality_checked_and_a_larger_budget_reuses_what_was_written(qwen_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(fact_qa, "cache_dir", lambda name: tmp_path)
    gen = FakeGenerator(qwen_tokenizer)
    chunks = list(DOCS.items())
    first = generate_fact_pairs(gen, chunks, 1)
    assert not first["cache_hit"] and gen.prompts == first["stats"]["asked"] == 6  # one answer per sentence
    assert {p["answer"] for p in first["pairs"]} == {"23 days", "Kaunas", "2015"}  # "What is 2017?" gives it away
    assert first["stats"]["answer_in_question"] == 3 and all(p["synthetic"] and p["chunk"] in (0, 1, 2) for p in first["pairs"])
    again = generate_fact_pairs(gen, chunks, 1)
    assert again["cache_hit"] and again["pairs"] == first["pairs"] and gen.prompts == 6
    wider = generate_fact_pairs(gen, chunks, 2)
    assert not wider["cache_hit"] and wider["stats"]["written_now"] == gen.prompts - 6 == wider["stats"]["asked"] - 6
    assert {"Ilse Marwick", "37 hours", "Oskar Veem"} <= {p["answer"] for p in wider["pairs"]}
