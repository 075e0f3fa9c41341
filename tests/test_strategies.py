"""Strategies on the tiny model (prompt assembly, few-shot leakage guards, rag contexts) and one real-model check."""

from __future__ import annotations

import pytest
import torch

from workbench.backends.hf import HFGenerator as Generator
from workbench.backends.hf import TokenizerChat
from workbench.config import FewShotConfig, GenerationConfig, RetrievalConfig, build_config
from workbench.methods.few_shot import FewShot, FewShotLeakError
from workbench.methods.prompt_strategy import StrategyError
from workbench.methods.rag import Rag, citations
from workbench.methods.strategies import make_strategy
from workbench.methods.zero_shot import ZeroShot
from workbench.types import Question, Retrieved, Strategy

GEN = GenerationConfig(max_new_tokens=4, batch_size=8)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads; on a busy 2-core machine OpenMP spin-waits make them 10x slower."""
    before = torch.get_num_threads()
    yield torch.set_num_threads(1)
    torch.set_num_threads(before)


class Spy(TokenizerChat):
    """A real Generator that records the prompts it was given."""

    def __init__(self, gen: Generator):
        self.gen, self.prompts = gen, []
        self.tok = gen.tok

    def generate(self, rendered, *args, **kwargs):
        self.prompts += list(rendered)
        return self.gen.generate(rendered, *args, **kwargs)

    def count_tokens(self, text: str) -> int:
        return self.gen.count_tokens(text)


@pytest.fixture(scope="module")
def gen(tiny_lm_dir) -> Generator:
    return Generator.from_name(str(tiny_lm_dir))


def q(i: str, text: str, answers=("x",), split="train") -> Question:
    return Question(id=i, question=text, answers=list(answers), answerable=bool(answers), split=split)


POOL = [
    q("t1", "What colour is the Falcon drone's casing?", ["matte green"]),
    q("t2", "How many employees work in the Oslo office?", ["112"]),
    q("t3", "Which year did the Heron sensor launch?", ["2019"]),
    q("t4", "Who is the chief financial officer?", []),
    q("t5", "What is the battery capacity of the Osprey tracker?", ["4,000 mAh"]),
]
HELD_OUT = [
    q("h1", "How many people are employed at the Oslo office?", ["112"], split="test"),
    q("h2", "When was the Heron sensor released?", ["2019"], split="test"),
]


class FakeIndex:
    """Three hand-made chunks returned in a fixed order for every query (the real index is workbench.index)."""

    def __init__(self, texts: list[str]):
        self.hits = [Retrieved(chunk_id=i, doc_id=f"doc{i}.md", text=t, score=1.0 - i / 10, rank=i + 1) for i, t in enumerate(texts)]
        self.calls: list[list[str]] = []

    def search_batch(self, queries, cfg, embedder):
        self.calls.append(list(queries))
        return [list(self.hits[: cfg.top_k]) for _ in queries]


def test_zero_shot_answers_every_question_with_costs(gen):
    strat = ZeroShot(Spy(gen), gen_cfg=GEN)
    assert isinstance(strat, Strategy) and strat.name == "zero-shot"
    out = strat.answer(HELD_OUT)
    assert [a.question_id for a in out] == ["h1", "h2"]
    assert all(
        a.method == "zero-shot" and a.prompt_tokens > 20 and a.output_tokens >= 1 and a.latency_s > 0 and a.contexts == [] for a in out
    )
    assert HELD_OUT[0].question in strat.generator.prompts[0]


def test_few_shot_pool_must_be_train_only():
    with pytest.raises(FewShotLeakError, match="h1"):
        FewShot(None, POOL + [HELD_OUT[0]], FewShotConfig(k=2, selection="random"))


def test_few_shot_refuses_to_answer_pool_questions(gen):
    strat = FewShot(gen, POOL, FewShotConfig(k=2, selection="random"), gen_cfg=GEN)
    with pytest.raises(FewShotLeakError, match="t2"):
        strat.answer([HELD_OUT[0], POOL[1]])


def test_few_shot_random_is_seeded_and_uses_first_alias(gen):
    spy = Spy(gen)
    strat = FewShot(spy, POOL, FewShotConfig(k=3, selection="random"), seed=3, gen_cfg=GEN)
    out = strat.answer(HELD_OUT)
    ids = [[c["example_id"] for c in a.contexts] for a in out]
    assert all(len(x) == 3 and set(x) <= {p.id for p in POOL} for x in ids)
    assert [[e.id for e in ex] for ex in strat.select(HELD_OUT)] == ids  # same draw every time
    assert [[e.id for e in ex] for ex in strat.select(HELD_OUT[::-1])] == ids[::-1]  # per question, not per position
    by_id = {p.id: p for p in POOL}
    for prompt, examples in zip(spy.prompts, ids, strict=True):
        for e in examples:
            assert by_id[e].question in prompt
            assert (by_id[e].answers[0] if by_id[e].answers else "I don't know") in prompt


def test_few_shot_nearest_picks_the_obvious_neighbour(gen, tiny_embedder_dir):
    from workbench.retrieval.embedding import Embedder

    strat = FewShot(gen, POOL, FewShotConfig(k=1, selection="nearest"), embedder=Embedder(str(tiny_embedder_dir)), gen_cfg=GEN)
    assert [[e.id for e in ex] for ex in strat.select(HELD_OUT)] == [["t2"], ["t3"]]
    strat.cfg = FewShotConfig(k=3, selection="nearest")
    assert [ex[-1].id for ex in strat.select(HELD_OUT)] == ["t2", "t3"]  # the nearest sits next to the question


def test_rag_numbers_contexts_and_lists_them(gen):
    spy, index = Spy(gen), FakeIndex(["Alpha text about pricing.", "Bravo text about offices.", "Charlie text about staff."])
    strat = Rag(spy, index, RetrievalConfig(top_k=3), embedder=None, gen_cfg=GEN)
    out = strat.answer(HELD_OUT)
    assert index.calls == [[h.question for h in HELD_OUT]]  # one batched retrieval
    prompt = spy.prompts[0]
    assert "[1] Alpha text" in prompt and "[2] Bravo text" in prompt and "[3] Charlie text" in prompt
    assert out[0].contexts == [h.to_dict() for h in index.hits]
    assert out[0].method == "rag" and out[0].meta["n_used"] == 3


def test_rag_trims_lowest_ranked_chunks_to_fit(gen):
    long = "word " * 200
    index = FakeIndex([f"First {long}", f"Second {long}", f"Third {long}"])
    base = Rag(gen, index, RetrievalConfig(top_k=3), gen_cfg=GEN)
    full_len = base.generator.count_tokens(base._prompt("Q?", index.hits)[0])
    cfg = GenerationConfig(max_new_tokens=4, max_prompt_tokens=full_len - 50)
    out = Rag(gen, index, RetrievalConfig(top_k=3), gen_cfg=cfg).answer(HELD_OUT[:1])
    assert [c["rank"] for c in out[0].contexts] == [1, 2]
    assert out[0].prompt_tokens <= cfg.max_prompt_tokens
    tiny = GenerationConfig(max_new_tokens=4, max_prompt_tokens=150)  # even one chunk is too long: it is cut
    out = Rag(gen, index, RetrievalConfig(top_k=3), gen_cfg=tiny).answer(HELD_OUT[:1])
    assert len(out[0].contexts) == 1 and out[0].prompt_tokens <= 150 and out[0].contexts[0]["text"].startswith("First word")


def test_make_strategy_builds_every_method(gen):
    cfg = build_config("corpus", preset="quick")
    cfg.few_shot = FewShotConfig(k=2, selection="random")
    index = FakeIndex(["a", "b", "c"])
    names = {}
    for method in ("zero-shot", "few-shot", "rag", "lora", "rag+lora"):
        s = make_strategy(method, generator=gen, adapter_generator=gen, index=index, pool=POOL, cfg=cfg, cache=False)
        names[method] = s.name
        assert len(s.answer(HELD_OUT[:1])) == 1
    assert names == {m: m for m in names}
    with pytest.raises(StrategyError, match="adapter"):
        make_strategy("lora", generator=gen, cfg=cfg)
    with pytest.raises(StrategyError, match="index"):
        make_strategy("rag", generator=gen, cfg=cfg)


def test_make_strategy_caches_answers_across_runs(gen, monkeypatch):
    cfg = build_config("corpus", preset="quick")
    first = make_strategy("zero-shot", generator=gen, cfg=cfg).answer(HELD_OUT)
    monkeypatch.setattr(gen.model, "generate", lambda *a, **k: pytest.fail("model called on an unchanged re-run"))
    again = make_strategy("zero-shot", generator=gen, cfg=cfg).answer(HELD_OUT)
    assert [a.text for a in again] == [a.text for a in first] and all(a.meta["cached"] for a in again)


def test_base_model_prompts_use_plain_format_and_stop(gen, tiny_lm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_lm_dir))
    tok.chat_template = None
    plain = Generator(gen.model, tok)
    spy = Spy(plain)
    out = ZeroShot(spy, gen_cfg=GEN).answer(HELD_OUT[:1])
    assert spy.prompts[0].rstrip().endswith("Answer:") and "<|im_start|>" not in spy.prompts[0]
    assert "\n\n" not in out[0].text


@pytest.mark.slow
def test_real_model_rag_extracts_and_cites_but_closed_book_does_not_know():
    gen = Generator.from_name("qwen2.5-0.5b")
    question = q("h9", "What is the maximum flight time of the Vireo-7 drone?", ["47 minutes"], split="test")
    index = FakeIndex([
        "The Vireo-7 is Kestrel Labs' survey drone. Its maximum flight time is 47 minutes on a single battery.",
        "Kestrel Labs has offices in Oslo, Lisbon and Tallinn. The Oslo office employs 112 people.",
        "The Heron sensor launched in 2019 and measures soil moisture at six depths.",
    ])  # fmt: skip
    cfg = GenerationConfig(max_new_tokens=24)
    rag = Rag(gen, index, RetrievalConfig(top_k=3), gen_cfg=cfg).answer([question])[0]
    assert "47 minutes" in rag.text, rag.text
    assert rag.meta["citations"] == [1], rag.meta  # the passage holding the fact
    closed = ZeroShot(gen, gen_cfg=cfg).answer([question])[0]
    assert "47" not in closed.text, closed.text


def test_citations_parse_or_attribute():
    passages = ["Flight time is 47 minutes.", "Oslo has 112 staff.", "Also 47 minutes here."]
    assert citations("47 minutes [2]", passages) == ([2], "model")
    assert citations("47 minutes [1, 3]", passages) == ([1, 3], "model")
    assert citations("47 minutes", passages) == ([1, 3], "attributed")
    assert citations("I don't know.", passages) == ([], "none")
    assert citations("12 hours", passages) == ([], "none")
