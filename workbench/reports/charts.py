"""Altair charts of a run's measurements, plus offline SVG/PNG rendering through vl-convert.

Every chart is built from ``metrics.json`` values (or the training loss history) as they are; the
app shows them with ``st.altair_chart`` and the reports embed ``to_svg``/``to_png`` output.
"""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from workbench.errors import WorkbenchError
from workbench.evaluation.cost import cumulative_cost
from workbench.methods.registry import LORA, colour, label, method_order

FONT = "Helvetica, Arial, sans-serif"
WIDTH, HEIGHT = 420, 280


class ChartError(WorkbenchError, ValueError):
    """The metrics hold nothing this chart can show; the message says what is missing."""


def _ordered(metrics: dict) -> list[str]:
    methods = metrics.get("methods") or {}
    if not methods:
        raise ChartError("metrics.json has no measured methods; run the evaluation first")
    return sorted(methods, key=method_order)


def _color(methods: list[str]) -> alt.Color:
    labels = [label(m) for m in methods]
    colors = [colour(m) for m in methods]
    return alt.Color("label:N", title="Method", scale=alt.Scale(domain=labels, range=colors), sort=labels)


def style_chart(chart: alt.TopLevelMixin, title: str) -> alt.TopLevelMixin:
    return (
        chart.properties(title=title)
        .configure(font=FONT, background="white")
        .configure_view(stroke="#e5e7eb")
        .configure_axis(labelColor="#374151", titleColor="#111827", gridColor="#eef0f3", labelFontSize=11, titleFontSize=12)
        .configure_title(anchor="start", fontSize=14, color="#111827", fontWeight=600)
        .configure_legend(labelFontSize=11, titleFontSize=11, orient="bottom")
    )


def _ci(ci: Sequence | None, value: float | None) -> tuple[float | None, float | None]:
    if ci and ci[0] is not None and ci[1] is not None:
        return float(ci[0]), float(ci[1])
    return value, value


def _method_rows(metrics: dict) -> pd.DataFrame:
    rows = []
    for m in _ordered(metrics):
        v = metrics["methods"][m]
        acc, hall = v.get("accuracy"), v.get("hallucination_rate")
        alo, ahi = _ci(v.get("accuracy_ci"), acc)
        hlo, hhi = _ci(v.get("hallucination_ci"), hall)
        rows.append(
            {"method": m, "label": label(m), "accuracy": acc, "acc_lo": alo, "acc_hi": ahi, "hallucination": hall, "h_lo": hlo, "h_hi": hhi,
             "usd_per_1k": v.get("usd_per_1k_queries"), "p95": v.get("latency_p95_s")}
        )
    return pd.DataFrame(rows)


def _point_labels(df: pd.DataFrame, xkey: str, ykey: str, titles: tuple[str, str], color: alt.Color, x_max: float, near: float = 0.07) -> list[alt.Chart]:
    """Method names beside their points without overlaps. Points close together form a group whose labels are stacked
    one line apart in a column beside the group (upwards in the lower half of the plot, downwards in the upper half, so
    labels never cover the axes); labels near the right edge go to the left (nothing runs out of the plot)."""
    span_x = max(x_max, 1e-12)
    line = 15 / HEIGHT  # one label line in accuracy units (the y domain is 0..1)
    groups: list[list[int]] = []
    for i, row in df.reset_index(drop=True).iterrows():
        px, py = row[xkey] / span_x, row[ykey]
        for g in groups:
            if any(abs(df.iloc[j][xkey] / span_x - px) < near * 2.5 and abs(df.iloc[j][ykey] - py) < near for j in g):
                g.append(int(i))
                break
        else:
            groups.append([int(i)])
    rows = []
    for g in groups:
        members = df.iloc[g].sort_values(ykey, ascending=False)
        top, bottom, gx = float(members[ykey].max()), float(members[ykey].min()), float(members[xkey].mean())
        upper = top > 0.5
        for k, (_, row) in enumerate(members.iterrows()):
            ly = bottom - line * (k + 0.8) if upper else top + line * (len(members) - k - 0.2)
            rows.append({"label": row["label"], "lx": gx if len(members) > 1 else float(row[xkey]), "ly": ly, "side": "left" if gx / span_x > 0.7 else "right"})
    labels = pd.DataFrame(rows)
    layers = []
    for side in labels["side"].unique():
        layers.append(
            alt.Chart(labels[labels["side"] == side])
            .mark_text(dx=9 if side == "right" else -9, align="left" if side == "right" else "right", baseline="middle", fontSize=11, fontWeight=600)
            .encode(x=alt.X("lx:Q", title=titles[0]), y=alt.Y("ly:Q", title=titles[1]), text="label:N", color=color)  # shares the points' scales
        )
    return layers


