"""Shared fixtures: an isolated WORKBENCH_HOME that reuses converted models, and tiny in-memory models."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from workbench.backends.base import register_backend

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


def native_dtype() -> str:
    """bf16 where the CPU has bf16 instructions (AVX512-BF16, AMX, Arm BF16), else fp32; ``WORKBENCH_TEST_DTYPE`` forces one.

    Without them every bf16 product is converted: the real model ran ~9x slower in bf16 than fp32 (README, EPYC machine).
    """
    from workbench.pipeline.runstore import cpu_flags

    forced = os.environ.get("WORKBENCH_TEST_DTYPE")
    if forced:
        return forced
    return "bf16" if {"avx512_bf16", "amx_bf16", "bf16"} & set(cpu_flags()) else "fp32"


@pytest.fixture(autouse=True)
def isolated_home(request, tmp_path_factory, real_models_dir, monkeypatch):
    """Every test gets an empty cache (indexes, adapters, answers) but the shared converted models.

    Tiny-model tests run in bf16 on every machine; real-model (``slow``) tests in the machine's native format.
    """
    home = tmp_path_factory.mktemp("wbhome")
    (home / "models").symlink_to(real_models_dir, target_is_directory=True)
    monkeypatch.setenv("WORKBENCH_HOME", str(home))
    monkeypatch.setenv("WORKBENCH_RUNS", str(home / "runs"))
    monkeypatch.setenv("WORKBENCH_EXAMPLES", str(home / "no-examples"))  # the shipped examples/ only where a test asks
    slow = request.node.get_closest_marker("slow") is not None
    monkeypatch.setenv("WORKBENCH_DTYPE", native_dtype() if slow else "bf16")  # test_hardware covers the probe
    yield home


def real_tokenizer_dir(models: Path) -> Path:
    """A folder with the default generator's tokenizer, without converting the model (the fast loop never converts).

    The converted model's folder when it exists; else the tokenizer read from the bundled GGUF (joined
    from its package parts once, as provisioning does) and saved beside the models: about 10 s once,
    1 s after. The saved files are byte-identical to those the conversion writes.
    """
    converted = models / "qwen2.5-0.5b-bf16"
    if (converted / "tokenizer.json").is_file():
        return converted
    cached = models / "qwen2.5-0.5b-tokenizer"
    if (cached / "tokenizer.json").is_file():
        return cached
    from transformers import AutoTokenizer

    from workbench.backends.models import BUNDLED, _assemble_gguf, _ProcessLock

    with _ProcessLock(models / ".convert.lock"):
        if not (cached / "tokenizer.json").is_file():
            gguf = _assemble_gguf(BUNDLED["qwen2.5-0.5b"], None)
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            tmp = cached.with_name(cached.name + ".tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            tok.save_pretrained(tmp)
            os.replace(tmp, cached)
    return cached


_TOKENIZER: list = []


def real_tokenizer():
    """The default generator's tokenizer, loaded once per session (left padding, as Generator sets it)."""
    if not _TOKENIZER:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(real_tokenizer_dir(_real_home() / "models")))
        tok.padding_side = "left"
        _TOKENIZER.append(tok)
    return _TOKENIZER[0]


@pytest.fixture(scope="session")
def qwen_tokenizer(real_models_dir):
    """The real default generator's tokenizer (never converts the model; see real_tokenizer_dir)."""
    return real_tokenizer()


def wait_for(condition, what: str, ceiling_s: float = 300.0, poll_s: float = 0.2):
    """Poll ``condition()`` until it returns something truthy (returned); fail naming ``what`` after a generous ceiling.

    The ceiling only stops a hung test; it is not a speed requirement (speed is measured in the bench).
    """
    import time

    end = time.monotonic() + ceiling_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"gave up after {ceiling_s:.0f} s waiting for {what}")
        time.sleep(poll_s)


