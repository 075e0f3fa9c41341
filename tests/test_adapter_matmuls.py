"""Loading an adapter keeps the base weights' requires_grad, so torch folds the output projection into one mm.

With frozen weights, a strided 3-D input (the last position ``logits_to_keep`` keeps) goes through ``bmm`` on an
expanded copy of the output projection: measured 0.55 s a prompt row for Qwen2.5-0.5B on 2 cores (README, issue 18).
"""

from __future__ import annotations

import json

import torch
from peft import LoraConfig, get_peft_model
from torch.profiler import profile

from workbench.backends.adapters import load_adapter_model
from workbench.backends.models import load_generator


def _adapter(tiny_lm_dir, tmp_path):
    model, _ = load_generator(str(tiny_lm_dir))
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    peft_model.save_pretrained(tmp_path)
    (tmp_path / "workbench.json").write_text(json.dumps({}))
    return tmp_path


def _bmm_shapes(model, vocab: int) -> list:
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    with torch.inference_mode(), profile(record_shapes=True) as prof:
        model(input_ids=ids, logits_to_keep=1)
    return [e.input_shapes for e in prof.key_averages(group_by_input_shape=True) if e.key == "aten::bmm" and any(vocab in s for s in e.input_shapes if s)]


def test_loading_an_adapter_leaves_base_weights_as_they_were(tiny_lm_dir, tmp_path):
    base, _ = load_generator(str(tiny_lm_dir))
    before = {n: p.requires_grad for n, p in base.named_parameters()}
    assert all(before.values())  # from_pretrained's default
    model = load_adapter_model(base, _adapter(tiny_lm_dir, tmp_path))
    assert {n: p.requires_grad for n, p in base.named_parameters()} == before
    assert model.get_base_model().lm_head.weight.requires_grad


def test_output_projection_runs_without_a_weight_copy(tiny_lm_dir, tmp_path):
    base, _ = load_generator(str(tiny_lm_dir))
    vocab = base.config.vocab_size
    model = load_adapter_model(base, _adapter(tiny_lm_dir, tmp_path))
    assert _bmm_shapes(model, vocab) == [] and _bmm_shapes(base, vocab) == []
    base.lm_head.weight.requires_grad_(False)  # what peft left before: the expanded-copy path, which the check sees
    assert _bmm_shapes(base, vocab) != []
