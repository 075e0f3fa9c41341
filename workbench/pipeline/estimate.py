"""How long a run will take, before it starts: the methods, preset, corpus size and this machine's measured speed.

Every finished run records what it measured (prompt tokens answered per second, training examples per second,
documents indexed per second, model load time) in ``WORKBENCH_HOME/speed.json``, per model; an estimate uses the
newest figures for the model, and the FALLBACK constants (the default model on a 2-core CPU) when nothing was
measured yet. The estimate is for a cold run: cached indexes, adapters and answers make a run faster.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..methods.registry import LORA_RECIPE, ORACLE, RAFT_RECIPE, RAG, REGISTRY, methods_where
from ..paths import home
from ..storage import atomic_write_json, read_json

# From the cold quick run in bench/results.json (qwen2.5-0.5b, kestrel_labs, 2-core CPU: 1009 s wall, 364 s answering
# about 65k prompt tokens, 7 s indexing 52 documents) and, for training, the corpus-reading recipe on kestrel_labs
# (tokens trained per second by the LoRA loop, seconds per Q/A pair asked of the base model); used until this machine
# has measured its own speed. prompt_tokens_per_s is effective: prefill plus decoding plus the latency probe.
FALLBACK = {
    "prompt_tokens_per_s": 180.0,
    "train_tokens_per_s": 120.0,
    "gen_s_per_pair": 0.31,  # one fact question (kestrel_labs: 1,424 in 428 s on 2 idle cores)
    "index_docs_per_s": 7.0,
    "model_load_s": 5.0,
    "corpus_s": 1.0,
    "score_s": 25.0,
    "judge_s_per_row": 0.3,  # groundedness judge (standard preset): 249 s for 819 rows on kestrel_labs
}
BASE_PROMPT_TOKENS = 68  # instruction, question and chat template (zero-shot prompt, measured)
EXAMPLE_TOKENS = 28  # one solved Q/A pair in a few-shot prompt (measured: 182 tokens with k=4)
CHARS_PER_TOKEN = 5.0  # an 800-character chunk is about 157 prompt tokens (measured)
CHUNKS_PER_DOC_AT_800 = 3.9  # kestrel_labs: 201 chunks of 800 characters from 52 documents
TRAIN_PROBE_ANSWERS = 40  # after training: 20 train questions answered by the base model and by the adapter
DOC_TOKENS_PER_CHUNK = 135  # document text trained per 800-character chunk (kestrel subset: 6,600 tokens, 49 chunks)
PAIR_TOKENS = 54  # one Q/A turn in a training dialogue, template included (measured on the same subset)
GENERATED_KEPT = 0.32  # share of asked questions that pass the quality check (kestrel_labs, two per sentence: 460 of 1,424)
FACTS_PER_CHUNK = {1: 4.9, 2: 7.0}  # answers picked per 800-character chunk at 1 and 2 per sentence (kestrel_labs: 992, 1,407 of 201 chunks)
MAX_FACTS_PER_CHUNK = 7.7  # nearly every sentence has at most three
FILLER_SHARE = 0.11  # untrained tokens that complete packed blocks (1,565 of 14,336)


def speed_path() -> Path:
    return home() / "speed.json"


def measured_speed(model: str) -> dict[str, float]:
    """This machine's figures for ``model`` (from earlier runs), each falling back to FALLBACK."""
    try:
        data = read_json(speed_path(), {}) or {}
    except (OSError, ValueError):
        data = {}
    mine = data.get(Path(str(model)).name) if isinstance(data, dict) else None
    known = {k: float(v) for k, v in (mine or {}).items() if isinstance(v, (int, float)) and v > 0}
    return {**FALLBACK, **known, "measured": bool(known)}


