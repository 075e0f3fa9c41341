"""FLOP and byte counts behind the roofline figures, checked against hand counts and a real tiny model."""

from __future__ import annotations

import pytest
import torch

from workbench.bench.roofline import (
    Dims,
    causal_ctx,
    copy_bandwidth,
    decode_roofline,
    forward_flops,
    lora_params_per_layer,
    matmul_peak,
    prefill_roofline,
    train_flops,
)

QWEN_05B = Dims(layers=24, hidden=896, intermediate=4864, heads=14, kv_heads=2, head_dim=64, vocab=151936)


def test_qwen_projection_shapes_and_weight_bytes():
    p = QWEN_05B.projections()
    assert p["q_proj"] == (896, 896) and p["k_proj"] == (896, 128) and p["down_proj"] == (4864, 896)
    assert QWEN_05B.layer_params == 2 * 896 * 896 + 2 * 896 * 128 + 3 * 896 * 4864
    # 24 layers of projections plus the output projection, bf16: the ~0.99 GB a decode step reads
    assert QWEN_05B.weight_bytes(2) == (24 * QWEN_05B.layer_params + 896 * 151936) * 2


def test_forward_is_two_flops_per_weight_per_token_plus_attention():
    d = QWEN_05B
    assert causal_ctx(1) == 1 and causal_ctx(4) == 10
    one_token = forward_flops(d, 1, 1, 0)
    assert one_token == 2 * d.layer_params * d.layers + 4 * d.attn * d.layers
    assert forward_flops(d, 10, causal_ctx(10), 1) - forward_flops(d, 10, causal_ctx(10), 0) == 2 * 896 * 151936


def test_training_counts_backprop_only_through_the_adapted_layers():
    d = QWEN_05B
    lora = lora_params_per_layer(d, 16, ["q_proj", "v_proj"])
    assert lora == 16 * (896 + 896) + 16 * (896 + 128)
    full = train_flops(d, 256, causal_ctx(256), 0, 0, lora)
    top = train_flops(d, 256, causal_ctx(256), 0, 12, lora)
    fwd = forward_flops(d, 256, causal_ctx(256), 0)
    assert fwd < top < full
    # a frozen base: about 2x the forward with every layer back-propagating (no weight gradients), not 3x
    assert 1.9 < full / fwd < 2.1
    assert full - top == pytest.approx(12 * (2.0 * d.layer_params * 256 + 8.0 * d.attn * causal_ctx(256) + 6.0 * lora * 256))


def test_limits_and_fractions_on_a_tiny_model(tiny_lm_dir):
    from workbench.backends.hf import HFGenerator as Generator

    gen = Generator.from_name(str(tiny_lm_dir))
    d = Dims.from_config(gen.model.config)
    peak = matmul_peak(d, gen.model.dtype, rows=(64, 128), budget_s=0.02)
    assert peak["peak_flops"] > 0 and set(peak["by_rows_flops"]) == {"64", "128"} and peak["dtype"] == "bfloat16"
    assert copy_bandwidth(mb=8)["bytes_per_s"] > 0
    prompts = ["Question: where is the lab?\nAnswer:", "Question: who runs it, and since when?\nAnswer:"]
    pre = prefill_roofline(gen, prompts, 2, peak["peak_flops"], repeats=1)
    assert pre["batch"]["rows"] == 2 and pre["batch"]["real_tokens"] <= pre["batch"]["padded_tokens"]
    assert pre["batch"]["roofline_fraction"] > 0 and pre["single"]["real_tokens"] == len(gen.encode(prompts[:1])[0])
    dec = decode_roofline(gen, prompts[0], 3, (1, 2), 1e10)
    assert dec["batch_2"]["tokens_per_s"] > 0 and dec["batch_1"]["bandwidth_fraction"] > 0
    assert dec["weight_bytes"] == d.weight_bytes(torch.bfloat16.itemsize)
