"""A sweep's results as tables, a Pareto front and charts, and its summary export (HTML, Markdown, CSV, JSON).

Every figure comes from sweep.json, whose per-cell metrics are read from each cell's metrics.json (and so
trace back to its predictions.jsonl). Text is escaped as in workbench.report; numbers go through workbench.fmt.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from .. import fmt
from ..errors import WorkbenchError
from ..experiments.sweep import load_sweep
from ..methods.registry import label, method_order
from ..storage import atomic_write_bytes
from .export import csv_safe, md_cell
from .html import CSS, esc

SWEEP_FORMATS = ("html", "md", "csv", "json")
COST_KEY = "usd_per_1k_queries"


class SweepReportError(WorkbenchError, ValueError):
    """The sweep cannot be reported on; the message says why."""


def methods_of(data: dict[str, Any]) -> list[str]:
    """The compared methods (baseline reference rows stay in each run folder, not in the sweep's tables)."""
    found = {m for c in data["cells"] for m, v in (c.get("metrics") or {}).items() if not v.get("baseline")}
    return sorted(found, key=method_order)


def reuse_text(reuse: dict[str, Any]) -> str:
    """``index reused · answers cached: zero-shot 100%, rag 0%``."""
    parts = []
    for what in ("index", "adapter"):
        if what in reuse:
            parts.append(f"{what} {'reused' if reuse[what].get('cache_hit') else 'built'}")
    cached = reuse.get("answers_cached") or {}
    if cached:
        parts.append("answers cached: " + ", ".join(f"{label(m)} {fmt.pct(v)}" for m, v in sorted(cached.items(), key=lambda kv: method_order(kv[0]))))
    return " · ".join(parts)


def cell_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per cell: id, swept settings, state, accuracy / cost per method, what was reused, its run folder."""
    keys = list(data.get("grid") or {})
    rows = []
    for cell in data["cells"]:
        row: dict[str, Any] = {"cell": cell["id"], **{k: cell["settings"].get(k) for k in keys}, "state": cell["state"]}
        for method in methods_of(data):
            m = (cell.get("metrics") or {}).get(method) or {}
            row[f"{method} accuracy"] = m.get("accuracy")
            row[f"{method} hallucination"] = m.get("hallucination_rate")
            row[f"{method} $/1k q"] = m.get(COST_KEY)
        row["reused"] = reuse_text(cell.get("reuse") or {})
        row["wall_s"] = cell.get("wall_s")
        row["error"] = cell.get("error") or ""
        row["dir"] = cell.get("dir", "")
        rows.append(row)
    return rows


def pareto_front(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``points`` with ``pareto`` set: True where no other point is at least as accurate and as cheap, and better in one."""
    for p in points:
        p["pareto"] = not any(
            q is not p and q["accuracy"] >= p["accuracy"] and q["cost"] <= p["cost"] and (q["accuracy"] > p["accuracy"] or q["cost"] < p["cost"])
            for q in points
        )
    return points


def points(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One point per (done cell, measured method, baselines left out): accuracy, cost, the cell's settings, on the front or not."""
    out = []
    for cell in data["cells"]:
        if cell["state"] != "done":
            continue
        for method, m in (cell.get("metrics") or {}).items():
            if m.get("baseline") or m.get("accuracy") is None or m.get(COST_KEY) is None:
                continue
            out.append({"cell": cell["id"], "method": method, "label": label(method), "accuracy": m["accuracy"], "cost": m[COST_KEY],
                        "hallucination": m.get("hallucination_rate"), **{f"setting:{k}": v for k, v in cell["settings"].items()}})  # fmt: skip
    return pareto_front(out)


# ---------------------------------------------------------------- charts (altair; the app and the HTML export)


def pareto_chart(data: dict[str, Any]) -> Any:
    """Accuracy vs cost per 1,000 queries, one point per cell and method; the Pareto front joined by a line, its points ringed."""
    import altair as alt
    import pandas as pd

    from ..methods.registry import colour
    from .charts import style_chart

    pts = points(data)
    if not pts:
        raise SweepReportError("no finished cell has accuracy and cost yet; run the sweep first")
    df = pd.DataFrame(pts)
    df["accuracy_pct"] = [fmt.round_pct(a, 1) for a in df["accuracy"]]
    df["front"] = ["Pareto front" if p else "dominated" for p in df["pareto"]]
    methods = sorted({p["method"] for p in pts}, key=method_order)
    labels = [label(m) for m in methods]
    color = alt.Color("label:N", title="Method", scale=alt.Scale(domain=labels, range=[colour(m) for m in methods]))
    tip = ["cell:N", "label:N", alt.Tooltip("accuracy_pct:Q", title="accuracy %"), alt.Tooltip("cost:Q", title="$ per 1k queries", format=".5f")]
    base = alt.Chart(df).encode(x=alt.X("cost:Q", title="$ per 1,000 queries", scale=alt.Scale(zero=False)),
                                y=alt.Y("accuracy_pct:Q", title="Accuracy (%)", scale=alt.Scale(domain=[0, 100])))  # fmt: skip
    dots = base.mark_circle(size=90, opacity=0.85).encode(color=color, tooltip=tip)
    front_df = df[df["pareto"]].sort_values("cost")
    line = alt.Chart(front_df).mark_line(color="#1f2937", strokeDash=[4, 3]).encode(x="cost:Q", y="accuracy_pct:Q", order="cost:Q")
    rings = alt.Chart(front_df).mark_point(size=260, shape="circle", filled=False, color="#1f2937", strokeWidth=2).encode(
        x="cost:Q", y="accuracy_pct:Q", tooltip=tip
    )
    return style_chart(line + dots + rings, "Accuracy vs cost (ringed: Pareto front)")


def setting_chart(data: dict[str, Any], key: str) -> Any:
    """Accuracy against one swept setting, a line per method (the other settings vary within each point's spread)."""
    import altair as alt
    import pandas as pd

    from ..methods.registry import colour
    from .charts import style_chart

    pts = points(data)
    if not pts:
        raise SweepReportError("no finished cell yet; run the sweep first")
    df = pd.DataFrame(pts)
    df["value"] = [str(v) for v in df[f"setting:{key}"]]
    df["accuracy_pct"] = [fmt.round_pct(a, 1) for a in df["accuracy"]]
    methods = sorted({p["method"] for p in pts}, key=method_order)
    labels = [label(m) for m in methods]
    order = [str(v) for v in data["grid"][key]]
    color = alt.Color("label:N", title="Method", scale=alt.Scale(domain=labels, range=[colour(m) for m in methods]))
    x = alt.X("value:N", title=key, sort=order)
    mean = alt.Chart(df).mark_line(point=True).encode(x=x, y=alt.Y("mean(accuracy_pct):Q", title="Accuracy (%), mean over other settings",
                                                                   scale=alt.Scale(domain=[0, 100])), color=color)  # fmt: skip
    each = alt.Chart(df).mark_tick(opacity=0.5).encode(x=x, y="accuracy_pct:Q", color=color, tooltip=["cell:N", "label:N", "accuracy_pct:Q"])
    return style_chart(mean + each, f"Accuracy vs {key}")


# ---------------------------------------------------------------- text and exports


def _table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    keys = list(data.get("grid") or {})
    methods = methods_of(data)
    head = ["cell", *keys, "state"] + [f"{label(m)} acc." for m in methods] + [f"{label(m)} $/1k q" for m in methods] + ["reused"]
    rows = []
    for cell in data["cells"]:
        metrics = cell.get("metrics") or {}
        accs = [fmt.pct((metrics.get(m) or {}).get("accuracy")) for m in methods]
        costs = [fmt.money((metrics.get(m) or {}).get(COST_KEY)) for m in methods]
        rows.append([cell["id"], *[str(cell["settings"].get(k)) for k in keys], cell["state"], *accs, *costs, reuse_text(cell.get("reuse") or {})])
    return head, rows


def _best_lines(data: dict[str, Any]) -> list[str]:
    out = []
    for method, b in sorted((data.get("best") or {}).items(), key=lambda kv: method_order(kv[0])):
        settings = ", ".join(f"{k}={v}" for k, v in b["settings"].items())
        out.append(f"{label(method)}: {fmt.pct(b['accuracy'])} at {fmt.money(b.get(COST_KEY))} per 1k queries with {settings} (cell {b['cell']})")
    return out


def _front_lines(data: dict[str, Any]) -> list[str]:
    front = sorted((p for p in points(data) if p["pareto"]), key=lambda p: p["cost"])
    return [f"{p['label']} in {p['cell']}: {fmt.pct(p['accuracy'])} at {fmt.money(p['cost'])} per 1k queries" for p in front]


def format_sweep(data: dict[str, Any]) -> str:
    """The sweep as plain text for the terminal."""
    head, rows = _table(data)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    lines.insert(1, "-" * len(lines[0]))
    best = _best_lines(data)
    return "\n".join(lines + (["best per method:"] + [f"  {b}" for b in best] if best else []))


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    return {"name": data.get("name"), "spec": data.get("spec"), "grid": data.get("grid"), "counts": data.get("counts"), "best": data.get("best"),
            "pareto_front": [p for p in points(data) if p["pareto"]], "cells": cell_rows(data), "sessions": data.get("sessions", [])}  # fmt: skip


def render_html(data: dict[str, Any]) -> str:
    from .charts import to_svg

    head, rows = _table(data)
    table = "<table><thead><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr></thead><tbody>"
    table += "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows) + "</tbody></table>"
    charts = []
    try:
        charts.append(to_svg(pareto_chart(data)))
        charts += [to_svg(setting_chart(data, key)) for key in data["grid"]]
    except SweepReportError as exc:
        charts.append(f'<p class="note">{esc(exc)}</p>')
    spec = data.get("spec") or {}
    items = lambda xs: "<ul>" + "".join(f"<li>{esc(x)}</li>" for x in xs) + "</ul>" if xs else '<p class="note">No finished cell yet.</p>'  # noqa: E731
    parts = [
        f"<header><h1>Sweep {esc(data.get('name', ''))}</h1><p>Corpus {esc(Path(str(spec.get('corpus', ''))).name)} · methods "
        f"{esc(', '.join(label(m) for m in spec.get('methods', [])))} · preset {esc(spec.get('preset', ''))} · "
        f"{esc(len(data['cells']))} cells</p></header>",
        f'<section class="card"><h2>Best per method</h2>{items(_best_lines(data))}</section>',
        f'<section class="card"><h2>Pareto front (accuracy vs $ per 1k queries)</h2>{items(_front_lines(data))}</section>',
        f'<section class="card"><h2>Cells</h2>{table}</section>',
        '<section class="card"><h2>Charts</h2>' + "".join(f'<div class="chart">{c}</div>' for c in charts) + "</section>",
    ]
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Workbench sweep: {esc(data.get("name", ""))}</title>'
            f"<style>{CSS}</style></head><body><main>" + "\n".join(parts) + "</main></body></html>\n")  # fmt: skip


def render_markdown(data: dict[str, Any]) -> str:
    head, rows = _table(data)
    out = [f"# Sweep {md_cell(data.get('name', ''))}\n", "## Best per method\n"]
    out += [f"- {md_cell(x)}" for x in _best_lines(data)] or ["_No finished cell yet._"]
    out += ["", "## Pareto front\n"] + ([f"- {md_cell(x)}" for x in _front_lines(data)] or ["_No finished cell yet._"])
    out += ["", "## Cells\n", "| " + " | ".join(md_cell(h) for h in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def render_csv(data: dict[str, Any]) -> str:
    rows = cell_rows(data)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    cols = list(rows[0]) if rows else ["cell"]
    writer.writerow([csv_safe(c) for c in cols])
    for row in rows:
        writer.writerow([csv_safe("" if row[c] is None else row[c]) for c in cols])
    return buf.getvalue()


def write_sweep_report(sweep_dir: str | Path, fmt_name: str = "html", out: Path | None = None) -> Path:
    """The sweep summary in ``fmt_name`` to ``out`` (default ``<sweep_dir>/sweep-report.<ext>``; a folder gets that name inside)."""
    if fmt_name not in SWEEP_FORMATS:
        raise SweepReportError(f"a sweep report is exported as {', '.join(SWEEP_FORMATS)}, not {fmt_name!r}; pick one of those")
    data = load_sweep(sweep_dir)
    from ..experiments.sweep import best_per_method

    data["best"] = best_per_method(data["cells"])
    text = {"html": render_html, "md": render_markdown, "csv": render_csv}.get(fmt_name, lambda d: json.dumps(_summary(d), indent=2, default=str))(data)
    ext = "md" if fmt_name == "md" else fmt_name
    target = Path(out) if out else Path(sweep_dir) / f"sweep-report.{ext}"
    if target.is_dir():
        target = target / f"sweep-report.{ext}"
    atomic_write_bytes(target, text.encode("utf-8"))
    return target
