"""Live view of a background job (run or build): stage track, progress bar, message, loss curve, cancel."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app_pages.common import STAGE_LABELS, STATE_ICONS, elapsed_text, overall_progress, stage_caption
from app_pages.textview import escape_markdown
from workbench import fmt
from workbench.pipeline import jobs

TERMINAL = ("done", "failed", "cancelled", "missing")


def loss_chart(rows: list[dict[str, Any]]) -> None:
    """The training loss per optimiser step."""
    if not rows:
        st.caption("The loss curve appears after the first optimiser step.")
        return
    try:
        from workbench.reports.charts import loss_chart as make_loss_chart

        st.altair_chart(make_loss_chart(rows), width="stretch", theme=None)
    except (ImportError, TypeError, KeyError, ValueError):
        frame = pd.DataFrame(rows)[["step", "loss"]].set_index("step")
        st.line_chart(frame, height=220)


def eta_text(job_dir: Path, status: dict[str, Any], progress: float) -> str:
    """" · about 4 min left (estimated 12 min)" for a running job started with an estimate; empty otherwise."""
    if status.get("state") != "running":
        return ""
    from datetime import datetime

    from workbench.pipeline.estimate import remaining_s, time_progress
    from workbench.storage import read_json

    try:
        job = read_json(job_dir / "job.json", {}) or {}
        started = datetime.fromisoformat(status.get("started") or "").timestamp()
    except (OSError, ValueError, TypeError):
        return ""
    estimate = job.get("estimate_s")
    done = time_progress(job.get("estimate_stages") or {}, status.get("stage", ""), float(status.get("progress") or 0.0))
    left = remaining_s(estimate, max(0.0, time.time() - started), progress if done is None else done)
    if left is None:
        return ""
    return f" · {fmt.duration(left)} left (estimated {fmt.duration(estimate)} in all)" if left > 0 else " · finishing (past the estimate)"


def _render(job_dir: Path, stages: tuple[str, ...], status: dict[str, Any], key: str, show_loss: bool) -> None:
    state = status.get("state", "missing")
    stage = status.get("stage", "")
    icon = STATE_ICONS.get(state, "●")
    progress = overall_progress(stages, stage, status.get("progress", 0.0), state)
    where = "" if state in TERMINAL or not stage else f" · {escape_markdown(STAGE_LABELS.get(stage, stage))}"
    head = f"{icon} **{escape_markdown(state.capitalize())}**{where} · {elapsed_text(status)}{eta_text(job_dir, status, progress)}"
    st.markdown(head)
    st.markdown(stage_caption(stages, stage, state))
    st.progress(progress, text=escape_markdown(str(status.get("message") or "")[:160]))
    if state == "running":
        asked = jobs.cancel_requested_at(job_dir)
        if asked:
            st.caption("Cancel requested: the job stops at its next checkpoint.")
            jobs.terminate_if_overdue(job_dir, grace_s=20.0)
        elif st.button("Cancel", key=f"cancel-{key}", icon=":material/stop_circle:"):
            jobs.cancel(job_dir)
            st.toast("Cancel requested")
    if show_loss:
        loss_chart(jobs.train_log(job_dir))
    with st.expander("Worker log"):
        tail = jobs.log_tail(job_dir, 25)
        st.code(tail or "(nothing logged yet)", language=None)


@st.fragment(run_every=1.0)
def _live(job_dir: str, stages: tuple[str, ...], key: str, show_loss: bool) -> None:
    status = jobs.job_status(job_dir)
    _render(Path(job_dir), stages, status, key, show_loss)
    if status.get("state") in TERMINAL:
        st.rerun(scope="app")  # stop polling: the page re-renders with the final state


def job_panel(job_dir: str | Path, stages: tuple[str, ...], key: str, show_loss: bool = False) -> dict[str, Any]:
    """Render the job; polls every second while it runs. Returns its current status."""
    job_dir = Path(job_dir)
    status = jobs.job_status(job_dir)
    if status.get("state") in TERMINAL:
        _render(job_dir, stages, status, key, show_loss)
        if status["state"] == "failed":
            from app_pages.common import user_message

            st.error("Failed: " + escape_markdown(user_message(status.get("error") or "see the worker log")), icon=":material/error:")
        elif status["state"] == "cancelled":
            st.warning("Cancelled. Nothing was written to the scoreboard; start again when ready.", icon=":material/stop_circle:")
        elif status["state"] == "missing":
            st.warning(f"{job_dir.name}: the job folder has no status (it may have been deleted).")
    else:
        _live(str(job_dir), stages, key, show_loss)
    return status
