"""LoRA training: loss falls, SIGKILL-safe checkpoints and resume, adapter cache, leakage refusal, safe loading."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workbench.backends.adapters import LoraError, load_adapter_model
from workbench.config import TrainConfig
from workbench.storage import LockedError, read_jsonl
from workbench.tuning.checkpoints import latest_checkpoint
from workbench.tuning.leakage import LeakageError
from workbench.tuning.lora import get_or_train_adapter, train_adapter, train_info
from workbench.tuning.lora_data import build_training_data
from workbench.types import Corpus, Document, Question

HELPER = Path(__file__).with_name("lora_train_helper.py")
REPEATED = "The Harrier flight controller runs its control loop at 400 Hz. " * 30


def tiny_corpus(extra_test: list[Question] | None = None) -> Corpus:
    qs = [
        Question("t1", "How fast is the Harrier control loop?", ["400 Hz"], split="train"),
        Question("t2", "What is the pet name of the CEO's cat?", [], answerable=False, split="train"),
        Question("h1", "Which company makes the Harrier?", ["Kestrel Labs"], split="test"),
        *(extra_test or []),
    ]
    return Corpus(Path("/tmp/tiny"), [Document("harrier.md", REPEATED)], qs)


def _generate(model, tok, text: str = "The Harrier") -> str:
    import torch

    ids = tok(text, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=4, do_sample=False)
    return tok.decode(out[0, ids["input_ids"].shape[1] :])


def test_training_makes_loss_fall_and_records_everything(tiny_lm_dir, qwen_tokenizer, tmp_path):
    cfg = TrainConfig(rank=8, alpha=16, max_steps=6, seq_len=64, batch_size=2, checkpoint_every=3, use_qa=False, learning_rate=0.3, dropout=0.0)
    data = build_training_data(tiny_corpus(), qwen_tokenizer, cfg, seed=0)
    events: list[dict] = []
    adapter = train_adapter(str(tiny_lm_dir), data, cfg, tmp_path / "run", seed=0, on_progress=events.append)
    assert [e["step"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert set(events[0]) == {"step", "total_steps", "loss", "tokens_per_s", "eta_s", "elapsed_s"}
    assert events[-1]["total_steps"] == 6 and events[-1]["eta_s"] == 0 and events[-1]["tokens_per_s"] > 0
    losses = [e["loss"] for e in events]
    # the random tiny model's tied embeddings (std 0.02) cap its logits near 0.6, so only ~0.2 nats can go
    assert sum(losses[-3:]) / 3 < losses[0] - 0.08, losses
    log_rows = read_jsonl(tmp_path / "run" / "train_log.jsonl")
    assert [r["step"] for r in log_rows] == [1, 2, 3, 4, 5, 6] and all("lr" in r and "grad_norm" in r for r in log_rows)
    names = {p.name for p in adapter.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "workbench.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pkl"))]
    meta = json.loads((adapter / "workbench.json").read_text())
    assert meta["data_fingerprint"] == data.fingerprint and meta["seed"] == 0 and meta["train_cfg"]["rank"] == 8
    assert meta["base_fingerprint"] and meta["loss"]["first"] == losses[0] and meta["loss"]["last"] == losses[-1]
    assert meta["steps"] == 6 and meta["tokens_trained"] == 6 * 2 * 64
    assert not (tmp_path / "run" / "checkpoints").exists()  # a finished adapter needs no checkpoints
    info = train_info(adapter)
    assert info["steps"] == 6 and info["final_loss"] == losses[-1] and info["train_seconds"] > 0 and info["artifact_mb"] > 0
    stats = data.stats  # chunks only: every packed token but the filler carries a label
    assert info["labelled_token_share"] == round(stats["n_trained_tokens"] / stats["n_tokens"], 4)
    assert info["filler_token_share"] == round(stats["filler_tokens"] / stats["n_tokens"], 4)
    assert 0 < info["labelled_token_share"] <= 1 and info["labelled_token_share"] + info["filler_token_share"] <= 1.0001
    assert meta["dtype"] == "bfloat16"


def test_top_layers_adapts_only_the_top_of_the_model(tiny_lm_dir, qwen_tokenizer, tmp_path):
    from safetensors import safe_open

    cfg = TrainConfig(rank=4, alpha=8, max_steps=2, seq_len=64, batch_size=2, checkpoint_every=0, use_qa=False, top_layers=1)
    data = build_training_data(tiny_corpus(), qwen_tokenizer, cfg, seed=0)
    adapter = train_adapter(str(tiny_lm_dir), data, cfg, tmp_path / "run", seed=0)
    with safe_open(str(adapter / "adapter_model.safetensors"), "pt") as f:
        layers = {int(m.group(1)) for k in f.keys() if (m := re.search(r"layers\.(\d+)\.", k))}
    assert layers == {1}  # the tiny model has layers 0 and 1
    assert json.loads((adapter / "adapter_config.json").read_text())["layers_to_transform"] == [1]


def test_sigkill_mid_training_then_resume(tiny_lm_dir, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(HELPER), str(tiny_lm_dir), str(out), "0.5"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.time() + 240
        while not list((out / "checkpoints").glob("step-*/COMPLETE")):
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.time() < deadline, "no checkpoint within 240 s"
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "adapter").exists()
    step, _ = latest_checkpoint(out)
    assert step > 0
    incomplete = out / "checkpoints" / "step-7"  # a checkpoint cut off before its COMPLETE marker
    incomplete.mkdir()
    (incomplete / "adapter_model.safetensors").write_bytes(b"garbage")
    assert latest_checkpoint(out)[0] == step

    rerun = subprocess.run([sys.executable, str(HELPER), str(tiny_lm_dir), str(out), "0"], capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    m = re.search(r"resuming from step (\d+)", rerun.stderr)
    assert m and int(m.group(1)) == step, rerun.stderr[-2000:]
    assert f"step {step + 1}/8" in rerun.stdout and "step 1/8" not in rerun.stdout
    rows = [r for r in read_jsonl(out / "train_log.jsonl") if "loss" in r]
    assert [r["step"] for r in rows] == list(range(1, 9))  # steps past the checkpoint were dropped and redone
    meta = json.loads((out / "adapter" / "workbench.json").read_text())
    assert meta["resumed_from"] == [step] and meta["steps"] == 8

    from workbench.backends.models import load_generator

    base, tok = load_generator(str(tiny_lm_dir))
    model = load_adapter_model(base, out / "adapter")
    assert isinstance(_generate(model, tok), str)
    assert not any("lora_" in name for name, _ in base.named_modules())  # the caller's base model is untouched


def test_cache_hit_reuses_adapter_without_training(tiny_lm_dir):
    cfg = TrainConfig(rank=4, alpha=8, max_steps=2, seq_len=128, batch_size=2, checkpoint_every=1)
    corpus = tiny_corpus()
    events: list[dict] = []
    adapter, info = get_or_train_adapter(str(tiny_lm_dir), corpus, None, cfg, seed=0, on_progress=events.append)
    assert info["cache_hit"] is False and len(events) == 2 and info["steps"] == 2
    assert info["leakage"]["ok"] is True and info["leakage"]["n_held_out"] == 1
    assert info["data"]["examples"]["qa"] == 2 and info["data"]["examples"]["chunks"] >= 1
    again: list[dict] = []
    adapter2, info2 = get_or_train_adapter(str(tiny_lm_dir), corpus, None, cfg, seed=0, on_progress=again.append)
    assert adapter2 == adapter and info2["cache_hit"] is True and again == []
    assert info2["train_seconds"] == info["train_seconds"]  # the stored figure of the one training, not a new one
    # checkpoint frequency does not change the adapter
    assert get_or_train_adapter(str(tiny_lm_dir), corpus, None, TrainConfig(**{**cfg.__dict__, "checkpoint_every": 5}), seed=0)[1]["cache_hit"]
    # a new held-out question that duplicates a train question is caught even on a cache hit
    dup = Question("h-new", "How fast is the Harrier control loop?", ["400 Hz"], split="test")
    with pytest.raises(LeakageError, match="h-new"):
        get_or_train_adapter(str(tiny_lm_dir), tiny_corpus([dup]), None, cfg, seed=0)


def test_second_process_on_same_adapter_fails_fast(tiny_lm_dir, qwen_tokenizer):
    from pathlib import Path as P

    from workbench.paths import cache_dir
    from workbench.storage import FolderLock
    from workbench.tuning.lora import adapter_key
    from workbench.tuning.lora_data import data_fingerprint

    cfg = TrainConfig(rank=4, alpha=8, max_steps=1, seq_len=128, batch_size=2)
    corpus = tiny_corpus()
    key = adapter_key(P(tiny_lm_dir), data_fingerprint(corpus, qwen_tokenizer, cfg, None, 3), cfg, 3)
    with FolderLock(cache_dir("adapters") / key):
        with pytest.raises(LockedError, match=f"adapter {key} is being trained by another process"):  # not waited for: held here
            get_or_train_adapter(str(tiny_lm_dir), corpus, None, cfg, seed=3)


def test_leaked_held_out_question_refuses_training(tiny_lm_dir):
    dup = Question("h-dup", "How fast is the Harrier control loop?", ["400 Hz"], split="test")
    cfg = TrainConfig(rank=4, alpha=8, max_steps=1, seq_len=128, batch_size=2)
    events: list[dict] = []
    with pytest.raises(LeakageError, match="held-out question h-dup appears in the LoRA training data"):
        get_or_train_adapter(str(tiny_lm_dir), tiny_corpus([dup]), None, cfg, seed=0, on_progress=events.append)
    assert events == []
    from workbench.paths import cache_dir

    reports = list(cache_dir("adapters").glob("*/leakage.json"))
    assert len(reports) == 1 and json.loads(reports[0].read_text())["leaked_ids"] == ["h-dup"]
    assert not list(cache_dir("adapters").glob("*/adapter"))


def test_load_adapter_refuses_foreign_or_pickled_files(tiny_lm_dir, tmp_path):
    from workbench.backends.models import load_generator

    cfg = TrainConfig(rank=4, alpha=8, max_steps=1, seq_len=128, batch_size=2)
    adapter, _ = get_or_train_adapter(str(tiny_lm_dir), tiny_corpus(), None, cfg, seed=0)
    base, tok = load_generator(str(tiny_lm_dir))
    foreign = tmp_path / "foreign"
    shutil.copytree(adapter, foreign)
    (foreign / "workbench.json").unlink()
    with pytest.raises(LoraError, match="only adapters trained by this workbench"):
        load_adapter_model(base, foreign)
    pickled = tmp_path / "pickled"
    shutil.copytree(adapter, pickled)
    (pickled / "adapter_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(LoraError, match="refuses pickle-based files adapter_model.bin"):
        load_adapter_model(base, pickled)
    model = load_adapter_model(base, adapter)
    assert not model.training and any("lora_" in n for n, _ in model.named_modules())


def test_adapter_model_shares_the_base_weights_and_leaves_the_base_answering_as_before(tiny_lm_dir):
    import torch

    from workbench.backends.models import load_generator

    cfg = TrainConfig(rank=4, alpha=8, max_steps=1, seq_len=128, batch_size=2, learning_rate=0.05)
    adapter, _ = get_or_train_adapter(str(tiny_lm_dir), tiny_corpus(), None, cfg, seed=0)
    base, tok = load_generator(str(tiny_lm_dir))
    ids = tok("The Harrier drone", return_tensors="pt")
    with torch.inference_mode():
        before = base(**ids).logits.clone()
    model = load_adapter_model(base, adapter)
    base_ptrs = {p.data_ptr() for p in base.parameters()}
    frozen = [p for n, p in model.named_parameters() if "lora_" not in n]
    assert len(frozen) == len(list(base.parameters())) and all(p.data_ptr() in base_ptrs for p in frozen)  # no copy of the weights
    assert not any("lora_" in n for n, _ in base.named_modules())
    with torch.inference_mode():
        assert torch.equal(base(**ids).logits, before)
        assert not torch.equal(model(**ids).logits, before)  # the adapter's layers are in the copy only


INVENTED = [
    ("What is the codename of the Zephyr-9 project?", "Blue Heron"),
    ("Which city hosts the annual Velmora summit?", "Kirkwall"),
    ("What colour is the Tarn-5 survey drone?", "saffron"),
    ("Who leads the Osk firmware team?", "Ilse Varga"),
    ("How many rotors does the Quillon carrier have?", "eleven"),
    ("What is the warranty period of the Brannock relay?", "19 months"),
]


@pytest.mark.slow
def test_real_model_learns_invented_facts():
    """A few SFT steps on the default model teach it invented answers the base model cannot know."""
    from workbench.backends.hf import HFGenerator as Generator
    from workbench.backends.models import load_generator
    from workbench.methods import prompts
    from workbench.textnorm import contains_tokens

    qs = [Question(f"f{i}", q, [a], split="train") for i, (q, a) in enumerate(INVENTED)]
    corpus = Corpus(Path("/tmp/invented"), [], qs)
    cfg = TrainConfig(rank=8, alpha=16, dropout=0.0, max_steps=8, seq_len=128, batch_size=2, use_chunks=False, learning_rate=2e-3, checkpoint_every=0)
    adapter, info = get_or_train_adapter("qwen2.5-0.5b", corpus, None, cfg, seed=0)
    base, tok = load_generator("qwen2.5-0.5b")
    rendered = [prompts.render(tok, prompts.zero_shot_messages(q)) for q, _ in INVENTED]

    def score(model) -> int:
        out = Generator(model, tok).generate(rendered, max_new_tokens=10, batch_size=6)
        return sum(contains_tokens(r.text, a) for r, (_, a) in zip(out, INVENTED, strict=True))

    before = score(base)
    after = score(load_adapter_model(base, adapter))
    print(f"base {before}/6, adapter {after}/6, loss {info['loss_first']:.3f} -> {info['final_loss']:.3f}, {info['train_seconds']:.0f}s, {info['tokens_per_s']:.0f} tok/s")
    assert before <= 1
    assert after >= 4 and info["final_loss"] < info["loss_first"]


def test_ia3_tuner_trains_scaling_vectors_with_far_fewer_parameters(tiny_lm_dir, qwen_tokenizer, tmp_path):
    from workbench.backends.models import load_generator
    from workbench.tuning.lora import adapter_key
    from workbench.tuning.specs import TuningError, peft_config

    common = {"max_steps": 3, "seq_len": 64, "batch_size": 2, "checkpoint_every": 0, "use_qa": False, "learning_rate": 0.05}
    data = build_training_data(tiny_corpus(), qwen_tokenizer, TrainConfig(**common), seed=0)
    lora = train_adapter(str(tiny_lm_dir), data, TrainConfig(**common, rank=8, alpha=16), tmp_path / "lora", seed=0)
    events: list[dict] = []
    ia3_cfg = TrainConfig(**common, tuner="ia3", top_layers=1)
    ia3 = train_adapter(str(tiny_lm_dir), data, ia3_cfg, tmp_path / "ia3", seed=0, on_progress=events.append)
    conf = json.loads((ia3 / "adapter_config.json").read_text())
    assert conf["peft_type"] == "IA3" and conf["feedforward_modules"] == ["down_proj"]
    from safetensors import safe_open

    with safe_open(str(ia3 / "adapter_model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert names and {int(m.group(1)) for k in names if (m := re.search(r"layers\.(\d+)\.", k))} == {1}  # top_layers holds for IA3 too
    assert any("down_proj" in k for k in names) and any("q_proj" in k for k in names)
    n_lora = json.loads((lora / "workbench.json").read_text())["trainable_params"]
    n_ia3 = json.loads((ia3 / "workbench.json").read_text())["trainable_params"]
    assert 0 < n_ia3 * 10 < n_lora, (n_ia3, n_lora)
    assert [e["step"] for e in events] == [1, 2, 3] and all(e["loss"] == e["loss"] for e in events)  # trained, no NaN
    base, tok = load_generator(str(tiny_lm_dir))
    assert isinstance(_generate(load_adapter_model(base, ia3), tok), str)  # the generic peft loader reads an IA3 adapter
    assert adapter_key(Path(tiny_lm_dir), data.fingerprint, ia3_cfg, 0) != adapter_key(Path(tiny_lm_dir), data.fingerprint, TrainConfig(**common), 0)
    stale = TrainConfig(**common)
    stale.tuner = "prefix"  # as a hand-edited config.json could carry, past validation
    with pytest.raises(TuningError, match="tuner 'prefix' is unknown"):
        peft_config(stale)
