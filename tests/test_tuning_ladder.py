"""The rest of the customization ladder: IA3 and prompt tuning as tuned methods beside LoRA, on the tiny model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import TINY_OVERRIDES

from workbench.config import METHODS, SELECTABLE, TrainConfig, build_config
from workbench.methods.registry import IA3, LORA, PROMPT_TUNING, RAG_LORA, ZERO_SHOT, method_spec
from workbench.tuning.lora import adapter_key, train_adapter
from workbench.tuning.lora_data import build_training_data
from workbench.tuning.specs import IA3_LR_SCALE, PROMPT_LR_SCALE, adapter_recipe_used, plan_adapters, tuning_spec
from workbench.types import Corpus, Document, Question

LADDER = [ZERO_SHOT, LORA, IA3, PROMPT_TUNING]


def _corpus() -> Corpus:
    text = "The Harrier flight controller runs its control loop at 400 Hz. " * 30
    return Corpus(Path("/tmp/tiny-ladder"), [Document("harrier.md", text)], [Question("h1", "Which company makes the Harrier?", ["Kestrel Labs"], split="test")])


def test_ia3_and_prompt_tuning_are_opt_in_methods_with_their_own_recipes():
    assert IA3 not in METHODS and PROMPT_TUNING not in METHODS and {IA3, PROMPT_TUNING} <= set(SELECTABLE)
    assert build_config("/tmp/c", "quick", methods=LADDER).methods == LADDER  # selectable by name
    for method in (IA3, PROMPT_TUNING):
        spec = method_spec(method)
        assert spec.needs_adapter and spec.adapter_recipe == method and spec.base_method == ZERO_SHOT and spec.opt_in
    run = TrainConfig(raft_examples=4)
    ia3, prompt = tuning_spec(IA3).settings(run), tuning_spec(PROMPT_TUNING).settings(run)
    assert ia3.tuner == "ia3" and ia3.learning_rate == pytest.approx(run.learning_rate * IA3_LR_SCALE)
    assert prompt.tuner == "prompt-tuning" and prompt.learning_rate == pytest.approx(run.learning_rate * PROMPT_LR_SCALE)
    assert 3e-3 <= ia3.learning_rate <= 1e-2 and prompt.use_chunks == run.use_chunks and prompt.epochs == run.epochs  # the closed-book data and budget
    # one adapter per recipe the methods need; RAFT brings the closed-book LoRA along (its fallback), as before
    assert plan_adapters(LADDER, run, "facts") == (["lora", "ia3", "prompt-tuning"], {})
    assert plan_adapters([ZERO_SHOT, IA3], run, "facts") == (["ia3"], {})
    assert plan_adapters([RAG_LORA], run, "facts")[0] == ["lora", "raft"]
    names, skipped = plan_adapters([RAG_LORA, PROMPT_TUNING], run, "behaviour")
    assert names == ["lora", "prompt-tuning"] and "behaviour corpus: no RAFT adapter" in skipped["raft"]
    assert adapter_recipe_used(RAG_LORA, {"lora": 1}) == "lora" and adapter_recipe_used(PROMPT_TUNING, {"lora": 1, "prompt-tuning": 1}) == "prompt-tuning"


def test_prompt_tuning_loss_is_the_peft_forward_and_its_virtual_tokens_learn(tiny_lm_dir, qwen_tokenizer, tmp_path):
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from workbench.tuning.lora import _loss
    from workbench.tuning.specs import peft_config

    cfg = TrainConfig(tuner="prompt-tuning", virtual_tokens=8, max_steps=8, seq_len=64, batch_size=2, checkpoint_every=4, use_qa=False, learning_rate=0.3)
    # the fast loss (labelled positions only) equals peft's own forward, which puts the virtual tokens before the input
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_lm_dir), dtype=torch.float32), peft_config(cfg, tokenizer=str(tiny_lm_dir), init_text="Answer briefly."))
    ids = qwen_tokenizer(["The Harrier flight controller runs at 400 Hz."], return_tensors="pt")["input_ids"]
    labels = ids.clone()
    labels[:, :3] = -100
    assert float(_loss(model, ids, labels)) == pytest.approx(float(model(input_ids=ids, labels=labels).loss), rel=1e-4)
    with model.disable_adapter():  # the virtual tokens are what changes the loss
        plain = float(model.get_base_model()(input_ids=ids, labels=labels).loss)
    assert abs(plain - float(_loss(model, ids, labels))) > 1e-4

    data = build_training_data(_corpus(), qwen_tokenizer, cfg, seed=0)
    events: list[dict] = []
    adapter = train_adapter(str(tiny_lm_dir), data, cfg, tmp_path / "pt", seed=0, on_progress=events.append, init_text="Answer the question about the Harrier.")
    losses = [e["loss"] for e in events]
    assert sum(losses[-3:]) / 3 < losses[0] - 0.02, losses  # a tiny overfit set: the soft prompt alone lowers the loss
    conf = json.loads((adapter / "adapter_config.json").read_text())
    assert conf["peft_type"] == "PROMPT_TUNING" and conf["num_virtual_tokens"] == 8 and conf["prompt_tuning_init_text"].startswith("Answer the question")
    meta = json.loads((adapter / "workbench.json").read_text())
    assert meta["trainable_params"] == 8 * 32 and meta["tuner"] == "prompt-tuning"  # 8 virtual tokens of the 32-wide model

    from workbench.backends.hf import HFGenerator
    from workbench.backends.models import load_generator

    base = HFGenerator(*load_generator(str(tiny_lm_dir)))
    tuned = base.with_adapter(adapter)
    prompts = [base.render([{"role": "user", "content": q}]) for q in ("How fast is the Harrier control loop?", "Who makes the Harrier flight controller?")]

    def first_scores(gen):  # next-token scores of the first generated token, through generate (the random model's argmax is a newline)
        enc = qwen_tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.inference_mode():
            out = gen.model.generate(**enc, max_new_tokens=1, do_sample=False, output_scores=True, return_dict_in_generate=True, pad_token_id=qwen_tokenizer.pad_token_id)
        return out.scores[0].float()

    assert not torch.allclose(first_scores(tuned), first_scores(base), atol=1e-3)  # generation goes through the peft model, virtual tokens first
    assert tuned.score_yes(prompts) != base.score_yes(prompts)  # so does a plain forward
    assert [r.text for r in tuned.generate(prompts, max_new_tokens=4)] == [r.text for r in tuned.generate(prompts, max_new_tokens=4)]
    assert tuned.fingerprint != base.fingerprint


def test_a_soft_prompt_resumes_from_its_checkpoint_exactly(tiny_lm_dir, qwen_tokenizer, tmp_path):
    from safetensors.torch import load_file

    cfg = TrainConfig(tuner="prompt-tuning", virtual_tokens=4, max_steps=4, seq_len=64, batch_size=2, checkpoint_every=2, use_qa=False, learning_rate=0.1)
    data = build_training_data(_corpus(), qwen_tokenizer, cfg, seed=0)
    straight = train_adapter(str(tiny_lm_dir), data, cfg, tmp_path / "straight", seed=0, init_text="Answer.")

    def crash(p: dict) -> None:
        if p["step"] == 3:
            raise KeyboardInterrupt  # killed after the step-2 checkpoint
    with pytest.raises(KeyboardInterrupt):
        train_adapter(str(tiny_lm_dir), data, cfg, tmp_path / "cut", seed=0, on_progress=crash, init_text="Answer.")
    resumed = train_adapter(str(tiny_lm_dir), data, cfg, tmp_path / "cut", seed=0, init_text="Answer.")
    assert json.loads((resumed / "workbench.json").read_text())["resumed_from"] == [2]
    a, b = load_file(str(straight / "adapter_model.safetensors")), load_file(str(resumed / "adapter_model.safetensors"))
    assert list(a) == ["prompt_embeddings"] and (a["prompt_embeddings"] == b["prompt_embeddings"]).all()


def test_adapter_keys_of_the_new_tuners_and_old_lora_keys(tiny_lm_dir):
    folder = Path(tiny_lm_dir)
    lora = TrainConfig()
    assert adapter_key(folder, "fp", lora, 0) == adapter_key(folder, "fp", dataclasses.replace(lora, virtual_tokens=40), 0)  # not a LoRA setting
    prompt = tuning_spec(PROMPT_TUNING).settings(lora)
    keys = {adapter_key(folder, "fp", lora, 0), adapter_key(folder, "fp", tuning_spec(IA3).settings(lora), 0), adapter_key(folder, "fp", prompt, 0, "Answer."),
            adapter_key(folder, "fp", dataclasses.replace(prompt, virtual_tokens=40), 0, "Answer."), adapter_key(folder, "fp", prompt, 0, "Classify.")}
    assert len(keys) == 5


def _ladder_config(corpus, model, methods=LADDER):
    overrides = {**TINY_OVERRIDES, "train": {**TINY_OVERRIDES["train"], "rank": 8, "alpha": 16, "curve_points": 2, "dev_fraction": 0.0}}
    return build_config(str(corpus), "quick", {"chunk_size": 120, "chunk_overlap": 20, "top_k": 2}, overrides, model=str(model), methods=methods)


def test_a_run_trains_lora_ia3_and_prompt_tuning_side_by_side_and_reuses_them(tiny_corpus, tiny_lm_dir, isolated_home):
    from workbench.pipeline.run import run
    from workbench.reports.export import render_markdown

    config = _ladder_config(tiny_corpus, tiny_lm_dir)
    first = run(config, out_dir=isolated_home / "runs", run_id="ladder-1")
    metrics = json.loads((first / "metrics.json").read_text())
    train = metrics["train"]
    assert set(train["recipes"]) == {"lora", "ia3", "prompt-tuning"}  # no RAFT: no rag+lora asked for
    assert train["steps"] == train["recipes"]["lora"]["steps"] and train["train_split_probe"]["n"] > 0  # the closed-book LoRA leads
    tuned = train["methods"]
    assert set(tuned) == {LORA, IA3, PROMPT_TUNING}
    assert [tuned[m]["tuner"] for m in (LORA, IA3, PROMPT_TUNING)] == ["lora", "ia3", "prompt-tuning"]
    n = {m: tuned[m]["trainable_params"] for m in tuned}
    assert 0 < n[IA3] * 3 < n[LORA] and 0 < n[PROMPT_TUNING] * 3 < n[LORA], n  # scaling vectors and 20 virtual tokens vs rank-8 matrices
    assert n[PROMPT_TUNING] == 20 * 32
    for m in (LORA, IA3, PROMPT_TUNING):
        assert tuned[m]["artifact_mb"] > 0 and tuned[m]["train_seconds"] > 0 and tuned[m]["steps"] == 2 and tuned[m]["usd_build"] is not None
        assert metrics["methods"][m]["artifact_mb"] == tuned[m]["artifact_mb"] and metrics["methods"][m]["build_seconds"] > 0
        assert len(metrics["learning_curve"][m]) == 3 and metrics["learning_curve"][m][0]["base"]
        assert metrics["seen"][m]["train_data"]["train_qa"] == 5
    assert tuned[IA3]["artifact_mb"] < tuned[LORA]["artifact_mb"] and tuned[PROMPT_TUNING]["artifact_mb"] < tuned[LORA]["artifact_mb"]
    dirs = {r["adapter_dir"] for r in train["recipes"].values()}
    assert len(dirs) == 3  # three adapters, each in its own cache folder
    rows = [json.loads(line) for line in (first / "predictions.jsonl").read_text().splitlines()]
    assert {r["method"] for r in rows} >= set(LADDER)
    md = render_markdown(first)
    assert "## Training (LoRA, IA3, prompt tuning)" in md and "| Measure | LoRA | IA3 | Prompt tuning |" in md
    assert "| Trainable parameters |" in md and f"{n[PROMPT_TUNING]:,}" in md and "| IA3 |" in md

    again = json.loads((run(config, out_dir=isolated_home / "runs", run_id="ladder-2") / "metrics.json").read_text())
    assert all(r["cache_hit"] for r in again["train"]["recipes"].values())
    assert {r["adapter_dir"] for r in again["train"]["recipes"].values()} == dirs
    key = lambda r: (r["method"], r["question_id"])  # noqa: E731
    again_rows = [json.loads(line) for line in (isolated_home / "runs" / "ladder-2" / "predictions.jsonl").read_text().splitlines()]
    assert [(key(r), r["answer"]) for r in sorted(rows, key=key)] == [(key(r), r["answer"]) for r in sorted(again_rows, key=key)]

    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/compare.py")
    at.run()
    assert not at.exception, at.exception
    assert {"IA3", "Prompt tuning"} <= set(at.dataframe[0].value["Method"])
    training = next(d.value for d in at.dataframe if "Measure" in d.value.columns)
    assert list(training.columns) == ["Measure", "LoRA", "IA3", "Prompt tuning"] and "Trainable parameters" in list(training["Measure"])


def test_the_estimate_counts_the_extra_adapters(tmp_path):
    from workbench.pipeline.estimate import FALLBACK, estimate_run, training_seconds, training_tokens

    cfg = build_config(str(tmp_path / "corpus"), "quick", methods=[ZERO_SHOT, LORA], model="qwen2.5-0.5b")
    ladder = dataclasses.replace(cfg, methods=LADDER)
    lora_s = estimate_run(cfg, n_docs=10, n_train=100, n_test=40)["stages"]["train"]
    ladder_s = estimate_run(ladder, n_docs=10, n_train=100, n_test=40)["stages"]["train"]
    work = training_tokens(cfg, 10, 100, recipes=["lora", "ia3", "prompt-tuning"])
    assert work["ia3"] == work["prompt-tuning"] == work["lora"] > 0  # the closed-book data, trained again per adapter
    assert ladder_s == pytest.approx(training_seconds(cfg, 10, 100, FALLBACK, recipes=["lora", "ia3", "prompt-tuning"]))
    assert ladder_s > lora_s + 2 * work["lora"] / FALLBACK["train_tokens_per_s"]
    only_ia3 = estimate_run(dataclasses.replace(cfg, methods=[ZERO_SHOT, IA3]), n_docs=10, n_train=100, n_test=40)["stages"]["train"]
    assert only_ia3 == pytest.approx(lora_s)  # one adapter either way