def accuracy_hallucination_chart(metrics: dict) -> alt.TopLevelMixin:
    """Accuracy (y) against hallucination rate (x) per method, with 95% intervals on both axes."""
    methods = _ordered(metrics)
    df = _method_rows(metrics).dropna(subset=["accuracy", "hallucination"])
    if df.empty:
        raise ChartError("no method has both accuracy and hallucination rate measured")
    pct = alt.Axis(format="%")
    x = alt.X("hallucination:Q", title="Hallucination rate (lower is better)", scale=alt.Scale(domain=[0, 1]), axis=pct)
    y = alt.Y("accuracy:Q", title="Accuracy (higher is better)", scale=alt.Scale(domain=[0, 1]), axis=pct)
    base = alt.Chart(df)
    tip = [alt.Tooltip("label:N", title="Method"), alt.Tooltip("accuracy:Q", format=".0%"), alt.Tooltip("hallucination:Q", format=".0%")]
    chart = alt.layer(
        base.mark_rule(strokeWidth=2, opacity=0.6).encode(x=x, y="acc_lo:Q", y2="acc_hi:Q", color=_color(methods)),
        base.mark_rule(strokeWidth=2, opacity=0.6).encode(x="h_lo:Q", x2="h_hi:Q", y=y, color=_color(methods)),
        base.mark_circle(size=110, opacity=1).encode(x=x, y=y, color=_color(methods), tooltip=tip),
        *_point_labels(df, "hallucination", "accuracy", ("Hallucination rate (lower is better)", "Accuracy (higher is better)"), _color(methods), 1.0),
    ).properties(width=WIDTH, height=HEIGHT)
    return style_chart(chart, "Accuracy vs hallucination (95% intervals)")


def accuracy_cost_chart(metrics: dict) -> alt.TopLevelMixin:
    """Accuracy (with 95% interval) against USD per 1,000 queries per method."""
    methods = _ordered(metrics)
    df = _method_rows(metrics).dropna(subset=["accuracy", "usd_per_1k"])
    if df.empty:
        raise ChartError("no method has both accuracy and usd_per_1k_queries measured")
    x = alt.X("usd_per_1k:Q", title="USD per 1,000 queries (lower is better)", scale=alt.Scale(zero=True), axis=alt.Axis(format="$.3f"))
    y = alt.Y("accuracy:Q", title="Accuracy", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%"))
    base = alt.Chart(df)
    tip = [alt.Tooltip("label:N", title="Method"), alt.Tooltip("accuracy:Q", format=".0%"), alt.Tooltip("usd_per_1k:Q", format="$.4f")]
    chart = alt.layer(
        base.mark_rule(strokeWidth=2, opacity=0.6).encode(x=x, y="acc_lo:Q", y2="acc_hi:Q", color=_color(methods)),
        base.mark_circle(size=110, opacity=1).encode(x=x, y=y, color=_color(methods), tooltip=tip),
        *_point_labels(df, "usd_per_1k", "accuracy", ("USD per 1,000 queries (lower is better)", "Accuracy"), _color(methods), float(df["usd_per_1k"].max() or 0.0)),
    ).properties(width=WIDTH, height=HEIGHT)
    return style_chart(chart, "Accuracy vs cost")


def rates_chart(metrics: dict) -> alt.TopLevelMixin:
    """Grouped bars per method: accuracy, hallucination rate and abstention rate."""
    rows = []
    for m in _ordered(metrics):
        v = metrics["methods"][m]
        for name, key in (("Accuracy", "accuracy"), ("Hallucination", "hallucination_rate"), ("Abstention", "abstention_rate")):
            if v.get(key) is not None:
                rows.append({"label": label(m), "measure": name, "value": v[key]})
    if not rows:
        raise ChartError("no method has accuracy, hallucination or abstention measured")
    labels = [label(m) for m in _ordered(metrics)]
    measures = ["Accuracy", "Hallucination", "Abstention"]
    chart = (
        alt.Chart(pd.DataFrame(rows))
        .mark_bar()
        .encode(
            x=alt.X("label:N", title=None, sort=labels, axis=alt.Axis(labelAngle=0)),
            xOffset=alt.XOffset("measure:N", sort=measures),
            y=alt.Y("value:Q", title="Share of questions", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format="%")),
            color=alt.Color("measure:N", title=None, sort=measures, scale=alt.Scale(domain=measures, range=["#0072b2", "#d55e00", "#9ca3af"])),
            tooltip=[alt.Tooltip("label:N", title="Method"), "measure:N", alt.Tooltip("value:Q", format=".0%")],
        )
        .properties(width=WIDTH + 60, height=HEIGHT - 40)
    )
    return style_chart(chart, "Accuracy, hallucination and abstention per method")


