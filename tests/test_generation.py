"""Batched generation on the tiny random model: batching = one at a time, order, stops, EOS, counts, seeds, cache."""

from __future__ import annotations

import sqlite3

import pytest
import torch
from conftest import varied_generator

from workbench.backends.answer_cache import AnswerCache
from workbench.backends.base import GenerationError, GenResult, cut_at_stop
from workbench.backends.hf import HFGenerator as Generator
from workbench.methods.prompts import render, zero_shot_messages

QUESTIONS = [
    "What is the warranty period?",
    "Who founded Kestrel Labs, and in which year did the company open its second office in Lisbon?",
    "Name the CEO.",
    "How many days of parental leave does the handbook give to a new parent who joined less than a year ago?",
    "Where is the head office of the company located?",
]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a busy 2-core machine OpenMP spin-waits make them 10x slower."""
    before = torch.get_num_threads()
    yield torch.set_num_threads(1)
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gen(tmp_path_factory, qwen_tokenizer) -> Generator:
    """A tiny random Qwen2 whose greedy output varies from token to token (the shared tiny model repeats "\\n").

    fp32 so that "batched equals one at a time" tests the batching logic, not bf16 rounding under padding.
    """
    return varied_generator(tmp_path_factory, qwen_tokenizer, seed=0)


@pytest.fixture(scope="module")
def prompts(gen) -> list[str]:
    return [render(gen.tok, zero_shot_messages(q)) for q in QUESTIONS]


def _single(gen: Generator, prompt: str, max_new_tokens: int) -> list[int]:
    """Reference: plain model.generate on one unpadded prompt."""
    ids = torch.tensor([gen.encode([prompt])[0]])
    with torch.inference_mode():
        out = gen.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False)
    return out[0, ids.shape[1] :].tolist()


def test_batched_equals_one_at_a_time_and_order_is_restored(gen, prompts):
    lengths = [len(x) for x in gen.encode(prompts)]
    assert len(set(lengths)) == len(prompts)  # distinct lengths: bucketing really reorders
    batched = gen.generate(prompts, max_new_tokens=8, batch_size=2)
    for prompt, res in zip(prompts, batched, strict=True):
        ref = _single(gen, prompt, 8)
        assert res.text == gen.tok.decode(ref, skip_special_tokens=True).strip()
        assert res.prompt_tokens == len(gen.encode([prompt])[0])
    singles = [gen.generate([p], max_new_tokens=8, batch_size=1)[0].text for p in prompts]
    assert [r.text for r in batched] == singles


def test_results_carry_counts_and_timings(gen, prompts):
    res = gen.generate(prompts, max_new_tokens=6, batch_size=4)
    assert all(isinstance(r, GenResult) and not r.cached for r in res)
    assert all(1 <= r.output_tokens <= 6 for r in res)
    assert all(
        r.batch_wall_s > 0 and r.latency_s == pytest.approx(r.batch_wall_s / (4 if i < 4 else 1))
        for i, r in enumerate(sorted(res, key=lambda r: -r.prompt_tokens))
    )


def test_greedy_and_seeded_sampling_are_deterministic(gen, prompts):
    a = gen.generate(prompts, max_new_tokens=8, batch_size=3)
    b = gen.generate(prompts, max_new_tokens=8, batch_size=3)
    assert [r.text for r in a] == [r.text for r in b]
    s1 = gen.generate(prompts, max_new_tokens=8, temperature=1.0, seed=7, batch_size=3)
    s2 = gen.generate(prompts, max_new_tokens=8, temperature=1.0, seed=7, batch_size=3)
    s3 = gen.generate(prompts, max_new_tokens=8, temperature=1.0, seed=8, batch_size=3)
    assert [r.text for r in s1] == [r.text for r in s2]
    assert [r.text for r in s1] != [r.text for r in s3]
    assert [r.text for r in s1] != [r.text for r in a]


def test_stop_string_cuts_output_and_counts_tokens(gen, prompts):
    ids = _single(gen, prompts[0], 10)
    pieces = [gen.tok.decode([t]) for t in ids]
    k = next(i for i in range(2, 10) if pieces[i].strip() and pieces[i] not in "".join(pieces[:i]))
    stop = pieces[k]
    res = gen.generate(prompts, max_new_tokens=10, stop=[stop], batch_size=8)
    assert res[0].text == "".join(pieces[:k]).strip()
    assert stop not in res[0].text
    assert res[0].output_tokens == k + 1  # up to the token that completed the stop string
    others = gen.generate(prompts[1:], max_new_tokens=10, batch_size=8)
    for r, o in zip(res[1:], others, strict=True):  # rows without the stop string are unaffected
        assert r.text == cut_at_stop(o.text, [stop])[0].strip()


def test_eos_ends_a_row_and_is_not_counted(tiny_lm_dir, gen, prompts):
    ids = _single(gen, prompts[0], 10)
    k = next(i for i in range(2, 10) if ids[i] not in ids[:i])
    g = Generator(gen.model, gen.tok)
    g.eos_ids = {ids[k]}  # pretend that token is EOS: generation must end there for this row
    res = g.generate(prompts, max_new_tokens=10, batch_size=8)
    assert res[0].output_tokens == k
    assert res[0].text == gen.tok.decode(ids[:k], skip_special_tokens=True).strip()


def test_cache_serves_identical_results_without_the_model(gen, prompts, monkeypatch):
    cache = AnswerCache()
    first = gen.generate(prompts, max_new_tokens=6, batch_size=2, cache=cache)
    assert len(cache) == len(prompts)

    def boom(*a, **k):
        raise AssertionError("model called on a cache hit")

    monkeypatch.setattr(gen.model, "generate", boom)
    again = gen.generate(prompts, max_new_tokens=6, batch_size=2, cache=cache)
    assert all(r.cached for r in again)
    assert [(r.text, r.prompt_tokens, r.output_tokens, r.latency_s, r.batch_wall_s) for r in again] == [
        (r.text, r.prompt_tokens, r.output_tokens, r.latency_s, r.batch_wall_s) for r in first
    ]
    with pytest.raises(AssertionError, match="cache hit"):  # other settings are a different key
        gen.generate(prompts[:1], max_new_tokens=7, cache=cache)


def test_cache_is_shared_between_connections_in_wal_mode(gen, prompts):
    a, b = AnswerCache(), AnswerCache()
    gen.generate(prompts[:2], max_new_tokens=4, cache=a)
    assert len(b) == 2
    mode = sqlite3.connect(str(a.path)).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_fingerprint_is_stable_and_tracks_weights(tiny_lm_dir):
    import copy

    from peft import LoraConfig, get_peft_model

    base = Generator.from_name(str(tiny_lm_dir))
    assert base.fingerprint == Generator.from_name(str(tiny_lm_dir)).fingerprint
    lora = get_peft_model(copy.deepcopy(base.model), LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False))
    fp = Generator(lora, base.tok).fingerprint
    assert fp != base.fingerprint
    with torch.no_grad():
        next(p for n, p in lora.named_parameters() if "lora_B" in n).add_(1.0)
    assert Generator(lora, base.tok).fingerprint != fp  # other adapter weights, other answers


def test_score_yes_is_a_probability_independent_of_batching(gen, prompts):
    scores = gen.score_yes(prompts, batch_size=2)
    assert len(scores) == len(prompts) and all(0.0 <= s <= 1.0 for s in scores)
    assert scores == pytest.approx(gen.score_yes(prompts, batch_size=5), abs=1e-4)
    assert len(set(round(s, 6) for s in scores)) > 1  # really depends on the prompt


def test_bad_inputs_raise_clear_errors(gen):
    with pytest.raises(GenerationError, match="empty"):
        gen.generate([""], max_new_tokens=4)
    with pytest.raises(GenerationError, match="window"):
        gen.generate(["word " * 3000], max_new_tokens=4)
