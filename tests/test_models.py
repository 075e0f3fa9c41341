"""Model provisioning: real default models from the installed packages, and clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.backends.models import BUNDLED, ModelError, embedder_path, gguf_parts, load_embedder, load_generator, resolve_generator


def test_import_workbench_does_not_import_streamlit():
    code = "import sys, workbench, workbench.cli.main, workbench.pipeline.run, workbench.config; print('streamlit' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_default_generator_parts_are_located_from_packages():
    parts = gguf_parts(BUNDLED["qwen2.5-0.5b"])
    assert len(parts) == 6
    assert all(p.stat().st_size > 1_000_000 for p in parts)


def test_missing_path_is_one_clear_line(tmp_path):
    with pytest.raises(ModelError, match="not found") as exc:
        resolve_generator(str(tmp_path / "nope"))
    assert "\n" not in str(exc.value)


def test_folder_without_config_is_not_a_model(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        resolve_generator(str(tmp_path))


def test_folder_that_is_not_a_causal_lm(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ModelError, match="cannot be loaded as a causal LM"):
        load_generator(str(tmp_path))


def test_unknown_embedder(tmp_path):
    with pytest.raises(ModelError, match="embedder"):
        embedder_path(str(tmp_path / "missing"))


def test_tiny_generator_loads_in_bf16_with_left_padding(tiny_lm_dir):
    import torch

    model, tok = load_generator(str(tiny_lm_dir))
    assert model.dtype == torch.bfloat16
    assert tok.padding_side == "left" and tok.pad_token is not None


@pytest.mark.slow
def test_real_generator_answers_from_a_paragraph():
    import torch

    model, tok = load_generator("qwen2.5-0.5b")
    msgs = [
        {"role": "system", "content": "Answer with the short answer only."},
        {"role": "user", "content": "Context: The Vantor-9 sensor was designed by Ilse Marwick in 2017 and weighs 412 grams.\n\nQuestion: Who designed the Vantor-9 sensor?"},
    ]
    enc = tok([tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)], return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    answer = tok.decode(out[0, enc.input_ids.shape[1] :], skip_special_tokens=True)
    assert "Marwick" in answer


def test_real_embedder_puts_paraphrases_closer_than_unrelated():
    model = load_embedder()
    emb = model.encode(
        ["How long is the warranty on the drone?", "What is the warranty period for the drone?", "The cafeteria serves soup on Fridays."],
        normalize_embeddings=True,
        convert_to_numpy=True,
    ).astype("float32")
    para, unrelated = float(emb[0] @ emb[1]), float(emb[0] @ emb[2])
    assert para > 0.7 and para > unrelated + 0.3