def _default_volumes(metrics: dict) -> list[float]:
    points = [b.get("queries") for b in ((metrics.get("comparisons") or {}).get("break_even") or {}).values()]
    finite = [q for q in points if q is not None and q > 0]
    top = max([10_000.0] + [1.5 * q for q in finite])
    top = min(top, 1e9)
    return [top * i / 40 for i in range(41)]


def break_even_chart(metrics: dict, volumes: Sequence[float] | None = None) -> alt.TopLevelMixin:
    """Cumulative cost (build + per-query) against query volume per method; break-even volumes marked."""
    methods = [m for m in _ordered(metrics) if metrics["methods"][m].get("usd_per_1k_queries") is not None]
    if not methods:
        raise ChartError("no method has usd_per_1k_queries measured; set a machine price and rerun")
    volumes = list(volumes) if volumes is not None else _default_volumes(metrics)
    if not volumes or min(volumes) < 0:
        raise ChartError("volumes must be a non-empty list of query counts >= 0")

    def totals(m: str, qs: Sequence[float]) -> list[float]:
        v = metrics["methods"][m]
        return cumulative_cost(float(v.get("usd_build") or 0.0), float(v["usd_per_1k_queries"]) / 1000, qs)

    lines = pd.DataFrame([{"label": label(m), "queries": q, "usd": usd} for m in methods for q, usd in zip(volumes, totals(m, volumes), strict=True)])
    x = alt.X("queries:Q", title="Queries", axis=alt.Axis(format=",.0f"))
    y = alt.Y("usd:Q", title="Cumulative cost (USD)", axis=alt.Axis(format="$~r"))
    layers = [
        alt.Chart(lines).mark_line(strokeWidth=2).encode(
            x=x, y=y, color=_color(methods), tooltip=[alt.Tooltip("label:N", title="Method"), alt.Tooltip("queries:Q", format=",.0f"), alt.Tooltip("usd:Q", format="$.4f")]
        )
    ]
    marks = []
    for pair, b in sorted(((metrics.get("comparisons") or {}).get("break_even") or {}).items()):
        a, _, c = pair.partition("|")
        q = b.get("queries")
        if q is None or a not in methods or c not in methods or not min(volumes) <= q <= max(volumes):
            continue
        marks.append({"queries": q, "usd": totals(a, [q])[0], "pair": f"{label(a)} = {label(c)}"})
    span = (max(volumes) - min(volumes)) or 1.0
    shown: list[float] = []
    for mk in sorted(marks, key=lambda r: r["queries"]):  # label only points not crowded by a labelled neighbour
        mk["text"] = "" if shown and mk["queries"] - shown[-1] < 0.08 * span else mk["pair"]
        if mk["text"]:
            shown.append(mk["queries"])
    if marks:
        pts = alt.Chart(pd.DataFrame(marks))
        layers.append(
            pts.mark_point(shape="diamond", size=90, filled=True, color="#111827").encode(
                x=x, y=y, tooltip=[alt.Tooltip("pair:N", title="Break-even"), alt.Tooltip("queries:Q", format=",.0f"), alt.Tooltip("usd:Q", format="$.4f")]
            )
        )
        layers.append(pts.mark_text(dx=8, dy=12, align="left", fontSize=10, color="#374151").encode(x=x, y=y, text="text:N"))
    chart = alt.layer(*layers).properties(width=WIDTH + 60, height=HEIGHT)
    return style_chart(chart, "Cumulative cost by query volume (break-even points marked)")


