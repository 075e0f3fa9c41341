"""Shared app plumbing: per-session state, cached read-only loaders, run selection and job status panels."""

from __future__ import annotations

import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app_pages.textview import escape_markdown
from workbench import fmt
from workbench.config import METHODS, SELECTABLE, RunConfig
from workbench.methods.baselines import prior_flag_text
from workbench.methods.registry import label as decision_label
from workbench.methods.registry import method_order, methods_where
from workbench.paths import bundled_corpora, default_runs_dir, home, repo_root

STAGE_LABELS = {
    "starting": "Starting",
    "corpus": "Load corpus",
    "model": "Load model",
    "index": "Build index",
    "train": "Train adapter",
    "answer": "Answer questions",
    "score": "Score answers",
    "aggregate": "Aggregate",
    "adapter": "Train adapter",
    "done": "Done",
}
RUN_STAGES = ("corpus", "model", "index", "train", "answer", "score", "aggregate")
STATE_ICONS = {"done": "✓", "running": "●", "failed": "✗", "cancelled": "■", "interrupted": "!", "missing": "?", "unreadable": "⚠"}


# ------------------------------------------------------------------------------------------------ session state


def default_corpus() -> Path:
    """``WORKBENCH_DEFAULT_CORPUS``, else the bundled fact corpus (kestrel_labs), else the first bundled one."""
    env = os.environ.get("WORKBENCH_DEFAULT_CORPUS")
    if env:
        path = Path(env)
        return path if path.is_absolute() else (repo_root() / path if not path.exists() else path.resolve())
    bundled = bundled_corpora()
    if "kestrel_labs" in bundled:
        return bundled["kestrel_labs"]
    return next(iter(bundled.values()), repo_root() / "corpora" / "kestrel_labs")


def default_model() -> str:
    """``WORKBENCH_MODEL`` (e.g. a tiny test model folder), else the configured default generator."""
    return os.environ.get("WORKBENCH_MODEL") or RunConfig().model


def default_methods() -> list[str]:
    """``WORKBENCH_METHODS`` (comma-separated, e.g. ``zero-shot,rag`` for a fast demo on a small machine), else the default methods."""
    env = [m.strip() for m in os.environ.get("WORKBENCH_METHODS", "").split(",") if m.strip() in SELECTABLE]
    return env or list(METHODS)


def init_session() -> None:
    """Per-browser-session defaults; nothing here is shared between sessions."""
    ss = st.session_state
    ss.setdefault("session_id", uuid.uuid4().hex[:12])
    ss.setdefault("corpus_path", str(url_corpus() or default_corpus()))
    ss.setdefault("model", default_model())
    ss.setdefault("preset", "quick")
    ss.setdefault("methods", default_methods())
    ss.setdefault("overrides", {})
    ss.setdefault("active_run", None)
    ss.setdefault("build_jobs", {})
    ss.setdefault("selected_run", None)


def url_corpus() -> Path | None:
    """The bundled corpus named in the page address (``?corpus=NAME``), so a reload keeps the choice; only bundled names count."""
    try:
        name = st.query_params.get("corpus")
    except Exception:  # noqa: BLE001 - no address outside a browser session
        return None
    return bundled_corpora().get(name) if name else None


def corpus_path() -> Path:
    return Path(st.session_state["corpus_path"])


def runs_dir() -> Path:
    return default_runs_dir().resolve()


def uploads_dir() -> Path:
    """This browser session's private upload folder under WORKBENCH_HOME/uploads/."""
    path = home() / "uploads" / st.session_state["session_id"]
    path.mkdir(parents=True, exist_ok=True)
    return path


