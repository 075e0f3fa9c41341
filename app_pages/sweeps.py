"""Sweeps: a grid of settings measured in one experiment; the grid as a table, accuracy vs cost with its Pareto front."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app_pages.common import label, show_error
from app_pages.textview import code_span, escape_markdown
from workbench import fmt
from workbench.experiments.sweep import default_sweeps_dir, list_sweeps, load_sweep
from workbench.reports.sweep_report import (
    SWEEP_FORMATS,
    cell_rows,
    methods_of,
    pareto_chart,
    render_csv,
    render_html,
    render_markdown,
    setting_chart,
)

HOW_TO = (
    "python -m workbench sweep --corpus corpora/kestrel_labs --methods zero-shot,rag --set eval.max_questions=6 "
    "--grid retrieval.top_k=2,4 --grid split.chunk_size=400,800"
)


def cell_table(data: dict) -> pd.DataFrame:
    """One row per cell: settings, state, accuracy (%) and $/1k queries per method, what was reused."""
    rows = cell_rows(data)
    methods = methods_of(data)
    out = []
    for row in rows:
        item = {"cell": row["cell"], **{k: str(row[k]) for k in data["grid"]}, "state": row["state"]}
        for m in methods:
            item[f"{label(m)} accuracy %"] = fmt.round_pct(row[f"{m} accuracy"])
            item[f"{label(m)} halluc. %"] = fmt.round_pct(row[f"{m} hallucination"])
            item[f"{label(m)} $/1k q"] = fmt.money(row[f"{m} $/1k q"])
        item["reused"] = row["reused"]
        item["wall"] = fmt.seconds(row["wall_s"])
        item["error"] = row["error"]
        out.append(item)
    return pd.DataFrame(out)


def open_cell(data: dict) -> None:
    done = [c for c in data["cells"] if c["state"] == "done"]
    if not done:
        return
    st.subheader("Open a cell's run")
    ids = [c["id"] for c in done]
    picked = st.selectbox("Cell", ids, key="sweep-cell", format_func=lambda i: f"{i} · " + ", ".join(f"{k}={v}" for k, v in next(c for c in done if c["id"] == i)["settings"].items()))
    cell = next(c for c in done if c["id"] == picked)
    st.caption(f"Run folder {code_span(cell['dir'])}: an ordinary run; Compare shows its scoreboard and every answer.")
    if st.button("Open in Compare", key="sweep-open", icon=":material/leaderboard:"):
        opened = [d for d in st.session_state.get("opened_run_dirs", []) if d != cell["dir"]]
        st.session_state["opened_run_dirs"] = [*opened, cell["dir"]]
        st.session_state["selected_run"] = f"{Path(cell['dir']).parent.name}/{cell['id']}"
        st.switch_page("app_pages/compare.py")


def downloads(data: dict, sweep_dir: Path) -> None:
    renders = {"html": (render_html, "text/html"), "md": (render_markdown, "text/markdown"), "csv": (render_csv, "text/csv")}
    cols = st.columns(len(SWEEP_FORMATS))
    for col, name in zip(cols, SWEEP_FORMATS, strict=True):
        if name == "json":
            import json

            from workbench.reports.sweep_report import _summary

            body, mime = json.dumps(_summary(data), indent=2, default=str), "application/json"
        else:
            render, mime = renders[name]
            body = render(data)
        col.download_button(f"Summary ({name.upper()})", body, file_name=f"{sweep_dir.name}-summary.{name}", mime=mime, key=f"sweep-dl-{name}")


def main() -> None:
    st.title("Sweeps")
    st.write("Many settings in one experiment: every cell is an ordinary run; which settings give the best accuracy for the cost?")
    root = default_sweeps_dir().resolve()
    sweeps = list_sweeps(root)
    if not sweeps:
        st.info(f"No sweeps in {code_span(str(root))} yet. Start one from a terminal:", icon=":material/info:")
        st.code(HOW_TO, language="bash")
        return
    names = [s["name"] for s in sweeps]
    by_name = {s["name"]: s for s in sweeps}
    name = st.selectbox("Sweep", names, key="sweep-name", format_func=lambda n: f"{n} · {by_name[n]['corpus']} · {by_name[n]['done']}/{by_name[n]['cells']} cells done")
    sweep_dir = Path(by_name[name]["dir"])
    try:
        data = load_sweep(sweep_dir)
    except (OSError, ValueError) as exc:
        show_error(exc, f"{sweep_dir}")
        return
    spec = data.get("spec") or {}
    states = [c["state"] for c in data["cells"]]
    st.caption(
        f"Corpus **{escape_markdown(Path(str(spec.get('corpus', ''))).name)}** · methods {escape_markdown(', '.join(label(m) for m in spec.get('methods', [])))} · "
        f"preset {escape_markdown(str(spec.get('preset', '')))} · {states.count('done')} of {len(states)} cells done"
    )
    best = data.get("best") or {}
    if best:
        cols = st.columns(len(best))
        for col, (method, b) in zip(cols, sorted(best.items(), key=lambda kv: methods_of(data).index(kv[0]) if kv[0] in methods_of(data) else 99), strict=True):
            col.metric(f"Best {label(method)}", fmt.pct(b["accuracy"]), help=f"{fmt.money(b.get('usd_per_1k_queries'))} per 1k queries in cell {b['cell']}")
            col.caption(escape_markdown(", ".join(f"{k}={v}" for k, v in b["settings"].items())))
    unfinished = [c for c in data["cells"] if c["state"] != "done"]
    if unfinished:
        st.warning(f"{len(unfinished)} cell(s) not done ({', '.join(sorted(set(c['state'] for c in unfinished)))}); rerun the same sweep command to finish them.", icon=":material/warning:")
    st.subheader("Grid")
    st.dataframe(cell_table(data), hide_index=True, width="stretch")
    st.subheader("Accuracy vs cost")
    try:
        st.altair_chart(pareto_chart(data), width="stretch")
        st.caption("One point per cell and method; ringed points are the Pareto front: no other setting is both as accurate and as cheap.")
        keys = list(data["grid"])
        cols = st.columns(min(len(keys), 2))
        for i, key in enumerate(keys):
            with cols[i % len(cols)]:
                st.altair_chart(setting_chart(data, key), width="stretch")
    except ValueError as exc:
        show_error(exc)
    open_cell(data)
    st.subheader("Export the sweep summary")
    downloads(data, sweep_dir)


main()