def loss_chart(history: Sequence[dict]) -> alt.TopLevelMixin:
    """Training loss per optimiser step, from rows of {"step", "loss"}."""
    rows = [{"step": int(r["step"]), "loss": float(r["loss"])} for r in history if r.get("loss") is not None and r.get("step") is not None]
    if not rows:
        raise ChartError("the training log has no {step, loss} rows; train a LoRA adapter first")
    chart = (
        alt.Chart(pd.DataFrame(rows))
        .mark_line(point=alt.OverlayMarkDef(size=25), color=colour(LORA), strokeWidth=2)
        .encode(
            x=alt.X("step:Q", title="Optimiser step"),
            y=alt.Y("loss:Q", title="Training loss", scale=alt.Scale(zero=False)),
            tooltip=["step:Q", alt.Tooltip("loss:Q", format=".3f")],
        )
        .properties(width=WIDTH, height=HEIGHT - 60)
    )
    return style_chart(chart, "LoRA training loss")


def decision_path_dot(path: Sequence[dict]) -> str:
    """The decision path as a Graphviz flow: each question and where it leads; the last node is the outcome."""

    def esc(text: object) -> str:
        return str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")

    def wrap(text: object, width: int = 64) -> list[str]:
        lines, cur = [], ""
        for word in str(text).split():
            if cur and len(cur) + 1 + len(word) > width:
                lines.append(cur)
                cur = word
            else:
                cur = f"{cur} {word}".strip()
        return [*lines, cur]

    out = [
        "digraph G {",
        # top to bottom with wide boxes: shown at its natural size the text stays readable (a left-to-right row of six
        # boxes had to be scaled down to fit a page, and its text became tiny)
        'rankdir=TB; nodesep=0.25; ranksep=0.3; node [shape=box, style="rounded,filled", fillcolor="#eef4ff", color="#2563eb", '
        'fontname="Helvetica", fontsize=14, margin="0.2,0.08", width=6.5];',
    ]
    for i, step in enumerate(path):
        leads = str(step.get("leads_to", ""))
        colour = ""
        if i == len(path) - 1:
            colour = ', fillcolor="#fde8e6", color="#b42318"' if leads == "no recommendation" else ', fillcolor="#e3f4ea", color="#0b7a4b"'
        text = "\\n".join(esc(x) for x in [*wrap(step.get("question", "")), *wrap("→ " + leads)])
        out.append(f'n{i} [label="{text}"{colour}];')
        if i:
            out.append(f"n{i - 1} -> n{i};")
    out.append("}")
    return "\n".join(out)


def learning_curve_chart(metrics: dict) -> alt.TopLevelMixin:
    """Held-out (subset) and dev accuracy of each tuned method at points of its training budget."""
    rows = []
    for method, points in (metrics.get("learning_curve") or {}).items():
        for p in points:
            for key, name in (("held_out_accuracy", "held-out subset"), ("dev_accuracy", "dev (train split)")):
                if p.get(key) is not None:
                    rows.append({"method": method, "label": label(method), "step": int(p["step"]), "accuracy": float(p[key]), "set": name})
    if not rows:
        raise ChartError("no learning-curve points; train an adapter first")
    frame = pd.DataFrame(rows)
    methods = list(dict.fromkeys(frame["method"]))
    chart = (
        alt.Chart(frame)
        .mark_line(point=alt.OverlayMarkDef(size=40), strokeWidth=2)
        .encode(
            x=alt.X("step:Q", title="Optimiser step"),
            y=alt.Y("accuracy:Q", title="Accuracy", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            color=_color(methods),
            strokeDash=alt.StrokeDash("set:N", title="Questions"),
            tooltip=["method:N", "set:N", "step:Q", alt.Tooltip("accuracy:Q", format=".0%")],
        )
        .properties(width=WIDTH, height=HEIGHT - 60)
    )
    return style_chart(chart, "Learning curve (accuracy by training step)")


def to_svg(chart: alt.TopLevelMixin) -> str:
    """The chart as a standalone SVG string, rendered offline by vl-convert."""
    import vl_convert

    return vl_convert.vegalite_to_svg(chart.to_dict())


def to_png(chart: alt.TopLevelMixin, scale: float = 2.0) -> bytes:
    """The chart as PNG bytes (for the PDF report), rendered offline by vl-convert."""
    import vl_convert

    return vl_convert.vegalite_to_png(chart.to_dict(), scale=scale)