def safe_upload_name(name: str) -> str:
    """A file name safe to store: no folders, no hidden files, only plain characters."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).lstrip("._") or "file"
    return base[:120]


def label(method: str) -> str:
    return decision_label(method)


def pct(x: float | None, digits: int = 0) -> str:
    return "–" if x is None else fmt.pct(x, digits)


def ci(interval: list | tuple | None) -> str:
    return fmt.pct_ci(interval)


def num(x: float | None, fmt: str = "{:.2f}") -> str:
    return "–" if x is None else fmt.format(x)


# ------------------------------------------------------------------------------------------------ tables


def ordered(methods: dict[str, Any]) -> list[str]:
    return sorted(methods, key=method_order)


def scoreboard_frame(metrics: dict[str, Any]) -> pd.DataFrame:
    """One row per method: quality with intervals, then cost."""
    rows = []
    for name in ordered(metrics.get("methods") or {}):
        m = metrics["methods"][name]
        rows.append(
            {
                "Method": label(name) + (" (baseline)" if m.get("baseline") else ""),
                "Accuracy": m.get("accuracy"),
                "Accuracy 95% CI": ci(m.get("accuracy_ci")),
                "Hallucination": m.get("hallucination_rate"),
                "Hallucination 95% CI": ci(m.get("hallucination_ci")),
                "Abstention": m.get("abstention_rate"),
                "F1": m.get("f1"),
                "Exact match": m.get("exact_match"),
                "Median per query (p50)": fmt.seconds(m.get("latency_p50_s")),
                "Slowest 5% per query (p95)": fmt.seconds(m.get("latency_p95_s")),
                "Latency probe (questions)": m.get("latency_probe_n"),
                "Batched answers / s": m.get("throughput_qps"),
                "USD / 1k queries": fmt.money(m.get("usd_per_1k_queries")),
                "USD / correct answer": fmt.money(m.get("cost_per_correct_usd")),
                "Build time": fmt.seconds(m.get("build_seconds")),
                "Index / adapter size (MB)": m.get("artifact_mb"),
                "Model weights (MB)": m.get("model_mb"),
                "Peak RAM (MB)": m.get("peak_rss_mb"),
                "Questions": m.get("n"),
                "Versus prior": "baseline" if m.get("baseline") else prior_flag_text(metrics, name),
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------ cached loaders


def folder_signature(path: Path) -> tuple[int, int, int]:
    """(files, total bytes, newest mtime) of a folder: a cheap cache key that changes when any file does."""
    count = size = newest = 0
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            try:
                st_ = os.stat(os.path.join(root, name))
            except OSError:
                continue
            count += 1
            size += st_.st_size
            newest = max(newest, st_.st_mtime_ns)
    return count, size, newest


@st.cache_resource(show_spinner="Reading the corpus…", max_entries=16)
def _load_corpus_cached(path: str, signature: tuple[int, int, int], test_fraction: float, seed: int) -> Any:
    from workbench.corpus.load import load_corpus

    return load_corpus(path, allow_unreadable=True, test_fraction=test_fraction, seed=seed)


def load_corpus_cached(path: str | Path, test_fraction: float = 0.4, seed: int = 0) -> Any:
    """The corpus as a run reads it (unreadable files skipped), shared read-only between sessions by path+mtime."""
    path = Path(path).resolve()
    return _load_corpus_cached(str(path), folder_signature(path), test_fraction, seed)


@st.cache_resource(show_spinner="Checking the corpus…", max_entries=16)
def _check_corpus_cached(path: str, signature: tuple[int, int, int]) -> Any:
    from workbench.corpus.check import check_corpus

    return check_corpus(path)


def check_corpus_cached(path: str | Path) -> Any:
    """check_corpus's report (counts and every problem), shared read-only by path+mtime."""
    path = Path(path).resolve()
    return _check_corpus_cached(str(path), folder_signature(path))


@st.cache_data(ttl=3, show_spinner=False)
def list_runs_cached(folder: str) -> list[dict[str, Any]]:
    """Run listing (cheap; refreshed every few seconds)."""
    from workbench.pipeline.runstore import list_runs

    return list_runs(folder)


def _run_signature(run_dir: Path) -> tuple:
    return tuple((p.name, p.stat().st_mtime_ns) for p in sorted(run_dir.glob("*.json*")) if p.is_file())


@st.cache_data(max_entries=32, show_spinner="Loading the run…")
def _load_run_cached(run_dir: str, signature: tuple) -> dict[str, Any]:
    from workbench.pipeline.runstore import load_run

    return load_run(run_dir)


def load_run_cached(run_dir: str | Path) -> dict[str, Any]:
    """config, meta, status, metrics and predictions of a run folder (re-read when its files change)."""
    run_dir = Path(run_dir)
    return _load_run_cached(str(run_dir), _run_signature(run_dir))


def finished_runs(corpus_name: str | None = None) -> list[dict[str, Any]]:
    rows = [r for r in list_runs_cached(str(runs_dir())) if r["state"] == "done"]
    return [r for r in rows if corpus_name is None or r["corpus"] == corpus_name]