def record_speed(config: RunConfig, metrics: dict[str, Any], timings: dict[str, float], predictions: list[dict[str, Any]]) -> dict[str, float]:
    """Store the speeds this finished run measured (only work really done: no cache hits); the figures stored."""
    figures: dict[str, float] = {}
    fresh = [r for r in predictions if not r.get("cached")]
    # answered once in the batched pass, and once more alone when the question is in the latency probe (as estimate_run counts)
    tokens = sum(float(r.get("prompt_tokens") or 0) * (2 if r.get("latency_probe_s") is not None else 1) for r in fresh)
    measured_rate = None
    if len(fresh) >= max(4, len(predictions) // 2) and tokens and timings.get("answer_s", 0) > 1:
        figures["prompt_tokens_per_s"] = measured_rate = tokens / timings["answer_s"]
    trained_tokens = trained_s = 0.0
    for recipe in ((metrics.get("train") or {}).get("recipes") or {}).values():
        if recipe.get("cache_hit"):
            continue
        if recipe.get("tokens_per_s") and recipe.get("train_seconds", 0) > 5:  # every fresh adapter, weighted by its seconds
            trained_tokens += float(recipe["tokens_per_s"]) * float(recipe["train_seconds"])
            trained_s += float(recipe["train_seconds"])
        gen = (recipe.get("data") or {}).get("generation") or {}
        written = gen.get("written_now", gen.get("asked"))  # questions written by this run (the rest came from the cache)
        if written and written >= 20 and not gen.get("cache_hit") and gen.get("seconds"):
            figures["gen_s_per_pair"] = float(gen["seconds"]) / float(written)
    if trained_s:
        figures["train_tokens_per_s"] = trained_tokens / trained_s
    index = metrics.get("index") or {}
    n_docs = (metrics.get("corpus") or {}).get("n_docs") or 0
    if index and not index.get("cache_hit") and index.get("build_seconds") and n_docs:
        figures["index_docs_per_s"] = n_docs / float(index["build_seconds"])
    for key, timing in (("model_load_s", "model_s"), ("corpus_s", "corpus_s")):
        if timings.get(timing):
            figures[key] = float(timings[timing])
    if timings.get("score_s"):  # the groundedness judge answers once per row; without it scoring is a few seconds
        if config.eval.groundedness and predictions:
            figures["judge_s_per_row"] = float(timings["score_s"]) / len(predictions)
        else:
            figures["score_s"] = float(timings["score_s"])
    prompts = {m: float(v["prompt_tokens_mean"]) for m, v in (metrics.get("methods") or {}).items() if (v.get("prompt_tokens_mean") or 0) > 0}
    if figures or prompts or measured_rate:
        try:
            data = read_json(speed_path(), {}) or {}
        except (OSError, ValueError):
            data = {}
        name = Path(str(config.model)).name
        data[name] = {**(data.get(name) or {}), **figures}
        if prompts:  # the measured prompt length per method on this corpus beats the prompt model below
            data.setdefault("prompt_tokens", {})[_prompt_key(config)] = prompts
        if measured_rate:  # long RAG prompts are prefill-bound, short ones decode-bound: the rate is per corpus and answer length
            data.setdefault("answer_rate", {})[_answer_key(config)] = measured_rate
        rows = row_seconds(fresh)
        if rows:  # seconds per question of each method, batched and alone: the estimate's first choice
            data.setdefault("row_seconds", {}).setdefault(_answer_key(config), {}).update(rows)
        atomic_write_json(speed_path(), data)
    return figures


def _prompt_key(config: RunConfig) -> str:
    """Prompt length depends on the corpus and on the settings that shape prompts."""
    return f"{Path(config.corpus).name}|k={config.few_shot.k}|top_k={config.retrieval.top_k}|chunk={config.split.chunk_size}"


def _answer_key(config: RunConfig) -> str:
    return f"{Path(str(config.model)).name}|{_prompt_key(config)}|new={config.generation.max_new_tokens}"


def row_seconds(fresh: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method with at least 4 freshly answered rows: mean seconds per question in the batched pass and, if probed, alone."""
    out: dict[str, dict[str, float]] = {}
    for method in sorted({str(r.get("method")) for r in fresh}):
        mine = [r for r in fresh if r.get("method") == method and isinstance(r.get("latency_s"), (int, float))]
        if len(mine) < 4:
            continue
        probed = [float(r["latency_probe_s"]) for r in mine if isinstance(r.get("latency_probe_s"), (int, float))]
        out[method] = {"batched": sum(float(r["latency_s"]) for r in mine) / len(mine), "alone": sum(probed) / len(probed) if probed else 0.0}
    return out


def _recorded(section: str, key: str) -> Any:
    """What speed.json holds under ``section`` for ``key`` (None when nothing, or the file is unreadable)."""
    try:
        data = read_json(speed_path(), {}) or {}
    except (OSError, ValueError):
        return None
    return (data.get(section) or {}).get(key) if isinstance(data, dict) else None


def _known_rows(config: RunConfig) -> dict[str, Any]:
    found = _recorded("row_seconds", _answer_key(config))
    return found if isinstance(found, dict) else {}


def answer_rate(config: RunConfig, speed: dict[str, float]) -> float:
    """Prompt tokens answered per second: measured on this corpus with these settings if a run did, else the model's last rate."""
    found = _recorded("answer_rate", _answer_key(config))
    return float(found) if isinstance(found, (int, float)) and found > 0 else speed["prompt_tokens_per_s"]


def measured_prompt_tokens(config: RunConfig) -> dict[str, float]:
    found = _recorded("prompt_tokens", _prompt_key(config))
    return found if isinstance(found, dict) else {}


def prompt_tokens(method: str, config: RunConfig) -> float:
    """Prompt tokens one question costs with ``method`` (a model of the prompts, not a measurement)."""
    tokens = float(BASE_PROMPT_TOKENS)
    spec = REGISTRY.get(method)
    if spec and spec.needs_examples:
        tokens += config.few_shot.k * EXAMPLE_TOKENS
    if spec and spec.needs_index:
        chunk = config.split.chunk_size / (1.0 if config.split.mode == "tokens" else CHARS_PER_TOKEN)
        tokens += config.retrieval.top_k * chunk
    return tokens


def _chunks(config: RunConfig, n_docs: int) -> float:
    return n_docs * CHUNKS_PER_DOC_AT_800 * 800 / max(1, config.split.chunk_size)


def training_tokens(config: RunConfig, n_docs: int, n_train: int, raft: bool = True, recipes: Collection[str] | None = None) -> dict[str, float]:
    """Tokens the training loop trains on per adapter (``lora``: closed book; ``raft``: the rag+lora adapter; ``ia3`` and
    ``prompt-tuning``: the closed-book data again) and the Q/A pairs asked of the base model (once: they are cached).

    ``recipes`` are the adapters trained (default: the closed-book one, and RAFT when ``raft``)."""
    from ..tuning.specs import TUNINGS, raft_settings

    t = config.train
    recipes = list(recipes) if recipes is not None else [LORA_RECIPE, *([RAFT_RECIPE] if raft else [])]
    chunks = _chunks(config, n_docs) if (t.use_chunks or t.generated_qa or t.raft_examples) else 0.0
    per_epoch = chunks * ((DOC_TOKENS_PER_CHUNK if t.use_chunks else 0) + (facts_per_chunk(t.generated_qa) * GENERATED_KEPT + t.synthetic_qa) * PAIR_TOKENS + t.paraphrases * DOC_TOKENS_PER_CHUNK)
    per_epoch = (per_epoch + (n_train * PAIR_TOKENS if t.use_qa else 0)) * (1 + FILLER_SHARE)
    closed_book = float(t.max_steps * t.batch_size * t.seq_len) if t.max_steps else per_epoch * t.epochs
    out = {LORA_RECIPE: closed_book if LORA_RECIPE in recipes else 0.0, RAFT_RECIPE: 0.0, "pairs_asked": chunks * facts_per_chunk(t.generated_qa)}
    if RAFT_RECIPE in recipes and t.raft_examples:
        r = raft_settings(t)
        out[RAFT_RECIPE] = t.raft_examples * t.raft_epochs * r.seq_len  # one example a block
        out["pairs_asked"] = chunks * facts_per_chunk(r.generated_qa)
    for name in recipes:  # the other recipes train on the closed-book data with the run's budget
        if name not in out and name in TUNINGS:
            out[name] = closed_book
    return out


def facts_per_chunk(per_sentence: int) -> float:
    """Questions asked of the base model per chunk when it writes ``per_sentence`` per sentence (see tuning.fact_qa)."""
    return FACTS_PER_CHUNK.get(per_sentence, MAX_FACTS_PER_CHUNK) if per_sentence > 0 else 0.0


def training_seconds(config: RunConfig, n_docs: int, n_train: int, speed: dict[str, float], raft: bool = True, recipes: Collection[str] | None = None) -> float:
    """The training stage: writing Q/A from every chunk, the training loops, each adapter's learning curve and the train probe."""
    t = config.train
    work = training_tokens(config, n_docs, n_train, raft, recipes)
    adapters = [k for k, v in work.items() if k != "pairs_asked" and v]
    closed = [k for k in adapters if k != RAFT_RECIPE]  # closed-book curves: dev slice and held-out subset at every point
    curve = (t.curve_questions + max(1.0, n_train * t.dev_fraction)) * BASE_PROMPT_TOKENS
    answers = TRAIN_PROBE_ANSWERS * BASE_PROMPT_TOKENS + (t.curve_points + 1) * curve + max(0, len(closed) - 1) * t.curve_points * curve  # the base point is shared
    if work[RAFT_RECIPE]:
        answers += (t.curve_points + 1) * 12 * prompt_tokens(RAG, config)  # 6 dev + 6 held-out rag prompts a point
    trained = sum(work[k] for k in adapters)
    return work["pairs_asked"] * speed["gen_s_per_pair"] + trained / speed["train_tokens_per_s"] + answers / speed["prompt_tokens_per_s"]


def estimate_run(config: RunConfig, *, n_docs: int, n_train: int, n_test: int, kind: str = "facts") -> dict[str, Any]:
    """Seconds per stage and in total for a cold run of ``config``; ``measured`` says whether this machine's speed was known."""
    speed = measured_speed(config.model)
    n_questions = min(n_test, config.eval.max_questions) if config.eval.max_questions else n_test
    methods = list(config.methods)
    if config.eval.baselines and any(m in methods_where(needs_index=True, baseline=False) for m in methods):
        methods.append(ORACLE)
    stages: dict[str, float] = {"corpus": speed["corpus_s"], "model": speed["model_load_s"]}
    if any(m in methods_where(needs_index=True) for m in methods):
        stages["index"] = n_docs / speed["index_docs_per_s"]
    if any(m in methods_where(needs_adapter=True) for m in methods):
        from ..tuning.specs import plan_adapters

        recipes, _ = plan_adapters(methods, config.train, kind)  # the adapters the run will train, as prepare_adapters plans them
        stages["train"] = training_seconds(config, n_docs, n_train, speed, recipes=recipes)
    answered = n_questions + min(config.eval.latency_probe_n, n_questions)
    known = measured_prompt_tokens(config)
    rows, rate = _known_rows(config), answer_rate(config, speed)
    probed = min(config.eval.latency_probe_n, n_questions)

    def answering(m: str) -> float:  # measured seconds per question when a run of this corpus measured them, else the prompt model
        if isinstance(rows.get(m), dict):
            return n_questions * float(rows[m].get("batched") or 0) + probed * float(rows[m].get("alone") or 0)
        return answered * float(known.get(m) or prompt_tokens(m, config)) / rate

    stages["answer"] = sum(answering(m) for m in methods)
    stages["score"] = speed["score_s"] + (speed["judge_s_per_row"] * n_questions * len(methods) if config.eval.groundedness else 0.0)
    return {"stages": stages, "total_s": sum(stages.values()), "measured": speed["measured"], "questions": n_questions}


STAGE_ORDER = ("corpus", "model", "index", "train", "answer", "score", "aggregate")


def time_progress(stages: dict[str, float], stage: str, fraction: float) -> float | None:
    """Share of the estimated time done: finished stages plus ``fraction`` of the current one, weighted by their estimates."""
    total = sum(stages.values())
    if not total or stage not in STAGE_ORDER:
        return None
    here = STAGE_ORDER.index(stage)
    done = sum(v for k, v in stages.items() if k in STAGE_ORDER and STAGE_ORDER.index(k) < here)
    return min(1.0, (done + max(0.0, min(1.0, fraction)) * stages.get(stage, 0.0)) / total)


def remaining_s(estimate_s: float | None, elapsed_s: float, progress: float) -> float | None:
    """Live ETA: the estimate minus the time spent, blended with the measured pace once a fifth of the work is done.

    ``progress`` is the share of the estimated time done (time_progress), so the pace is comparable across stages.
    """
    if not estimate_s:
        return None
    if progress >= 0.2:
        pace = elapsed_s / progress * (1 - progress)
        return max(0.0, 0.5 * pace + 0.5 * max(0.0, estimate_s - elapsed_s))
    return max(0.0, estimate_s - elapsed_s)
