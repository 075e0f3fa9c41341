"""Page 2 · Build: RAG and LoRA settings (generated from the config dataclasses); build the index or train the adapter in the background."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from app_pages.common import corpus_path, load_corpus_cached, show_error
from app_pages.forms import changed, dataclass_widgets
from app_pages.jobview import job_panel
from app_pages.textview import code_span
from workbench import fmt
from workbench.config import (
    ConfigError,
    EvalConfig,
    FewShotConfig,
    GenerationConfig,
    IndexConfig,
    RetrievalConfig,
    RunConfig,
    SplitConfig,
    TrainConfig,
    build_config,
)
from workbench.corpus.loaders import CorpusError
from workbench.pipeline import jobs
from workbench.storage import read_json

SECTIONS: dict[str, tuple[str, type]] = {
    "split": ("Chunking", SplitConfig),
    "index": ("Embedding index", IndexConfig),
    "retrieval": ("Retrieval", RetrievalConfig),
    "train": ("LoRA training", TrainConfig),
    "generation": ("Generation", GenerationConfig),
    "few_shot": ("Few-shot", FewShotConfig),
    "eval": ("Evaluation", EvalConfig),
}
TRAIN_MAIN = ["rank", "alpha", "learning_rate", "max_steps", "epochs", "batch_size", "seq_len", "top_layers", "use_chunks", "use_qa"]


def base_config(corpus: Any, preset: str) -> RunConfig:
    """The effective settings before the user's edits: defaults, corpus.toml [defaults], then the preset."""
    return build_config(str(corpus.root), preset, corpus.defaults, None, model=st.session_state["model"])


def section_form(name: str, base: RunConfig, preset: str, fields: list[str] | None = None) -> dict[str, Any]:
    title, cls = SECTIONS[name]
    values = dataclass_widgets(cls, getattr(base, name), key_prefix=f"cfg.{preset}.{name}", fields=fields)
    return changed(values, getattr(base, name))


def start(what: str, overrides: dict[str, dict[str, Any]], preset: str) -> None:
    try:
        job = jobs.start_build(corpus_path(), what, preset=preset, model=st.session_state["model"], overrides=overrides)  # type: ignore[arg-type]
    except jobs.JobError as exc:
        show_error(exc, f"Could not start the {what} build")
        return
    st.session_state["build_jobs"] = {**st.session_state.get("build_jobs", {}), what: str(job.job_dir)}


def running_build(what: str, corpus_root: Path) -> str | None:
    """The newest build job of this kind and corpus that is still running, if any."""
    for job_dir in sorted((p for p in jobs.jobs_dir().iterdir() if p.is_dir()), reverse=True)[:20]:
        try:
            cmd = (read_json(job_dir / "job.json", {}) or {}).get("command") or []
        except ValueError:
            continue
        if "--what" not in cmd or "--corpus" not in cmd or cmd[cmd.index("--what") + 1] != what:
            continue
        if (
            Path(cmd[cmd.index("--corpus") + 1]).resolve() == Path(corpus_root).resolve()
            and jobs.job_status(job_dir).get("state") == "running"
        ):
            return str(job_dir)
    return None


def build_outcome(job_dir: str, what: str) -> None:
    """What a finished build reused from the cache and what it built, from the job's result.json."""
    try:
        result = read_json(Path(job_dir) / "result.json", {}) or {}
    except (OSError, ValueError):
        return
    wall = fmt.seconds(result.get("wall_seconds"))
    if what == "index" and result.get("index"):
        info = result["index"]
        chunks = fmt.count(info.get("n_chunks"))
        if info.get("cache_hit"):
            st.success(
                f"Reused the cached index ({chunks} chunks, built earlier in {fmt.seconds(info.get('build_seconds'))}); nothing was rebuilt. "
                f"The job took {wall}, most of it loading the corpus and the embedder.",
                icon=":material/cached:",
            )
        else:
            st.success(f"Built a new index: {chunks} chunks embedded and indexed in {fmt.seconds(info.get('build_seconds'))} "
                       f"(job {wall} in all); cached, so Evaluate reuses it.", icon=":material/database:")  # fmt: skip
    elif what == "adapter" and result.get("train"):
        info = result["train"]
        if info.get("cache_hit"):
            st.success(f"Reused the cached adapter (trained earlier in {fmt.seconds(info.get('train_seconds'))}); nothing was retrained. "
                       f"The job took {wall}, most of it loading the model.", icon=":material/cached:")  # fmt: skip
        else:
            st.success(f"Trained a new adapter in {fmt.seconds(info.get('train_seconds'))} (job {wall} in all); cached, so Evaluate reuses it.",
                       icon=":material/model_training:")  # fmt: skip