def opened_runs() -> list[dict[str, Any]]:
    """Finished runs opened from elsewhere this session (a sweep's cells), listed as ``<sweep>/<cell>``."""
    from workbench.pipeline.runstore import list_runs

    rows = []
    for folder in st.session_state.get("opened_run_dirs", []):
        folder = Path(folder)
        for r in list_runs(folder.parent):
            if r["dir"] == str(folder) and r["state"] == "done":
                rows.append({**r, "run_id": f"{folder.parent.name}/{r['run_id']}"})
    return rows


def run_choice_label(row: dict[str, Any]) -> str:
    created = (row.get("created") or "")[:16].replace("T", " ")
    return f"{row['run_id']} · {row.get('corpus', '')} · {row.get('preset', '')} · {created}"


@st.cache_data(ttl=30, show_spinner=False)
def _example_for_cached(corpus_name: str | None, root: str, signature: tuple[int, int, int]) -> dict[str, Any] | None:
    from workbench.pipeline.examples import example_for

    try:
        return example_for(corpus_name, root)
    except OSError:
        return None


def example_for_cached(corpus_name: str | None) -> dict[str, Any] | None:
    """The shipped example run for this corpus (else the fact corpus's); None when no example is present."""
    from workbench.pipeline.examples import examples_dir

    root = examples_dir().resolve()
    return _example_for_cached(corpus_name, str(root), folder_signature(root) if root.is_dir() else (0, 0, 0))


def example_notice(row: dict[str, Any]) -> None:
    """The label that keeps a shipped example apart from the user's own runs."""
    from workbench.pipeline.examples import example_label

    st.info(
        f"**{example_label(row)}** · corpus {escape_markdown(row.get('corpus', ''))} · shipped with the workbench, not one of your runs. "
        "Start your own on **Evaluate**.",
        icon=":material/auto_stories:",
    )


def select_run(key: str, *, prefer_corpus: bool = True) -> dict[str, Any] | None:
    """A run picker shared by Compare and Decide: defaults to this session's selection, else the newest run of the corpus.

    With no finished run of the user's own, the shipped example run (labelled as such); None when there is neither.
    """
    runs = finished_runs() + opened_runs()
    if not runs:
        example = example_for_cached(corpus_path().name)
        if example:
            example_notice(example)
        return example
    ids = [r["run_id"] for r in runs]
    chosen = st.session_state.get("selected_run")
    if chosen not in ids:
        mine = [r for r in runs if r["corpus"] == corpus_path().name] if prefer_corpus else []
        chosen = (mine or runs)[0]["run_id"]
    by_id = {r["run_id"]: r for r in runs}
    picked = st.selectbox(
        "Run", ids, index=ids.index(chosen), format_func=lambda i: run_choice_label(by_id[i]), key=key, bind="query-params",
        help="Your finished runs on this machine (the run is kept in the page address, so a reload keeps it).",
    )
    st.session_state["selected_run"] = picked
    return by_id[picked]


_ABS_PATH = re.compile(r"(?<![\w.])/(?:[^\s:;,'\"()<>/]+/)*?([^\s:;,'\"()<>/]+/)?([^\s:;,'\"()<>/]+)(?=[\s:;,'\"()<>]|$)")
_ELEMENT = re.compile(r"\s*\(?<[a-z]+[^>]*>\)?")
_CLI_HINT = re.compile(r"\s*with: python -m workbench [^;]*")


def user_message(text: str) -> str:
    """A library message for the page: absolute paths cut to their last two parts, no HTML element names, no CLI hints."""
    text = _ABS_PATH.sub(lambda m: (m.group(1) or "") + m.group(2), text)
    text = _ELEMENT.sub("", text)
    return _CLI_HINT.sub("", text).strip()


