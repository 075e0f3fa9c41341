"""The shared prompt prefix is prefilled once per call and reused: answers are those of prefilling every prompt whole."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import varied_generator

from workbench.backends.hf import HFGenerator
from workbench.backends.prefix_cache import MIN_PREFIX_TOKENS, PrefixCache, common_prefix_length, prefix_batch, reusable
from workbench.methods.prompts import render, zero_shot_messages

QUESTIONS = ["What is the capital?", "Who wrote the onboarding handbook for new staff?", "When did the Kestrel office open its doors?", "Why?"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    yield torch.set_num_threads(1)
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gen(tmp_path_factory, qwen_tokenizer) -> HFGenerator:
    """A tiny random fp32 Qwen2 whose greedy output varies from token to token."""
    return varied_generator(tmp_path_factory, qwen_tokenizer, seed=1)


def test_common_prefix_leaves_every_prompt_a_token_of_its_own():
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 9]]) == 2
    assert common_prefix_length([[1, 2, 3], [1, 2, 3]]) == 2  # identical prompts: the last token is prefilled
    assert common_prefix_length([[1, 2], [3, 4]]) == 0
    assert common_prefix_length([[7]]) == 0
    assert common_prefix_length([]) == 0


def test_rows_are_prefix_then_padding_then_suffix():
    ids, mask = prefix_batch([5, 6], [[1, 2, 3], [4]], pad_id=0)
    assert ids == [[5, 6, 1, 2, 3], [5, 6, 0, 0, 4]]
    assert mask == [[1, 1, 1, 1, 1], [1, 1, 0, 0, 1]]


def test_answers_equal_whole_prompt_prefill_greedy_and_sampled(gen):
    prompts = [render(gen.tok, zero_shot_messages(q)) for q in QUESTIONS]
    shared = common_prefix_length(gen.encode(prompts))
    assert shared >= MIN_PREFIX_TOKENS  # the chat template's system turn and the instruction
    for temperature in (0.0, 0.9):
        gen.reuse_prefix = False
        before = gen.prefix_tokens_reused
        whole = gen.generate(prompts, max_new_tokens=10, batch_size=3, temperature=temperature, seed=4)
        assert gen.prefix_tokens_reused == before
        gen.reuse_prefix = True
        reused = gen.generate(prompts, max_new_tokens=10, batch_size=3, temperature=temperature, seed=4)
        assert gen.prefix_tokens_reused == before + shared * (len(prompts) - 1)
        assert [r.text for r in reused] == [r.text for r in whole]
        assert [(r.prompt_tokens, r.output_tokens) for r in reused] == [(r.prompt_tokens, r.output_tokens) for r in whole]
        assert len({r.text for r in reused}) > 1  # the tiny model really answers differently per prompt


def test_a_copied_cache_leaves_the_prefix_untouched(gen):
    ids = gen.encode([render(gen.tok, zero_shot_messages(QUESTIONS[0]))])[0]
    prefix = PrefixCache.build(gen.model, ids[:20])
    first = prefix.for_rows(3)
    assert first.get_seq_length() == 20
    with torch.inference_mode():
        gen.model(input_ids=torch.tensor([ids[20:]] * 3), past_key_values=first, use_cache=True)
    assert first.get_seq_length() == len(ids)
    assert prefix.cache.get_seq_length() == 20 and prefix.for_rows(2).get_seq_length() == 20


def test_short_or_unshared_prefixes_and_other_architectures_prefill_whole(gen, monkeypatch):
    before = gen.prefix_tokens_reused
    gen.generate(["a b c", "x y z"], max_new_tokens=2, batch_size=2)
    gen.generate([render(gen.tok, zero_shot_messages(QUESTIONS[0]))], max_new_tokens=2)  # one prompt: nothing to share
    assert gen.prefix_tokens_reused == before
    assert reusable(gen.model)
    monkeypatch.setattr(gen.model.config, "model_type", "gemma3_text")  # sliding-window layers: not one plain cache
    assert not reusable(gen.model)


def test_soft_prompt_adapters_prefill_whole(gen):
    from peft import PromptTuningConfig, get_peft_model

    peft_model = get_peft_model(copy.deepcopy(gen.model), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4))
    assert not reusable(peft_model)