def main() -> None:
    st.title("Build")
    st.write(
        "Tune how the RAG index and the LoRA adapter are built, then build them ahead of a comparison. "
        "Both are cached by their settings, so Evaluate reuses them instead of rebuilding."
    )
    try:
        corpus = load_corpus_cached(corpus_path())
    except (CorpusError, OSError) as exc:
        show_error(exc, "Choose a usable corpus on the Corpus page first")
        return
    presets = ["demo", "quick", "standard"]
    current = st.session_state.get("preset", "quick")
    preset = (
        st.segmented_control(
            "Start from preset",
            presets,
            default=current if current in presets else "quick",
            key="build-preset",
            help="demo: 12 held-out questions for a live demo; quick: 30 held-out questions, one epoch on the documents + generated Q/A + train Q/A on the top 12 layers, a small RAFT adapter (15-18 min cold measured on the fact corpus, 2 idle cores); standard: every held-out question, 4 epochs.",
        )
        or "quick"
    )
    st.session_state["preset"] = preset
    try:
        base = base_config(corpus, preset)
    except ConfigError as exc:
        show_error(exc, "corpus.toml [defaults]")
        return
    overrides: dict[str, dict[str, Any]] = {}

    rag, lora = st.columns(2, gap="large")
    with rag, st.container(border=True):
        st.subheader("RAG index")
        st.caption("Documents are split into chunks, embedded and indexed; the top chunks go into the prompt with citations.")
        st.markdown(f"**{SECTIONS['split'][0]}**")
        overrides["split"] = section_form("split", base, preset)
        st.markdown(f"**{SECTIONS['retrieval'][0]}**")
        overrides["retrieval"] = section_form("retrieval", base, preset, ["mode", "top_k"])
        st.markdown(f"**{SECTIONS['index'][0]}**")
        overrides["index"] = section_form("index", base, preset, ["index_type"])
        index_type = overrides["index"].get("index_type", base.index.index_type)
        retrieval_mode = overrides["retrieval"].get("mode", base.retrieval.mode)
        with st.expander("Advanced index and retrieval settings"):
            st.caption("Only the settings that matter for the index type and retrieval mode chosen above are shown.")
            extra = ["embedder", "embed_batch_size"] + (["hnsw_m"] if index_type == "hnsw" else []) + (["ivf_nlist"] if index_type == "ivf" else [])
            overrides["index"].update(section_form("index", base, preset, extra))
            if retrieval_mode == "hybrid":
                overrides["retrieval"].update(section_form("retrieval", base, preset, ["rrf_k"]))
        index_clicked = st.button("Build index", type="primary", icon=":material/database:", key="build-index")
    with lora, st.container(border=True):
        st.subheader("LoRA adapter")
        st.caption("A small low-rank adapter is trained on the corpus chunks and the train-split Q/A; held-out questions are never used.")
        overrides["train"] = section_form("train", base, preset, TRAIN_MAIN)
        with st.expander("Advanced training settings"):
            rest = [f for f in base.train.__dataclass_fields__ if f not in TRAIN_MAIN]
            overrides["train"].update(section_form("train", base, preset, rest))
        train_clicked = st.button("Train adapter", type="primary", icon=":material/model_training:", key="build-adapter")

    with st.expander("Generation, few-shot and evaluation settings (used by Evaluate)"):
        for name in ("generation", "few_shot", "eval"):
            st.markdown(f"**{SECTIONS[name][0]}**")
            overrides[name] = section_form(name, base, preset)

    overrides = {k: v for k, v in overrides.items() if v}
    try:
        build_config(str(corpus.root), preset, corpus.defaults, overrides, model=st.session_state["model"])
    except (ConfigError, TypeError) as exc:
        show_error(exc, "Invalid settings")
        return
    st.session_state["overrides"] = overrides
    if overrides:
        changes = ", ".join(code_span(f"{s}.{k}={v}") for s, vals in overrides.items() for k, v in vals.items())
        st.info(f"Your changes (also used by Evaluate): {changes}", icon=":material/edit:")

    if index_clicked:
        start("index", overrides, preset)
    if train_clicked:
        start("adapter", overrides, preset)

    running = dict(st.session_state.get("build_jobs", {}))
    for what in ("index", "adapter"):  # after a reload, or from another tab: keep showing a build still in progress
        if what not in running and (found := running_build(what, corpus.root)):
            running[what] = found
    if running:
        st.subheader("Build jobs")
        left, right = st.columns(2, gap="large")
        if "index" in running:
            with left, st.container(border=True):
                st.markdown("**Index**")
                if job_panel(running["index"], ("index",), key="index").get("state") == "done":
                    build_outcome(running["index"], "index")
        if "adapter" in running:
            with right, st.container(border=True):
                st.markdown("**Adapter** · training loss per step")
                if job_panel(running["adapter"], ("train",), key="adapter", show_loss=True).get("state") == "done":
                    build_outcome(running["adapter"], "adapter")


main()
