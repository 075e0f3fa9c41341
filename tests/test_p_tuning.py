"""P-tuning (peft PromptEncoderConfig) as its own opt-in tuned method, on the tiny model: loss path, training, generation, resume, keys, a run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import TINY_OVERRIDES
from test_tuning_ladder import _corpus

from workbench.config import METHODS, SELECTABLE, TrainConfig, build_config
from workbench.methods.registry import P_TUNING, PROMPT_TUNING, ZERO_SHOT, method_spec
from workbench.tuning.lora import adapter_key, train_adapter
from workbench.tuning.lora_data import build_training_data
from workbench.tuning.specs import P_TUNING_HIDDEN, P_TUNING_LR_SCALE, TUNER_LABELS, plan_adapters, tuning_spec

CFG = TrainConfig(tuner="p-tuning", virtual_tokens=4, max_steps=8, seq_len=64, batch_size=2, checkpoint_every=2, use_qa=False, learning_rate=0.05)


def test_p_tuning_is_an_opt_in_method_with_its_own_recipe():
    assert P_TUNING not in METHODS and P_TUNING in SELECTABLE and f"{P_TUNING}@int8" in SELECTABLE
    spec = method_spec(P_TUNING)
    assert spec.needs_adapter and spec.adapter_recipe == P_TUNING and spec.base_method == ZERO_SHOT and spec.opt_in
    run = TrainConfig()
    p = tuning_spec(P_TUNING).settings(run)
    assert p.tuner == "p-tuning" and p.learning_rate == pytest.approx(run.learning_rate * P_TUNING_LR_SCALE) and p.top_layers == 0
    assert p.use_chunks == run.use_chunks and p.epochs == run.epochs and TUNER_LABELS["p-tuning"] == "P-tuning"
    assert plan_adapters([ZERO_SHOT, P_TUNING, PROMPT_TUNING], run, "facts") == (["prompt-tuning", "p-tuning"], {})


def test_p_tuning_keys_differ_from_prompt_tuning_and_read_virtual_tokens(tiny_lm_dir):
    folder = Path(tiny_lm_dir)
    p = tuning_spec(P_TUNING).settings(TrainConfig())
    keys = {adapter_key(folder, "fp", p, 0), adapter_key(folder, "fp", dataclasses.replace(p, virtual_tokens=40), 0),
            adapter_key(folder, "fp", tuning_spec(PROMPT_TUNING).settings(TrainConfig()), 0), adapter_key(folder, "fp", TrainConfig(), 0)}
    assert len(keys) == 4
    assert adapter_key(folder, "fp", TrainConfig(), 0) == adapter_key(folder, "fp", dataclasses.replace(TrainConfig(), virtual_tokens=40), 0)  # not a LoRA setting


def test_the_p_tuning_loss_is_the_peft_forward_and_the_encoder_learns(tiny_lm_dir, qwen_tokenizer, tmp_path):
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from workbench.tuning.lora import _loss
    from workbench.tuning.specs import peft_config

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_lm_dir), dtype=torch.float32), peft_config(CFG))
    ids = qwen_tokenizer(["The Harrier flight controller runs at 400 Hz."], return_tensors="pt")["input_ids"]
    labels = ids.clone()
    labels[:, :3] = -100
    assert float(_loss(model, ids, labels)) == pytest.approx(float(model(input_ids=ids, labels=labels).loss), rel=1e-4)

    data = build_training_data(_corpus(), qwen_tokenizer, CFG, seed=0)
    events: list[dict] = []
    adapter = train_adapter(str(tiny_lm_dir), data, CFG, tmp_path / "pt", seed=0, on_progress=events.append)
    losses = [e["loss"] for e in events]
    assert sum(losses[-3:]) / 3 < losses[0] - 0.01, losses  # the encoder alone lowers the loss on a tiny overfit set (its output starts near zero: slowly)
    conf = json.loads((adapter / "adapter_config.json").read_text())
    assert conf["peft_type"] == "P_TUNING" and conf["num_virtual_tokens"] == 4 and conf["encoder_hidden_size"] == P_TUNING_HIDDEN
    meta = json.loads((adapter / "workbench.json").read_text())
    assert meta["tuner"] == "p-tuning" and meta["trainable_params"] > 4 * 32  # the encoder's MLP besides the 4 token embeddings

    from workbench.backends.hf import HFGenerator
    from workbench.backends.models import load_generator

    base = HFGenerator(*load_generator(str(tiny_lm_dir)))
    tuned = base.with_adapter(adapter)
    prompts = [base.render([{"role": "user", "content": "How fast is the Harrier control loop?"}])]
    assert tuned.score_yes(prompts) != base.score_yes(prompts)  # the encoder's virtual tokens reach the model
    assert [r.text for r in tuned.generate(prompts, max_new_tokens=4)] == [r.text for r in tuned.generate(prompts, max_new_tokens=4)]
    assert tuned.fingerprint != base.fingerprint


def test_a_p_tuning_encoder_resumes_from_its_checkpoint_exactly(tiny_lm_dir, qwen_tokenizer, tmp_path):
    from safetensors.torch import load_file

    cfg = dataclasses.replace(CFG, max_steps=4)
    data = build_training_data(_corpus(), qwen_tokenizer, cfg, seed=0)
    straight = train_adapter(str(tiny_lm_dir), data, cfg, tmp_path / "straight", seed=0)

    def crash(p: dict) -> None:
        if p["step"] == 3:
            raise KeyboardInterrupt  # killed after the step-2 checkpoint
    with pytest.raises(KeyboardInterrupt):
        train_adapter(str(tiny_lm_dir), data, cfg, tmp_path / "cut", seed=0, on_progress=crash)
    resumed = train_adapter(str(tiny_lm_dir), data, cfg, tmp_path / "cut", seed=0)
    assert json.loads((resumed / "workbench.json").read_text())["resumed_from"] == [2]
    a, b = load_file(str(straight / "adapter_model.safetensors")), load_file(str(resumed / "adapter_model.safetensors"))
    assert set(a) == set(b) == {"prompt_embeddings"} and (a["prompt_embeddings"] == b["prompt_embeddings"]).all()  # peft saves the encoder's output


def test_a_run_reports_p_tuning_beside_zero_shot(tiny_corpus, tiny_lm_dir, isolated_home):
    from workbench.pipeline.run import run

    overrides = {**TINY_OVERRIDES, "train": {**TINY_OVERRIDES["train"], "curve_points": 2, "dev_fraction": 0.0}}
    config = build_config(str(tiny_corpus), "quick", {"chunk_size": 120, "chunk_overlap": 20, "top_k": 2}, overrides, model=str(tiny_lm_dir), methods=[ZERO_SHOT, P_TUNING])
    metrics = json.loads((run(config, out_dir=isolated_home / "runs", run_id="pt") / "metrics.json").read_text())
    tuned = metrics["train"]["methods"][P_TUNING]
    assert set(metrics["train"]["recipes"]) == {"p-tuning"} and tuned["tuner"] == "p-tuning" and tuned["trainable_params"] > 0
    assert metrics["methods"][P_TUNING]["artifact_mb"] > 0 and metrics["methods"][P_TUNING]["latency_probe_n"] > 0
