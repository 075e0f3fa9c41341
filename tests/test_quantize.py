"""The <method>@int8 rows: registry variants, a quantized copy of the model, and a run that measures both precisions side by side."""

from __future__ import annotations

import pytest
from conftest import TINY_OVERRIDES

from workbench.backends.hf import HFGenerator
from workbench.backends.quantize import SCHEMES, PrecisionCopies, QuantizeError, quantized_generator, weight_mb
from workbench.config import ConfigError, build_config
from workbench.methods.registry import PRECISIONS, compared_methods, label, method_order, method_spec, selectable_methods


def test_every_method_has_an_opt_in_int8_row_after_it():
    assert set(PRECISIONS) == set(SCHEMES)
    for name in compared_methods():
        spec, base = method_spec(f"{name}@int8"), method_spec(name)
        assert (spec.precision, spec.full_precision, spec.opt_in) == ("int8", name, True)
        assert (spec.needs_index, spec.needs_adapter, spec.adapter_recipe, spec.factory) == (base.needs_index, base.needs_adapter, base.adapter_recipe, base.factory)
        assert label(f"{name}@int8") == f"{label(name)} @int8"
    assert "rag@int8" in selectable_methods() and "rag@int8" not in compared_methods()
    shown = sorted(["rag@int8", "lora", "rag", "zero-shot@int8", "zero-shot"], key=method_order)
    assert shown == ["zero-shot", "zero-shot@int8", "rag", "rag@int8", "lora"]
    assert "prior@int8" not in selectable_methods()  # a reference row has no model to quantize


def test_config_takes_int8_rows_and_names_the_choices_for_a_bad_one(tiny_corpus):
    cfg = build_config(str(tiny_corpus), "quick", methods=["rag", "rag@int8"])
    assert list(cfg.methods) == ["rag", "rag@int8"]
    with pytest.raises(ConfigError, match="rag@int8"):
        build_config(str(tiny_corpus), "quick", methods=["rag@int4"])


def test_the_int8_copy_has_int8_weights_a_new_fingerprint_and_leaves_the_original(tiny_lm_dir):
    import torch

    gen = HFGenerator.from_name(str(tiny_lm_dir))
    before = {k: v.clone() for k, v in gen.model.state_dict().items()}
    q, seconds = quantized_generator(gen, "int8")
    assert seconds > 0 and q.precision == "int8" and gen.precision == ""
    assert q.fingerprint != gen.fingerprint and q.tok is gen.tok
    assert all(torch.equal(before[k], v) for k, v in gen.model.state_dict().items())  # the bf16 model answers as before
    linear = q.model.model.layers[0].mlp.down_proj.weight
    assert linear.qdata.dtype == torch.int8 and linear.qdata.shape == linear.shape
    assert weight_mb(q.model) < weight_mb(gen.model)
    out = q.generate([q.tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)], max_new_tokens=4)
    assert len(out) == 1 and isinstance(out[0].text, str)
    with pytest.raises(QuantizeError, match="choose from int8"):
        quantized_generator(gen, "int3")


def test_copies_are_made_once_and_other_backends_are_refused(tiny_lm_dir):
    gen = HFGenerator.from_name(str(tiny_lm_dir))
    copies = PrecisionCopies()
    first, s1 = copies.get(gen, "int8")
    again, s2 = copies.get(gen, "int8")
    assert again is first and s1 == s2 > 0  # every row that answers with the copy counts what making it cost
    assert copies.model_mb(first) < copies.model_mb(gen)
    assert copies.model_mb(object()) is None
    with pytest.raises(QuantizeError, match="Hugging Face backend"):
        quantized_generator(object(), "int8")


def test_a_run_reports_full_and_int8_rows_of_the_same_methods(tiny_corpus, tiny_lm_dir, tmp_path):
    from workbench.pipeline.run import run
    from workbench.pipeline.runstore import load_run

    methods = ["zero-shot", "zero-shot@int8", "rag", "rag@int8"]
    cfg = build_config(str(tiny_corpus), "quick", {"chunk_size": 120, "chunk_overlap": 20, "top_k": 2}, TINY_OVERRIDES, model=str(tiny_lm_dir), methods=methods)
    result = load_run(run(cfg, out_dir=tmp_path / "runs", run_id="q"))
    m = result["metrics"]["methods"]
    for name in ("zero-shot", "rag"):
        full, low = m[name], m[f"{name}@int8"]
        assert low["model_mb"] < full["model_mb"]
        assert low["quantize_seconds"] > 0 and full.get("quantize_seconds") is None
        assert low["latency_probe_n"] == full["latency_probe_n"] > 0
        assert low["build_seconds"] >= full["build_seconds"]
    rows = {r["method"] for r in result["predictions"]}
    assert set(methods) <= rows
    assert {"rag", "rag@int8"} <= set(result["metrics"]["recommendation"]["costs"])  # the decision weighs the int8 row like any other


def test_an_adapter_model_is_quantized_with_its_adapter_and_still_answers(tiny_lm_dir):
    import torch
    from peft import LoraConfig, get_peft_model

    gen = HFGenerator.from_name(str(tiny_lm_dir))
    peft_model = get_peft_model(gen.model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")).eval()
    tuned = HFGenerator(peft_model, gen.tok, adapter="")
    q, _ = quantized_generator(tuned, "int8")
    base = q.model.base_model.model.model.layers[0].self_attn.q_proj
    assert base.base_layer.weight.qdata.dtype == torch.int8 and "default" in base.lora_A  # the adapter's layers ride along
    prompt = q.tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert len(q.generate([prompt], max_new_tokens=3)) == 1
