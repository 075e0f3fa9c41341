"""Number format, device and batch size selection: the measured dtype probe, its cache, overrides, the CUDA path."""

from __future__ import annotations

import json

import pytest
import torch

from workbench.backends import hardware
from workbench.backends.hardware import torch_device
from workbench.backends.models import load_generator
from workbench.errors import WorkbenchError

FAST_BF16 = {"bf16": {"prefill_s": 0.01, "decode_s": 0.002}, "fp32": {"prefill_s": 0.03, "decode_s": 0.003}}  # an AMX-like CPU
FAST_FP32 = {"bf16": {"prefill_s": 0.05, "decode_s": 0.004}, "fp32": {"prefill_s": 0.03, "decode_s": 0.003}}  # no AMX


@pytest.fixture
def probing(monkeypatch):
    """No forced dtype, an empty in-process memo, and a fake probe that counts its calls."""
    monkeypatch.delenv(hardware.DTYPE_ENV, raising=False)
    monkeypatch.setattr(hardware, "_MEMO", {})
    calls: list[int] = []

    def fake(timings):
        def probe():
            calls.append(1)
            return timings

        monkeypatch.setattr(hardware, "probe", probe)
        return calls

    return fake


def test_pick_follows_the_faster_format():
    for workload in ("generate", "train", "embed"):
        assert hardware.pick(FAST_BF16, workload) == "bf16"
        assert hardware.pick(FAST_FP32, workload) == "fp32"


def test_pick_keeps_bf16_on_a_near_tie_and_weighs_decode_for_generation():
    tie = {"bf16": {"prefill_s": 0.0105, "decode_s": 0.001}, "fp32": {"prefill_s": 0.0100, "decode_s": 0.001}}
    assert hardware.pick(tie, "train") == "bf16"  # half the memory for <10% speed
    slow_decode = {"bf16": {"prefill_s": 0.010, "decode_s": 0.020}, "fp32": {"prefill_s": 0.012, "decode_s": 0.004}}
    assert hardware.pick(slow_decode, "train") == "bf16"
    assert hardware.pick(slow_decode, "generate") == "fp32"  # decode steps dominate what generation costs here


def test_probe_runs_once_per_machine_then_is_read_from_the_cache(probing, isolated_home, monkeypatch):
    calls = probing(FAST_FP32)
    first = hardware.dtype_choice("cpu")
    assert first["source"] == "probe" and first["generate"] == first["train"] == "fp32" and calls == [1]
    saved = list((isolated_home / "cache" / "probes").glob("dtype-*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["timings"] == FAST_FP32
    assert hardware.chosen_dtype("train", "cpu") == torch.float32 and calls == [1]  # memo in this process
    monkeypatch.setattr(hardware, "_MEMO", {})  # a new process on the same machine
    again = hardware.dtype_choice("cpu")
    assert again["source"] == "probe-cache" and again["generate"] == "fp32" and calls == [1]


def test_another_machine_key_probes_again(probing, monkeypatch):
    calls = probing(FAST_BF16)
    hardware.dtype_choice("cpu")
    monkeypatch.setattr(hardware, "_cpu_model_and_flags", lambda: ("Other CPU", ["avx2"]))
    assert hardware.dtype_choice("cpu")["source"] == "probe" and calls == [1, 1]


def test_env_forces_a_format_and_rejects_a_typo(probing, monkeypatch):
    calls = probing(FAST_BF16)
    monkeypatch.setenv(hardware.DTYPE_ENV, "fp32")
    choice = hardware.dtype_choice("cpu")
    assert choice["generate"] == "fp32" and choice["source"].startswith("env") and calls == []
    monkeypatch.setenv(hardware.DTYPE_ENV, "float8")
    with pytest.raises(WorkbenchError, match="WORKBENCH_DTYPE"):
        hardware.dtype_choice("cpu")


def test_real_probe_measures_both_formats():
    timings = hardware.probe(budget_s=0.005)
    for name in ("bf16", "fp32"):
        assert timings[name]["prefill_s"] > 0 and timings[name]["decode_s"] > 0
    assert hardware.pick(timings, "generate") in ("bf16", "fp32")


def test_cuda_is_chosen_when_present_with_bf16_or_fp16(probing, monkeypatch):
    calls = probing(FAST_FP32)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert torch_device() == "cuda"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    choice = hardware.dtype_choice()
    assert choice["device"] == "cuda" and choice["generate"] == choice["train"] == "bf16" and choice["source"] == "cuda"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert hardware.chosen_dtype("generate") == torch.float16
    assert calls == []  # no CPU probe on a GPU


def test_batch_size_fills_the_gpu_but_not_the_cpu():
    # Qwen2.5-0.5B: 24 layers, 2 KV heads x 64 dims x (K and V) = 256; 600 tokens a row in bf16 -> 7.4 MB a row
    assert hardware.fit_batch_size(16, "cpu", 24, 256, 600, free_bytes=10**12) == 16
    rows = hardware.fit_batch_size(16, "cuda", 24, 256, 600, free_bytes=2 * 10**9)
    assert rows == int(0.5 * 2 * 10**9 // (24 * 256 * 600 * 2)) and rows > 16
    assert hardware.fit_batch_size(16, "cuda", 24, 256, 600, free_bytes=140 * 10**9) == 256  # capped
    assert hardware.fit_batch_size(16, "cuda", 24, 256, 600, free_bytes=10**6) == 16  # never below what was asked


def test_generator_and_meta_follow_the_chosen_format(tiny_lm_dir, monkeypatch):
    from workbench.pipeline.runstore import machine

    monkeypatch.setenv(hardware.DTYPE_ENV, "fp32")
    model, _tok = load_generator(str(tiny_lm_dir))
    assert model.dtype == torch.float32
    assert machine()["dtype"]["generate"] == "fp32"
    model, _tok = load_generator(str(tiny_lm_dir), dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16


def test_generator_asks_for_a_gpu_sized_batch_only_on_cuda(tiny_lm_dir, monkeypatch):
    from workbench.backends.hf import HFGenerator as Generator

    gen = Generator.from_name(str(tiny_lm_dir))
    seen: list[tuple] = []
    monkeypatch.setattr(hardware, "fit_batch_size", lambda requested, device, *a, **k: seen.append((requested, device, *a)) or 64)
    assert gen._gpu_batch_size(4, 30) == 64  # noqa: SLF001
    cfg = gen.model.config
    assert seen == [(4, "cuda", cfg.num_hidden_layers, 2 * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads), 30)]
    seen.clear()
    gen.generate(["Question: a?\nAnswer:"], 2, batch_size=4)  # on the CPU the batch size is left as asked
    assert seen == []
