"""Model weights are loaded on first use: an unchanged rerun is served from its caches without reading them."""

from __future__ import annotations

import json
import shutil

import pytest
from conftest import TINY_OVERRIDES

from workbench.backends.hf import HFGenerator
from workbench.backends.models import ModelError, load_generator
from workbench.backends.quantize import generator_weight_mb, weight_mb
from workbench.backends.snapshots import AdapterSnapshots
from workbench.config import TrainConfig, build_config
from workbench.methods.registry import baseline_methods


def _prompts(gen: HFGenerator) -> list[str]:
    return [gen.render([{"role": "user", "content": q}]) for q in ("Where is the head office?", "Who founded the company?", "What does it make?")]


def test_a_generator_opened_by_name_loads_its_weights_only_when_it_must_answer(tiny_lm_dir):
    eager = HFGenerator(*load_generator(str(tiny_lm_dir)), name=str(tiny_lm_dir))
    lazy = HFGenerator.from_name(str(tiny_lm_dir))
    assert not lazy.weights_loaded
    assert (lazy.fingerprint, lazy.dtype, lazy.device, lazy.folder) == (eager.fingerprint, eager.dtype, eager.device, eager.folder)
    assert not lazy.weights_loaded  # identity is known without the weights
    prompts = _prompts(lazy)
    assert [r.text for r in lazy.generate(prompts, max_new_tokens=5)] == [r.text for r in eager.generate(prompts, max_new_tokens=5)]
    assert lazy.weights_loaded and lazy.eos_ids == eager.eos_ids


def test_cached_answers_and_judgements_do_not_load_the_weights(tiny_lm_dir, tmp_path):
    from workbench.backends.answer_cache import AnswerCache

    cache = AnswerCache(tmp_path / "answers.sqlite")
    first = HFGenerator.from_name(str(tiny_lm_dir))
    prompts = _prompts(first)
    want = [r.text for r in first.generate(prompts, max_new_tokens=5, cache=cache)]
    first.judge_cache = cache
    scores = first.score_yes(prompts)
    again = HFGenerator.from_name(str(tiny_lm_dir))
    again.judge_cache = cache
    assert [r.text for r in again.generate(prompts, max_new_tokens=5, cache=cache)] == want
    assert again.score_yes(prompts) == scores
    adapterless_mb = generator_weight_mb(first)
    assert generator_weight_mb(again) == adapterless_mb == round(weight_mb(first.model), 3)
    assert not again.weights_loaded  # answers, judgements and the weight size all came from caches


def test_a_broken_weights_file_fails_when_the_model_is_opened_not_at_first_use(tiny_lm_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_lm_dir, broken)
    weights = next(broken.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ModelError, match="broken: cannot be loaded as a causal LM"):
        HFGenerator.from_name(str(broken))


def _adapter(tiny_lm_dir, qwen_tokenizer, tmp_path):
    from workbench.tuning.lora import train_adapter
    from workbench.tuning.lora_data import build_training_data
    from workbench.types import Corpus, Document, Question

    cfg = TrainConfig(rank=4, alpha=8, max_steps=2, seq_len=64, batch_size=2, use_qa=False, learning_rate=5e-2)
    corpus = Corpus(tmp_path, [Document("a.md", "The Harrier controller runs at 400 Hz. " * 20)], [Question("q", "Q?", ["a"], split="test")])
    return train_adapter(str(tiny_lm_dir), build_training_data(corpus, qwen_tokenizer, cfg, seed=0), cfg, tmp_path / "out", seed=0)


def test_snapshot_generators_share_one_model_and_each_answers_with_its_own_weights(tiny_lm_dir, qwen_tokenizer, tmp_path):
    import torch
    from safetensors.torch import load_file, save_file

    final = _adapter(tiny_lm_dir, qwen_tokenizer, tmp_path)
    other = tmp_path / "other"
    shutil.copytree(final, other)
    state = load_file(str(other / "adapter_model.safetensors"))
    save_file({k: (v * 40 if "lora_B" in k else v) for k, v in state.items()}, str(other / "adapter_model.safetensors"))
    base = HFGenerator.from_name(str(tiny_lm_dir))
    prompts = _prompts(base)
    want = {f: base.with_adapter(f).score_yes(prompts) for f in (final, other)}  # each adapter loaded on its own
    assert want[final] != want[other]
    snaps = AdapterSnapshots(base, final)
    a, b = snaps.generator(final), snaps.generator(other)
    assert a.fingerprint != b.fingerprint and snaps._model is None  # nothing loaded for the identities
    got = [(f, g.score_yes(prompts)) for f, g in ((other, b), (final, a), (other, b), (final, a))]  # any order
    for folder, scores in got:
        assert scores == pytest.approx(want[folder], abs=1e-6)
    assert a.model is b.model and isinstance(a.model, torch.nn.Module)  # one adapter model between them


def test_an_unchanged_rerun_of_every_method_never_loads_the_weights(tiny_corpus, tiny_lm_dir, isolated_home, monkeypatch):
    from workbench.backends import lazy, models
    from workbench.pipeline.run import run

    overrides = {**TINY_OVERRIDES, "train": {**TINY_OVERRIDES["train"], "curve_points": 2}}
    config = build_config(str(tiny_corpus), "quick", {"chunk_size": 120, "chunk_overlap": 20, "top_k": 2}, overrides, model=str(tiny_lm_dir))
    first = run(config, out_dir=isolated_home / "runs", run_id="cold")

    def refuse(*args, **kwargs):
        raise AssertionError("an unchanged rerun loaded model weights")

    monkeypatch.setattr(lazy, "_outside_inference_mode", refuse)  # every first use of lazily opened weights
    monkeypatch.setattr(models, "load_causal_lm", refuse)  # and every model loaded for training
    second = run(config, out_dir=isolated_home / "runs", run_id="warm")

    def rows(run_dir):
        return {(r["method"], r["question_id"]): r for r in map(json.loads, (run_dir / "predictions.jsonl").read_text().splitlines())}

    cold, warm = rows(first), rows(second)
    assert cold.keys() == warm.keys() and {m for m, _ in cold} >= set(config.methods)
    assert all(r["cached"] for r in warm.values() if r["method"] not in baseline_methods())
    assert {k: (r["answer"], r["correct"]) for k, r in cold.items()} == {k: (r["answer"], r["correct"]) for k, r in warm.items()}
    m1, m2 = (json.loads((d / "metrics.json").read_text()) for d in (first, second))
    assert {m: v.get("model_mb") for m, v in m1["methods"].items()} == {m: v.get("model_mb") for m, v in m2["methods"].items()}
    assert all(m2["methods"][m]["model_mb"] > 0 for m in config.methods)
    assert m1["learning_curve"] == m2["learning_curve"]
    r1, r2 = (json.loads((d / "meta.json").read_text())["reproducibility"] for d in (first, second))
    assert (r1["dtype"], r1["device"]) == (r2["dtype"], r2["device"])
