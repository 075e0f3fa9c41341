"""Page 6 · Runs & export: run history, two runs side by side, report downloads, and reading a shared HTML report back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from app_pages.common import (
    STATE_ICONS,
    corpus_path,
    example_for_cached,
    example_glance,
    finished_runs,
    label,
    list_runs_cached,
    ordered,
    pct,
    run_choice_label,
    runs_dir,
    safe_upload_name,
    scoreboard_frame,
    show_error,
    uploads_dir,
)
from app_pages.textview import code_span, escape_markdown
from workbench import fmt as numfmt

FORMATS = {
    "html": ("HTML report", "text/html", "Standalone page with charts and the run's data embedded; opens offline."),
    "pdf": ("PDF report", "application/pdf", "A4 landscape: recommendation, scoreboard, comparisons, charts."),
    "md": ("Markdown", "text/markdown", "For a wiki or a pull request."),
    "csv": ("CSV predictions", "text/csv", "One row per method and question (spreadsheet-safe)."),
    "json": ("JSON", "application/json", "Everything: config, metrics, predictions."),
}


def planned_methods(run_dir: str) -> list[str]:
    """The methods a run was started with (for a run still going, before metrics.json exists)."""
    from workbench.pipeline.jobs import job_settings
    from workbench.storage import read_json

    try:
        return list((read_json(Path(run_dir) / "config.json", {}) or {}).get("methods") or job_settings(run_dir).get("methods") or [])
    except (OSError, ValueError):
        return []


def history() -> list[dict[str, Any]]:
    rows = list_runs_cached(str(runs_dir()))
    if not rows:
        st.info("No runs yet — start one on **Evaluate**.", icon=":material/info:")
        return []
    table = []
    for r in rows:
        best = r.get("best")
        acc = (r.get("methods") or {}).get(best, {}).get("accuracy") if best else None
        table.append(
            {
                "state": f"{STATE_ICONS.get(r['state'], '')} {r['state']}",
                "run": r["run_id"],
                "corpus": r.get("corpus", ""),
                "preset": r.get("preset", ""),
                "model": Path(str(r.get("model", ""))).name,
                "methods": ", ".join(label(m) for m in ordered(dict.fromkeys(r.get("methods") or planned_methods(r["dir"])))),
                "recommended": label(best) if best else "",
                "its accuracy": pct(acc),
                "started": (r.get("created") or "")[:19].replace("T", " "),
                "error": r.get("error") or "",
            }
        )
    st.dataframe(pd.DataFrame(table), hide_index=True, width="stretch", height=min(420, 38 + 35 * len(table)))
    return rows


def compare_two(done: list[dict[str, Any]]) -> None:
    if len(done) < 2:
        st.caption("Two finished runs are needed to compare them.")
        return
    ids = [r["run_id"] for r in done]
    by_id = {r["run_id"]: r for r in done}
    left, right = st.columns(2)
    a = left.selectbox("Run A", ids, index=1, format_func=lambda i: run_choice_label(by_id[i]), key="cmp-a")
    b = right.selectbox("Run B", ids, index=0, format_func=lambda i: run_choice_label(by_id[i]), key="cmp-b")
    ma, mb = by_id[a].get("methods") or {}, by_id[b].get("methods") or {}
    common = [m for m in ordered({**ma, **mb}) if m in ma and m in mb]
    if not common:
        st.info("These runs share no method.")
        return
    for m in common:
        cols = st.columns([1, 2, 2, 2])
        cols[0].markdown(f"**{label(m)}**")
        for col, key, name, inverse in (
            (cols[1], "accuracy", "Accuracy", False),
            (cols[2], "hallucination_rate", "Hallucination", True),
            (cols[3], "usd_per_1k_queries", "USD / 1k queries", True),
        ):
            va, vb = ma[m].get(key), mb[m].get(key)
            if vb is None:
                col.metric(name, "–")
                continue
            same = va is None or abs(vb - va) < (5e-5 if key == "usd_per_1k_queries" else 5e-3)
            if key == "usd_per_1k_queries":
                value, delta = numfmt.money(vb), None if same else ("+" if vb > va else "-") + numfmt.money(abs(vb - va))
            else:
                value, delta = pct(vb), None if same else f"{100 * (vb - va):+.0f} pts"
            col.metric(f"{name} (B)", value, delta, delta_color="inverse" if inverse else "normal", help="Delta is B minus A")


def _report_bytes(run_dir: str, fmt: str, recommendation: dict | None) -> Callable[[], bytes]:
    def make() -> bytes:
        from workbench.reports import export as report

        if fmt == "html":
            return report.render_html(run_dir, recommendation).encode("utf-8")
        if fmt == "pdf":
            return report.render_pdf(run_dir, recommendation)
        if fmt == "md":
            return report.render_markdown(run_dir, recommendation).encode("utf-8")
        if fmt == "csv":
            return report.render_csv(run_dir).encode("utf-8")
        return report.render_json(run_dir).encode("utf-8")

    return make


def export(done: list[dict[str, Any]]) -> None:
    if not done:
        st.caption("Finish a run to export a report.")
        return
    ids = [r["run_id"] for r in done]
    by_id = {r["run_id"]: r for r in done}
    chosen = st.session_state.get("selected_run")
    run_id = st.selectbox(
        "Run to export",
        ids,
        index=ids.index(chosen) if chosen in ids else 0,
        format_func=lambda i: run_choice_label(by_id[i]),
        key="export-run",
    )
    decision = st.session_state.get("decision") or {}
    recommendation = decision.get("rec") if decision.get("run_id") == run_id else None
    st.caption(
        "Reports use the priorities you set on **Decide**."
        if recommendation
        else "Reports use the default priorities (set your own on **Decide**)."
    )
    from workbench.reports.run_data import ReportError, load_run_data

    try:
        load_run_data(by_id[run_id]["dir"])
    except (ReportError, OSError, ValueError) as exc:
        show_error(exc, "This run cannot be exported")
        return
    cols = st.columns(len(FORMATS))
    for col, (fmt, (title, mime, helptext)) in zip(cols, FORMATS.items(), strict=True):
        col.download_button(
            title,
            data=_report_bytes(by_id[run_id]["dir"], fmt, recommendation),
            file_name=f"{run_id}.{fmt}",
            mime=mime,
            help=helptext,
            key=f"dl-{fmt}",
            icon=":material/download:",
            on_click="ignore",
            width="stretch",
        )


def load_back() -> None:
    from workbench.reports.html import load_report_html
    from workbench.reports.run_data import ReportError

    upload = st.file_uploader("A report exported from the workbench (.html)", type=["html", "htm"], key="report-upload")
    if upload is None:
        return
    path = uploads_dir() / "reports" / safe_upload_name(upload.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(upload.getvalue())
    try:
        data = load_report_html(path)
    except (ReportError, ValueError, UnicodeDecodeError) as exc:
        show_error(exc, upload.name)
        return
    metrics = (data or {}).get("metrics") or {}
    if not metrics.get("methods"):
        st.error(f"{upload.name}: the embedded data has no measured methods.", icon=":material/error:")
        return
    corpus = metrics.get("corpus") or {}
    cfg = data.get("config") or {}
    st.markdown(
        f"**{escape_markdown(corpus.get('title') or corpus.get('name', ''))}** · run {code_span(cfg.get('run_id', data.get('run_id', '?')))} · preset {escape_markdown(cfg.get('preset', '?'))}"
    )
    summary = (metrics.get("recommendation") or {}).get("summary")
    if summary:
        st.success(escape_markdown(summary), icon=":material/recommend:")
    board = scoreboard_frame(metrics)
    rates = ["Accuracy", "Hallucination", "Abstention", "Exact match"]
    board[rates] = board[rates].map(numfmt.pct)  # the one formatter: the same rounding as the headline above
    st.dataframe(board, hide_index=True, width="stretch")
    st.caption(f"{len(data.get('predictions') or [])} per-question predictions embedded.")


def main() -> None:
    st.title("Runs & export")
    st.write(
        "Every run on this machine, two runs side by side, and reports to share. A shared HTML report can be loaded back to read its numbers."
    )
    history()
    done = finished_runs()
    example = None if done else example_for_cached(corpus_path().name)
    if example:  # shown apart: never in the runs table, never compared with the user's runs
        st.subheader("Example run")
        example_glance(example)
    st.subheader("Compare two runs")
    compare_two(done)
    st.subheader("Export a report")
    if example:
        st.caption("Exporting the example run (shipped with the workbench) until you finish a run of your own.")
    export(done or ([example] if example else []))
    st.subheader("Open a shared report")
    load_back()


main()