def show_error(exc: BaseException, what: str = "") -> None:
    """A library error as one line (no traceback), without internal paths."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    st.error(escape_markdown(user_message(f"{what}{': ' if what else ''}{text}")), icon=":material/error:")


# ------------------------------------------------------------------------------------------------ job panels


def run_stages(run_dir: str | Path) -> tuple[str, ...]:
    """The stages a run goes through: index only with a RAG method, training only with a LoRA method."""
    from workbench.storage import read_json

    try:
        methods = (read_json(Path(run_dir) / "config.json", {}) or {}).get("methods")
        if not methods:  # the worker has not written config.json yet: read the command it was started with
            cmd = (read_json(Path(run_dir) / "job.json", {}) or {}).get("command") or []
            methods = cmd[cmd.index("--methods") + 1].split(",") if "--methods" in cmd else list(METHODS)
    except (ValueError, IndexError):
        methods = list(METHODS)
    skip = set()
    if not any(m in methods_where(needs_index=True, baseline=False) for m in methods):
        skip.add("index")
    if not any(m in methods_where(needs_adapter=True) for m in methods):
        skip.add("train")
    return tuple(s for s in RUN_STAGES if s not in skip)


def stage_caption(stages: tuple[str, ...], current: str, state: str) -> str:
    """A one-line stage track like "✔ Load corpus → ● Build index → ○ Answer"."""
    parts = []
    index = stages.index(current) if current in stages else -1
    for i, stage in enumerate(stages):
        name = STAGE_LABELS.get(stage, stage)
        if state == "done" or i < index:
            parts.append(f"✔ {name}")
        elif i == index:
            parts.append(f"**● {name}**")
        else:
            parts.append(f"○ {name}")
    return " → ".join(parts)


def overall_progress(stages: tuple[str, ...], stage: str, fraction: float, state: str) -> float:
    if state == "done":
        return 1.0
    if stage not in stages:
        return 0.0
    return min(1.0, (stages.index(stage) + max(0.0, min(1.0, float(fraction or 0)))) / len(stages))


def elapsed_text(status: dict[str, Any]) -> str:
    from datetime import datetime

    started = status.get("started") or status.get("updated")
    if not started:
        return ""
    try:
        t0 = datetime.fromisoformat(started).timestamp()
    except ValueError:
        return ""
    end = time.time()
    if status.get("state") in ("done", "failed", "cancelled") and status.get("updated"):
        try:
            end = datetime.fromisoformat(status["updated"]).timestamp()
        except ValueError:
            pass
    secs = max(0, int(end - t0))
    return f"{secs // 60} min {secs % 60:02d} s" if secs >= 60 else f"{secs} s"


def example_glance(row: dict[str, Any]) -> None:
    """A shipped example run at a glance: its label, recommendation and scoreboard (quality and cost per method)."""
    try:
        run = load_run_cached(row["dir"])
    except (OSError, ValueError):
        return
    metrics = run.get("metrics") or {}
    methods = metrics.get("methods") or {}
    if not methods:
        return
    from workbench.pipeline.examples import example_label

    corpus = metrics.get("corpus") or {}
    with st.container(border=True):
        st.markdown(f"#### :material/auto_stories: {example_label(row)}")
        st.caption(
            f"What a finished comparison looks like: corpus **{escape_markdown(corpus.get('title') or row.get('corpus', ''))}**, "
            f"{corpus.get('n_test_evaluated', '?')} held-out questions, preset {escape_markdown(str((run.get('config') or {}).get('preset', '?')))}. "
            "Shipped with the workbench; your own runs are listed apart."
        )
        rec = metrics.get("recommendation") or {}
        if rec.get("summary"):
            (st.success if rec.get("best") else st.warning)(escape_markdown(rec["summary"]), icon=":material/recommend:")
        frame = scoreboard_frame(metrics)
        shown = pd.DataFrame(
            {
                "Method": frame["Method"],
                "Accuracy": frame["Accuracy"].map(lambda x: pct(x)),
                "Accuracy 95% CI": frame["Accuracy 95% CI"],
                "Hallucination": frame["Hallucination"].map(lambda x: pct(x)),
                "Median per query (p50)": frame["Median per query (p50)"],
                "USD / 1k queries": frame["USD / 1k queries"],
            }
        )
        with st.container(key="example-scoreboard"):
            # the method column wide enough for "Oracle passage (baseline)"
            st.dataframe(shown, hide_index=True, width="stretch", column_config={"Method": st.column_config.TextColumn(width="medium")})
        left, right = st.columns(2)
        left.page_link("app_pages/compare.py", label="Open the example's scoreboard and answers", icon=":material/leaderboard:")
        right.page_link("app_pages/decide.py", label="Weigh it on Decide", icon=":material/balance:")
