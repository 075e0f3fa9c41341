"""The data recipe that learns the corpus: generated Q/A (quality-checked, cached, leak-filtered), dialogues, dev slice, RAFT."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.backends.base import GenResult
from workbench.config import ABSTAIN_REPLY, TrainConfig
from workbench.tuning.corpus_qa import generate_pairs, parse_pairs, quality_check
from workbench.tuning.lora_data import build_training_data, dev_slice
from workbench.tuning.packing import IGNORE, dialogue_example, qa_example
from workbench.tuning.raft_data import raft_examples
from workbench.tuning.specs import raft_settings
from workbench.tuning.tuned import data_counts
from workbench.types import Corpus, Document, Question

DOCS = {
    "vantor.md": "The Vantor-9 sensor was designed by Ilse Marwick in 2017. It weighs 412 grams and its battery lasts 37 hours.",
    "returns.md": "Returns are accepted within 23 days of delivery. The returns desk is in Kaunas.",
    "history.md": "Brellin Optics was founded in 2009 in Tartu by Oskar Veem. It opened a Lisbon office in 2015.",
}
REPLIES = {
    "Vantor-9": "Q: Who designed the Vantor-9 sensor?\nA: Ilse Marwick\nQ: How long does the Vantor-9 battery last?\nA: 37 hours\nQ: What colour is the Vantor-9?\nA: bright green",
    "Returns": "Q: Within how many days are returns accepted?\nA: 23 days\nQ: Where is the returns desk?\nA: Kaunas",
    "Brellin": "Q: Who founded Brellin Optics?\nA: Oskar Veem\nQ: When did Brellin Optics open its Lisbon office?\nA: 2015",
}


FACT_QUESTIONS = {  # what the writer asks for each picked answer; any other answer gets a question that gives it away
    "Ilse Marwick": "Who designed the Vantor-9 sensor?", "37 hours": "How long does the Vantor-9 battery last?",
    "23 days": "Within how many days of delivery are returns accepted?", "Kaunas": "Where is the returns desk?",
    "Oskar Veem": "Who founded Brellin Optics?", "2015": "When did Brellin Optics open its Lisbon office?",
}  # fmt: skip


class FakeGenerator:
    """Writes fixed Q/A replies per passage, or a question per picked answer (stands in for the base model); counts calls."""

    fingerprint = "fake-generator-1"

    def __init__(self, tok):
        self.tok, self.calls, self.prompts = tok, 0, 0

    def _reply(self, prompt: str) -> str:
        if 'whose answer is "' in prompt:
            answer = prompt.split('whose answer is "', 1)[1].split('"', 1)[0]
            return FACT_QUESTIONS.get(answer, f"What is {answer}?")
        return next(r for k, r in REPLIES.items() if k in prompt)

    def generate(self, prompts, max_new_tokens, **kw):
        self.calls += 1
        self.prompts += len(prompts)
        return [GenResult(self._reply(p), 300, 40, 0.1, 0.1) for p in prompts]


def corpus(held: list[Question] | None = None) -> Corpus:
    train = [Question(f"t{i}", f"Train question number {i}?", [f"answer {i}"], split="train") for i in range(12)]
    return Corpus(Path("/tmp/c"), [Document(k, v) for k, v in DOCS.items()], train + (held or []))


def test_parse_and_quality_check_keep_only_extractive_new_pairs():
    extra = "\nQ: Who designed the Vantor-9 sensor?\nA: Ilse Marwick\nQ: What did Ilse Marwick design?\nA: Ilse Marwick"
    pairs = parse_pairs(REPLIES["Vantor-9"] + extra)
    assert len(pairs) == 5
    kept, dropped = quality_check(pairs, DOCS["vantor.md"], set())
    assert [a for _, a in kept] == ["Ilse Marwick", "37 hours"]
    assert dropped == {"answer_not_in_chunk": 1, "duplicate_question": 1, "malformed": 0, "answer_in_question": 1}


def test_cached_pairs_whose_question_gives_the_answer_away_are_dropped_on_reading(tmp_path, monkeypatch, qwen_tokenizer):
    from workbench.tuning import corpus_qa

    monkeypatch.setattr(corpus_qa, "cache_dir", lambda name: tmp_path)
    gen = FakeGenerator(qwen_tokenizer)
    chunks = [("vantor.md", DOCS["vantor.md"])]
    first = generate_pairs(gen, chunks, 3)
    path = tmp_path / f"{first['key']}.json"
    blob = __import__("json").loads(path.read_text())
    blob["pairs"].append({"question": "What is Ilse Marwick's role?", "answer": "Ilse Marwick", "doc_id": "vantor.md", "chunk": 0, "synthetic": True})
    path.write_text(__import__("json").dumps(blob))
    again = generate_pairs(gen, chunks, 3)
    assert again["cache_hit"] and again["pairs"] == first["pairs"] and again["stats"]["answer_in_question"] == 1


def test_generated_pairs_are_cached_and_reused(qwen_tokenizer):
    gen = FakeGenerator(qwen_tokenizer)
    chunks = [(k, v) for k, v in DOCS.items()]
    first = generate_pairs(gen, chunks, 3)
    again = generate_pairs(gen, chunks, 3)
    assert not first["cache_hit"] and again["cache_hit"] and gen.calls == 1
    assert again["pairs"] == first["pairs"] and all(p["synthetic"] for p in first["pairs"])
    assert first["stats"]["kept"] == 6 and first["stats"]["answer_not_in_chunk"] == 1 and first["stats"]["chunks_covered"] == 3
    assert generate_pairs(gen, chunks, 2)["cache_hit"] is False  # another recipe is another key


def test_recipe_has_chunks_generated_dialogues_train_qa_and_keeps_dev_and_held_out_out(qwen_tokenizer):
    held = [Question("h1", "Where is the returns desk located?", ["Kaunas"], split="test")]  # a generated twin with the held-out answer
    c = corpus(held)
    cfg = TrainConfig(seq_len=256, generated_qa=3, dev_fraction=0.2)
    data = build_training_data(c, qwen_tokenizer, cfg, seed=0, held_out=held, generator=FakeGenerator(qwen_tokenizer), embedder=None)
    st = data.stats
    dev = {q.question for q in dev_slice(c, 0.2, 0)}
    assert len(dev) == 4 and st["dev_questions"] == 4
    assert st["examples"]["qa"] == 12 - 4 and not dev & set(data.questions)
    assert st["examples"]["chunks"] >= 3
    assert st["generated_dropped_leak"] == 1 and "Where is the returns desk?" not in data.questions
    assert st["examples"]["generated_qa"] == 5 and "Who founded Brellin Optics?" in data.questions
    assert any(m["part"] == "generated_qa" and m["synthetic"] for m in data.meta)
    counts = data_counts(st, 3)
    assert counts["documents"] == 3 and counts["generated_qa"] == 5 and counts["train_qa"] == 8 and counts["generated_answer_in_question"] >= 3


def test_dialogue_first_turn_is_the_lora_prompt_and_every_answer_is_trained(qwen_tokenizer):
    single = qa_example(qwen_tokenizer, "Who founded Brellin Optics?", "Oskar Veem", "", "qa", {})
    dialogue = dialogue_example(qwen_tokenizer, [("Who founded Brellin Optics?", "Oskar Veem"), ("Where is the returns desk?", "Kaunas")], "", "generated_qa", {})
    assert dialogue.ids[: len(single.ids)] == single.ids and dialogue.labels[: len(single.ids)] == single.labels
    trained = qwen_tokenizer.decode([t for t in dialogue.labels if t != IGNORE])
    assert "Oskar Veem" in trained and "Kaunas" in trained and "returns desk" not in trained


def test_raft_examples_mix_gold_and_distractors_and_abstain_without_gold(qwen_tokenizer):
    chunks = [(k, v) for k, v in DOCS.items()] + [("extra.md", "The Lisbon office has forty desks and a rooftop garden.")]
    pairs = [{"question": "Who founded Brellin Optics?", "answer": "Oskar Veem", "doc_id": "history.md", "chunk": 2}] * 1 + [
        {"question": f"Who designed the Vantor-9 sensor (v{i})?", "answer": "Ilse Marwick", "doc_id": "vantor.md", "chunk": 0} for i in range(19)
    ]
    cfg = raft_settings(TrainConfig(raft_examples=20, raft_distractors=2, raft_gold_share=0.7, raft_passage_tokens=32))
    examples = raft_examples(qwen_tokenizer, pairs, chunks, cfg, "", seed=0)
    assert len(examples) == 20
    with_gold = [e for e in examples if e.meta["gold_in_passages"]]
    assert 0 < len(with_gold) < 20
    for e in examples:
        assert "Context:" in e.text and "[2]" in e.text  # the rag prompt, numbered passages
        assert (e.answer == ABSTAIN_REPLY) == e.meta["abstain"]
        if e.meta["gold_in_passages"]:
            assert e.answer != ABSTAIN_REPLY
    assert any(e.answer == ABSTAIN_REPLY for e in examples)
    assert "Who founded Brellin Optics?" in [e.question for e in examples[:2]]  # one question per chunk first


def test_raft_recipe_builds_its_own_data(qwen_tokenizer):
    cfg = raft_settings(TrainConfig(generated_qa=3, raft_examples=6, raft_distractors=2, raft_passage_tokens=32))
    data = build_training_data(corpus(), qwen_tokenizer, cfg, seed=0, generator=FakeGenerator(qwen_tokenizer))
    assert data.stats["examples"]["raft"] == 6 and data.stats["examples"]["chunks"] == 0 and data.stats["examples"]["qa"] == 0
    assert data.stats["recipe"] == "raft" and len(data.questions) == 6


def test_generated_qa_needs_a_generator(qwen_tokenizer):
    from workbench.tuning.packing import LoraDataError

    with pytest.raises(LoraDataError, match="generated Q/A needs the base model"):
        build_training_data(corpus(), qwen_tokenizer, TrainConfig(generated_qa=2), seed=0)


def test_english_corpora_get_fact_questions_and_other_languages_the_free_form_writer(qwen_tokenizer):
    cfg = TrainConfig(seq_len=256, generated_qa=1, dev_fraction=0.0, use_chunks=False, use_qa=False)
    english = build_training_data(corpus(), qwen_tokenizer, cfg, seed=0, generator=FakeGenerator(qwen_tokenizer))
    assert english.stats["generation"]["asked"] == 6 and "written_now" in english.stats["generation"]  # one answer per sentence
    c = corpus()
    c.language = "ko"
    other = build_training_data(c, qwen_tokenizer, cfg, seed=0, generator=FakeGenerator(qwen_tokenizer))
    assert other.stats["generation"]["asked"] == 3 and "written_now" not in other.stats["generation"]  # one pair per chunk


def test_the_writer_asks_a_korean_corpus_for_korean_questions_and_keeps_english_keys():
    from workbench.tuning.corpus_qa import QA_PROMPT, generation_key, qa_prompt

    assert qa_prompt("en") == QA_PROMPT  # English prompts (and so their cached pairs) are unchanged
    ko = qa_prompt("ko")
    assert "한국어로" in ko and ko.index("한국어로") < ko.index("Reply exactly") and ko.count("{passage}") == 1
    chunks = [("a.md", "누리솔에너지는 2016년에 설립되었다.")]
    assert generation_key("g", chunks, 1) == generation_key("g", chunks, 1, "en") != generation_key("g", chunks, 1, "ko")


def test_a_korean_corpus_writer_prompt_carries_the_note(qwen_tokenizer):
    seen: list[str] = []

    class Recording(FakeGenerator):
        def generate(self, prompts, max_new_tokens, **kw):
            seen.extend(prompts)
            return [GenResult("Q: 누리솔에너지는 언제 설립되었나요?\nA: 2016년", 300, 20, 0.1, 0.1) for _ in prompts]

    c = Corpus(Path("/tmp/ko"), [Document("a.md", "누리솔에너지는 2016년에 설립되었다.")], [], language="ko")
    cfg = TrainConfig(seq_len=256, generated_qa=1, dev_fraction=0.0, use_chunks=False, use_qa=False)
    data = build_training_data(c, qwen_tokenizer, cfg, seed=0, generator=Recording(qwen_tokenizer))
    assert seen and all("한국어로" in p for p in seen)
    assert data.stats["generation"]["kept"] == 1
