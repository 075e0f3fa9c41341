"""Page 3 · Evaluate: choose methods and preset, run the comparison in the background with live per-stage progress; cancel."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app_pages.common import STAGE_LABELS, corpus_path, label, list_runs_cached, load_corpus_cached, run_stages, runs_dir, show_error
from app_pages.jobview import job_panel
from app_pages.textview import code_span, escape_markdown
from workbench import fmt
from workbench.config import METHODS, SELECTABLE, ConfigError, EvalConfig, build_config, help_of
from workbench.corpus.loaders import CorpusError
from workbench.methods.registry import method_spec
from workbench.pipeline import jobs
from workbench.pipeline.estimate import estimate_run

METHOD_HELP = {m: method_spec(m).help + (" (opt-in: not in the default list)" if method_spec(m).opt_in else "") for m in SELECTABLE}


PRESET_HELP = {
    "demo": "Live demo: 12 held-out questions, a few minutes with zero-shot, few-shot and RAG. Trades away precision: "
    "95% intervals are about ±25 points wide, so only large differences count; LoRA still trains in full.",
    "quick": "30 held-out questions; one epoch on the documents, Q/A generated from them and the train Q/A, plus a small RAFT adapter: 15-18 min cold measured on the fact corpus (2 idle cores), about 9 s when nothing changed.",
    "standard": "Every held-out question, continued pre-training plus Q/A training, groundedness judged: the most careful, the slowest.",
}


def adopt_running_job() -> None:
    """After a reload the session is new: follow the newest run still running here and restore the settings it was started with."""
    ss = st.session_state
    if ss.get("active_run"):
        return  # this session follows a run already (running or just finished)
    running = jobs.running_jobs(runs_dir())
    if not running:
        return
    job_dir = running[0]
    ss["active_run"] = str(job_dir)
    chosen = jobs.job_settings(job_dir)
    if chosen.get("methods"):
        ss["methods"] = [m for m in chosen["methods"] if m in SELECTABLE]
        ss.pop("eval-methods", None)
    if chosen.get("preset") in PRESET_HELP:
        ss["preset"] = chosen["preset"]
        ss.pop("eval-preset", None)
    if chosen.get("model"):
        ss["model"] = chosen["model"]
        ss.pop("eval-model", None)
    st.toast(f"Found the running comparison {job_dir.name} again", icon=":material/sync:")


def estimate_for(corpus, chosen: dict) -> dict | None:
    """The cold-run estimate for these settings on this machine (None if the settings cannot be built)."""
    try:
        cfg = build_config(str(corpus.root), chosen["preset"], corpus.defaults, chosen["overrides"], methods=chosen["methods"], model=chosen["model"], seed=chosen["seed"])
    except (ConfigError, TypeError):
        return None
    return estimate_run(cfg, n_docs=len(corpus.documents), n_train=len(corpus.train), n_test=len(corpus.test), kind=corpus.kind)


def show_estimate(est: dict) -> None:
    parts = " · ".join(f"{STAGE_LABELS.get(k, k)} {fmt.duration(v)}" for k, v in est["stages"].items() if v >= 0.5)
    basis = "this machine's measured speed" if est["measured"] else "the reference speed of a 2-core CPU (nothing measured here yet)"
    st.markdown(f":material/schedule: **Estimated duration: {fmt.duration(est['total_s'])}** for {est['questions']} held-out questions")
    st.caption(f"{parts}. From {basis}; cached indexes, adapters and answers make it faster.")


def settings(corpus) -> dict | None:
    """The run settings chosen on this page (plus the Build page's edits); None when they are invalid."""
    ss = st.session_state
    with st.container(border=True):
        left, right = st.columns([3, 2], gap="large")
        with left:
            methods = st.multiselect(
                "Methods",
                list(SELECTABLE),  # the default methods, then the opt-in ones (IA3, prompt tuning)
                default=[m for m in ss.get("methods", METHODS) if m in SELECTABLE],
                format_func=label,
                help=" · ".join(f"{label(m)}: {h}" for m, h in METHOD_HELP.items()),
                key="eval-methods",
                bind="query-params",
            )
            preset = (
                st.segmented_control(
                    "Preset",
                    list(PRESET_HELP),
                    default=ss.get("preset", "quick") if ss.get("preset") in PRESET_HELP else "quick",
                    help=" · ".join(f"{p}: {h}" for p, h in PRESET_HELP.items()),
                    key="eval-preset",
                    bind="query-params",
                )
                or "quick"
            )
            st.caption(PRESET_HELP[preset])
        with right:
            model = st.text_input(
                "Generator model",
                value=ss["model"],
                help="A bundled name (qwen2.5-0.5b, gemma3-270m, smollm2-135m), a local HF folder or a .gguf file.",
                key="eval-model",
            )
            c1, c2 = st.columns(2)
            seed = c1.number_input(
                "Seed", value=0, step=1, min_value=0, help="Seed for splits, sampling, few-shot draws and training.", key="eval-seed"
            )
            price = c2.number_input(
                "USD per hour",
                value=float(ss.get("overrides", {}).get("eval", {}).get("usd_per_hour", EvalConfig().usd_per_hour)),
                min_value=0.0,
                step=0.05,
                format="%.2f",
                help=help_of(EvalConfig, "usd_per_hour"),
                key="eval-price",
            )
    ss["methods"], ss["preset"], ss["model"] = methods, preset, model.strip() or ss["model"]
    overrides = {k: dict(v) for k, v in ss.get("overrides", {}).items()}
    if abs(price - EvalConfig().usd_per_hour) > 1e-9:
        overrides.setdefault("eval", {})["usd_per_hour"] = price
    if not methods:
        st.warning("Choose at least one method.")
        return None
    try:
        build_config(str(corpus.root), preset, corpus.defaults, overrides, methods=methods, model=ss["model"], seed=int(seed))
    except (ConfigError, TypeError) as exc:
        show_error(exc, "Invalid settings")
        return None
    edits = ", ".join(code_span(f"{s}.{k}={v}") for s, vals in overrides.items() for k, v in vals.items())
    if edits:
        st.caption(f"Custom settings from the Build page: {edits}")
    return {"methods": methods, "preset": preset, "model": ss["model"], "seed": int(seed), "overrides": overrides}


def main() -> None:
    st.title("Evaluate")
    st.write(
        "Answer the held-out questions with each method and score them. The run continues in the background "
        "if you close or reload the page; come back here or to Compare to see it."
    )
    try:
        corpus = load_corpus_cached(corpus_path())
    except (CorpusError, OSError) as exc:
        show_error(exc, "Choose a usable corpus on the Corpus page first")
        return
    adopt_running_job()
    chosen = settings(corpus)
    est = estimate_for(corpus, chosen) if chosen else None
    st.caption(
        f"Corpus **{escape_markdown(corpus.title or corpus.root.name)}** · {len(corpus.documents)} documents · "
        f"{len(corpus.test)} held-out questions, {est['questions'] if est else '?'} of them scored with this preset"
    )
    if est:
        show_estimate(est)

    active = st.session_state.get("active_run")
    busy = jobs.running_jobs(runs_dir())
    confirmed = True
    if busy:
        names = ", ".join(p.name for p in busy[:3])
        confirmed = st.checkbox(
            f"A comparison is already running ({names}). Start another one anyway? Both share this machine's cores and each takes longer.",
            key="confirm-second",
        )
    if st.button("Start comparison", type="primary", icon=":material/play_arrow:", disabled=chosen is None or not confirmed, key="start-run"):
        try:
            job = jobs.start_run(corpus_path(), out_dir=runs_dir(), estimate=est, **chosen)
        except jobs.JobError as exc:
            show_error(exc, "Could not start the comparison")
        else:
            st.session_state["active_run"] = str(job.job_dir)
            st.session_state.pop("confirm-second", None)
            st.rerun()

    if active:
        st.subheader(f"Run {code_span(Path(active).name)}")
        status = job_panel(active, run_stages(active), key="run")
        if status.get("state") == "done":
            st.success("Finished. The scoreboard, charts and per-question answers are on Compare.", icon=":material/check_circle:")
            if st.button("Open the scoreboard", type="primary", icon=":material/leaderboard:", key="open-compare"):
                st.session_state["selected_run"] = Path(active).name
                st.switch_page("app_pages/compare.py")
    else:
        st.info("No comparison started in this browser session yet. Pick methods and press **Start comparison**.", icon=":material/info:")

    running = jobs.job_status(active).get("state") == "running" if active else False
    others = [r for r in list_runs_cached(str(runs_dir())) if r["state"] == "running" and r["dir"] != active]
    if others:
        st.markdown("**Also running on this machine** (started in another tab, before a reload, or from the command line)")
        for r in others[:5]:
            left, right = st.columns([4, 1])
            left.markdown(f"{code_span(r['run_id'])} · corpus {code_span(r['corpus'])}")
            if right.button("Follow", key=f"follow-{r['run_id']}", disabled=running):
                st.session_state["active_run"] = r["dir"]
                st.rerun()


main()
