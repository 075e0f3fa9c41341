"""Adapter training data in the corpus's language: the prompts and abstention reply the strategies use at evaluation.

English is pinned: the same texts as the prompt functions called without a language, the same data keys as before.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from workbench.backends.base import GenResult
from workbench.config import ABSTAIN_REPLY, TrainConfig
from workbench.language import language
from workbench.methods import prompts
from workbench.methods.registry import LORA
from workbench.tuning import raft_data
from workbench.tuning.lora_data import build_training_data, data_fingerprint
from workbench.tuning.packing import dialogue_example, qa_example
from workbench.tuning.raft_data import raft_examples
from workbench.tuning.specs import raft_settings
from workbench.types import Corpus, Document, Question

KO = language("ko").abstain_reply  # 모르겠습니다
KO_DOCS = {
    "history.md": "누리솔에너지는 2012년 부산에서 설립되었다. 창업자는 김하늘이다.",
    "ns7.md": "태양광 모듈 NS-7의 보증 기간은 12년이다. 모듈의 무게는 21킬로그램이다.",
    "returns.md": "반품은 배송 후 30일 이내에 접수된다. 반품 창구는 대전에 있다.",
}
KO_REPLIES = {
    "누리솔에너지는": "Q: 누리솔에너지는 어느 도시에서 설립되었나요?\nA: 부산\nQ: 누리솔에너지의 창업자는 누구인가요?\nA: 김하늘",
    "NS-7": "Q: NS-7의 보증 기간은 얼마인가요?\nA: 12년\nQ: NS-7 모듈은 얼마나 무겁나요?\nA: 21킬로그램",
    "반품은": "Q: 반품은 배송 후 며칠 안에 접수되나요?\nA: 30일\nQ: 반품 창구는 어느 도시에 있나요?\nA: 대전",
}


class KoreanWriter:
    """Writes fixed Korean Q/A replies per passage (stands in for the base model)."""

    fingerprint = "fake-korean-writer-1"

    def __init__(self, tok):
        self.tok = tok

    def generate(self, prompts, max_new_tokens, **kw):
        return [GenResult(next(r for k, r in KO_REPLIES.items() if k in p), 300, 40, 0.1, 0.1) for p in prompts]


def ko_corpus(lang: str = "ko") -> Corpus:
    qs = [
        Question("t1", "누리솔에너지의 창업자는 누구인가요?", ["김하늘"], split="train"),
        Question("t2", "NS-7의 보증 기간은 얼마인가요?", ["12년"], split="train"),
        Question("t3", "대표이사의 신발 사이즈는 얼마인가요?", [], answerable=False, split="train"),
        Question("h1", "반품 창구는 어디에 있나요?", ["대전"], split="test"),
    ]
    return Corpus(Path("/tmp/ko"), [Document(k, v) for k, v in KO_DOCS.items()], qs, instruction="한국어로 답하세요.", language=lang)


def en_corpus() -> Corpus:
    qs = [
        Question("t1", "Who founded Kestrel Labs?", ["Mira Holt"], split="train"),
        Question("t2", "What is the CEO's shoe size?", [], answerable=False, split="train"),
        Question("h1", "When did Merlin ship?", ["2015"], split="test"),
    ]
    docs = [Document("a.md", "Kestrel Labs was founded in 2011 by Mira Holt.")]
    return Corpus(Path("/tmp/en"), docs, qs, instruction="Answer briefly.")


def qa_texts(data) -> dict[str, str]:
    return {m["id"]: t for m, t in zip(data.meta, data.texts, strict=True) if m["part"] == "qa"}


# ----------------------------------------------------------------- English unchanged


class PinTokenizer:
    """Just what the data key reads of a tokenizer."""

    eos_token_id = 2
    chat_template = ""

    def __len__(self) -> int:
        return 1000


def test_english_data_keys_are_the_keys_from_before_languages_reached_training():
    c = en_corpus()
    # computed with the code before this change; change only with a deliberate DATA_VERSION bump (4: first-fit packing)
    assert data_fingerprint(c, PinTokenizer(), TrainConfig(), None, 0) == "559fc7c8a71fd936"
    assert data_fingerprint(c, PinTokenizer(), TrainConfig(recipe="raft", raft_examples=4, generated_qa=2), None, 0) == "2afb270a2f31954f"
    blank = dataclasses.replace(c, language="")
    assert data_fingerprint(blank, PinTokenizer(), TrainConfig(), None, 0) == data_fingerprint(c, PinTokenizer(), TrainConfig(), None, 0)


def test_english_training_texts_are_the_prompts_without_a_language(qwen_tokenizer):
    c = en_corpus()
    data = build_training_data(c, qwen_tokenizer, TrainConfig(seq_len=256, use_chunks=False), seed=0)
    texts = qa_texts(data)
    assert texts["t1"] == prompts.render(qwen_tokenizer, prompts.zero_shot_messages("Who founded Kestrel Labs?", c.instruction), answer="Mira Holt")
    assert texts["t2"] == prompts.render(qwen_tokenizer, prompts.zero_shot_messages("What is the CEO's shoe size?", c.instruction), answer=ABSTAIN_REPLY)
    old = qa_example(qwen_tokenizer, "Who founded Kestrel Labs?", "Mira Holt", c.instruction, "qa", {})
    assert qa_example(qwen_tokenizer, "Who founded Kestrel Labs?", "Mira Holt", c.instruction, "qa", {}, "en").ids == old.ids
    pairs = [("Who founded Kestrel Labs?", "Mira Holt"), ("When did Merlin ship?", "2015")]
    assert dialogue_example(qwen_tokenizer, pairs, "", "generated_qa", {}, language="en").ids == dialogue_example(qwen_tokenizer, pairs, "", "generated_qa", {}).ids


# ----------------------------------------------------------------- Korean


def test_korean_train_qa_carries_the_korean_prompt_and_abstention_reply(qwen_tokenizer):
    c = ko_corpus()
    data = build_training_data(c, qwen_tokenizer, TrainConfig(seq_len=256, use_chunks=False), seed=0)
    texts = qa_texts(data)
    system = prompts.zero_shot_messages("", c.instruction, "ko")[0]["content"]
    assert system.startswith(language("ko").system_facts.format(abstain=KO))
    for q in c.train:
        answer = q.answers[0] if q.answerable else KO
        assert texts[q.id] == prompts.render(qwen_tokenizer, prompts.zero_shot_messages(q.question, c.instruction, "ko"), answer=answer)
        assert system in texts[q.id]
    assert dict(zip(data.questions, data.answers, strict=True))["대표이사의 신발 사이즈는 얼마인가요?"] == KO
    assert not any(ABSTAIN_REPLY in t or "You answer questions" in t for t in data.texts)


def test_korean_dialogue_first_turn_is_the_korean_zero_shot_prompt(qwen_tokenizer):
    pairs = [("누리솔에너지의 창업자는 누구인가요?", "김하늘"), ("반품 창구는 어디에 있나요?", "대전")]
    dialogue = dialogue_example(qwen_tokenizer, pairs, "한국어로 답하세요.", "generated_qa", {}, language="ko")
    single = qa_example(qwen_tokenizer, pairs[0][0], pairs[0][1], "한국어로 답하세요.", "qa", {}, "ko")
    assert dialogue.ids[: len(single.ids)] == single.ids and dialogue.labels[: len(single.ids)] == single.labels
    first = prompts.render(qwen_tokenizer, prompts.zero_shot_messages(pairs[0][0], "한국어로 답하세요.", "ko"))
    assert dialogue.text.startswith(first)


def test_korean_generated_dialogues_are_in_korean(qwen_tokenizer):
    cfg = TrainConfig(seq_len=512, generated_qa=2, dev_fraction=0.0, use_chunks=False, use_qa=False)
    data = build_training_data(ko_corpus(), qwen_tokenizer, cfg, seed=0, generator=KoreanWriter(qwen_tokenizer))
    assert data.stats["examples"]["generated_qa"] >= 4
    system = prompts.zero_shot_messages("", "한국어로 답하세요.", "ko")[0]["content"]
    assert all(system in t for t in data.texts)


def test_korean_raft_examples_are_the_korean_rag_prompt(qwen_tokenizer, monkeypatch):
    calls = []
    real = prompts.rag_messages
    monkeypatch.setattr(raft_data.prompts, "rag_messages", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    chunks = list(KO_DOCS.items())
    pairs = [{"question": f"NS-7의 보증 기간은 얼마인가요? ({i})", "answer": "12년", "doc_id": "ns7.md", "chunk": 1} for i in range(8)]
    cfg = raft_settings(TrainConfig(raft_examples=8, raft_distractors=1, raft_gold_share=0.5, raft_passage_tokens=32))
    examples = raft_examples(qwen_tokenizer, pairs, chunks, cfg, "한국어로 답하세요.", 0, "ko")
    assert len(examples) == len(calls) == 8
    for e, (args, _kw) in zip(examples, calls, strict=True):
        question, passages = args[0], args[1]
        assert e.text == prompts.render(qwen_tokenizer, real(question, passages, "한국어로 답하세요.", "ko"), answer=e.answer)
        assert "문맥:" in e.text and "질문:" in e.text
        assert (e.answer == KO) == e.meta["abstain"]
    assert any(e.answer == KO for e in examples) and not any(e.answer == ABSTAIN_REPLY for e in examples)


def test_korean_raft_recipe_builds_korean_examples(qwen_tokenizer):
    cfg = raft_settings(TrainConfig(generated_qa=2, raft_examples=6, raft_distractors=1, raft_passage_tokens=32))
    data = build_training_data(ko_corpus(), qwen_tokenizer, cfg, seed=0, generator=KoreanWriter(qwen_tokenizer))
    assert data.stats["examples"]["raft"] == 6
    system = prompts.rag_messages("", [], "한국어로 답하세요.", "ko")[0]["content"]
    assert all(system in t and "문맥:" in t for t in data.texts)


def test_korean_data_key_differs_from_the_same_corpus_marked_english(qwen_tokenizer):
    for cfg in (TrainConfig(), raft_settings(TrainConfig(generated_qa=1, raft_examples=6))):
        ko = data_fingerprint(ko_corpus(), qwen_tokenizer, cfg, None, 0)
        assert ko != data_fingerprint(ko_corpus("en"), qwen_tokenizer, cfg, None, 0)
        assert ko == data_fingerprint(ko_corpus("KO"), qwen_tokenizer, cfg, None, 0)


def test_learning_curve_probes_answer_in_the_corpus_language(tmp_path, monkeypatch):
    from workbench.methods import strategies
    from workbench.tuning.tuned import learning_curve

    class Built(Exception):
        pass

    seen = {}

    def fake_make_strategy(method, **kw):
        seen.update(kw)
        raise Built

    monkeypatch.setenv("WORKBENCH_NO_ANSWER_CACHE", "1")
    monkeypatch.setattr(strategies, "make_strategy", fake_make_strategy)
    with pytest.raises(Built):
        learning_curve(LORA, tmp_path / "adapter", None, ko_corpus(), None, [], [], lambda *a: None)
    assert seen["language"] == "ko" and seen["instruction"] == "한국어로 답하세요."


def test_a_korean_data_key_follows_the_writer_prompt_and_an_english_one_does_not(qwen_tokenizer, monkeypatch):
    from workbench.tuning import corpus_qa

    cfg = TrainConfig(generated_qa=1)
    ko, en = data_fingerprint(ko_corpus(), qwen_tokenizer, cfg, None, 0), data_fingerprint(en_corpus(), qwen_tokenizer, cfg, None, 0)
    monkeypatch.setattr(corpus_qa, "qa_prompt", lambda code="en": "another writer prompt {n} {form} {passage}")
    assert data_fingerprint(ko_corpus(), qwen_tokenizer, cfg, None, 0) != ko  # cached Korean adapters retrain when the writer asks differently
    assert data_fingerprint(en_corpus(), qwen_tokenizer, cfg, None, 0) == en  # English uses the fact writer (DATA_VERSION marks its changes)
