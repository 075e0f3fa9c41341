"""Shared fixtures: an isolated WORKBENCH_HOME that reuses converted models, and tiny in-memory models."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FACT_CORPUS = REPO / "corpora" / "kestrel_labs"
BEHAVIOUR_CORPUS = REPO / "corpora" / "ticket_triage"


def _real_home() -> Path:
    env = os.environ.get("WORKBENCH_HOME")
    return Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "workbench"


@pytest.fixture(scope="session")
def real_models_dir() -> Path:
    """Converted models live in the user's real cache so the one-time conversion is shared."""
    path = _real_home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, real_models_dir, monkeypatch):
    """Every test gets an empty cache (indexes, adapters, answers) but the shared converted models."""
    home = tmp_path_factory.mktemp("wbhome")
    (home / "models").symlink_to(real_models_dir, target_is_directory=True)
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    monkeypatch.setenv("WORKBENCH_RUNS", str(home / "runs"))
    yield home


@pytest.fixture(scope="session")
def qwen_tokenizer(real_models_dir):
    """The real default generator's tokenizer (converts the model once if needed)."""
    from transformers import AutoTokenizer

    from workbench.models import resolve_generator

    folder = resolve_generator("qwen2.5-0.5b")
    tok = AutoTokenizer.from_pretrained(str(folder))
    tok.padding_side = "left"
    return tok


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory, qwen_tokenizer) -> Path:
    """A 2-layer Qwen2 with random weights and the real tokenizer, saved as an HF folder."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(qwen_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        pad_token_id=qwen_tokenizer.pad_token_id,
        eos_token_id=qwen_tokenizer.eos_token_id,
    )
    model = Qwen2ForCausalLM(cfg).to(torch.bfloat16)
    out = tmp_path_factory.mktemp("tiny_lm")
    model.save_pretrained(out)
    qwen_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_embedder_dir(tmp_path_factory) -> Path:
    """The bundled MiniLM is small and fast enough to serve as the test embedder."""
    from workbench.models import embedder_path

    return embedder_path()


@pytest.fixture()
def fact_corpus_copy(tmp_path) -> Path:
    if not FACT_CORPUS.is_dir():
        pytest.skip("fact corpus not present")
    dst = tmp_path / "kestrel_labs"
    shutil.copytree(FACT_CORPUS, dst)
    return dst