def _lookup_backend(spec: str, progress=None, device=None):
    from lookup_generator import LookupGenerator

    return LookupGenerator.from_file(spec, real_tokenizer())


register_backend("lookup", _lookup_backend)  # model "lookup:/path/table.json": answers known in advance


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
    from workbench.backends.models import embedder_path

    return embedder_path()


@pytest.fixture()
def fact_corpus_copy(tmp_path) -> Path:
    if not FACT_CORPUS.is_dir():
        pytest.skip("fact corpus not present")
    dst = tmp_path / "kestrel_labs"
    shutil.copytree(FACT_CORPUS, dst)
    return dst



TINY_DOCS = {
    "products/vantor.md": "# Vantor-9\n\nThe Vantor-9 sensor was designed by Ilse Marwick in 2017. It weighs 412 grams and costs $1,340.\n\nIts battery lasts 37 hours.",
    "policies/returns.txt": "Returns are accepted within 23 days of delivery. Refunds are paid to the original card.\n\nThe returns desk is in Kaunas.",
    "company/history.md": "Brellin Optics was founded in 2009 in Tartu by Oskar Veem. It opened a second office in Lisbon in 2015.",
}
TINY_QUESTIONS = [
    ("t1", "Who designed the Vantor-9 sensor?", ["Ilse Marwick"], "train", ["products/vantor.md"]),
    ("t2", "How much does the Vantor-9 weigh?", ["412 grams"], "train", ["products/vantor.md"]),
    ("t3", "Within how many days are returns accepted?", ["23 days"], "train", ["policies/returns.txt"]),
    ("t4", "Who founded Brellin Optics?", ["Oskar Veem"], "train", ["company/history.md"]),
    ("t5", "What colour is the Vantor-9 case?", [], "train", []),
    ("t6", "How long does the Vantor-9 battery last?", ["37 hours"], "test", ["products/vantor.md"]),
    ("t7", "Where is the returns desk?", ["Kaunas"], "test", ["policies/returns.txt"]),
    ("t8", "In which year was Brellin Optics founded?", ["2009"], "test", ["company/history.md"]),
    ("t9", "How much does the Vantor-9 cost?", ["$1,340", "1340"], "test", ["products/vantor.md"]),
    ("t10", "Who is the CEO of Brellin Optics today?", [], "test", []),
]


def make_tiny_corpus(root: Path) -> Path:
    """A three-document corpus with train and held-out questions, for fast end-to-end tests."""
    import json

    for doc_id, text in TINY_DOCS.items():
        path = root / "docs" / doc_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    lines = [
        json.dumps({"id": i, "question": q, "answers": a, "answerable": bool(a), "split": s, "sources": src, "type": "single" if a else "unanswerable"})
        for i, q, a, s, src in TINY_QUESTIONS
    ]
    (root / "questions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "corpus.toml").write_text('title = "Tiny"\nkind = "facts"\n[defaults]\nchunk_size = 120\nchunk_overlap = 20\ntop_k = 2\n', encoding="utf-8")
    return root


@pytest.fixture()
def tiny_corpus(tmp_path) -> Path:
    return make_tiny_corpus(tmp_path / "tiny_corpus")


TINY_OVERRIDES = {
    "train": {"max_steps": 2, "rank": 2, "alpha": 4, "seq_len": 128, "batch_size": 2, "checkpoint_every": 1, "use_chunks": True},
    "generation": {"max_new_tokens": 6, "batch_size": 4},
    "eval": {"bootstrap_samples": 200},
}


def varied_generator(tmp_path_factory, tokenizer, seed: int):
    """A tiny random fp32 Qwen2 whose greedy output varies from token to token (the shared tiny model repeats "\\n")."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from workbench.backends.hf import HFGenerator

    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=False, initializer_range=0.5,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    folder = tmp_path_factory.mktemp("varied_lm")
    Qwen2ForCausalLM(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    g = HFGenerator.from_name(str(folder))
    g.model.float()
    return g
