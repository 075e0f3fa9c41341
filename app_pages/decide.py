"""Page 5 · Decide: the team's criteria and priority weights -> a live, explained recommendation from the measured run."""

from __future__ import annotations

import dataclasses
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app_pages.common import label, load_run_cached, select_run, user_message
from app_pages.forms import dataclass_widgets, field_label
from app_pages.textview import escape_markdown
from workbench import fmt
from workbench.decision.criteria import Criteria, DecisionError, Weights
from workbench.decision.recommend import BREAKDOWN_LABELS, recommend
from workbench.reports.charts import decision_path_dot

STANDARDS = ("min_accuracy", "accuracy_tolerance", "significance", "cost_materiality_usd", "cost_materiality_share", "latency_materiality_s", "usd_per_hour")


def weight_sliders() -> dict[str, float]:
    defaults = Weights()
    cols = st.columns(4)
    out = {}
    for col, f in zip(cols, dataclasses.fields(Weights), strict=False):
        out[f.name] = col.slider(
            field_label(f.name), 0.0, 1.0, float(getattr(defaults, f.name)), 0.05, help=f.metadata.get("help"), key=f"w.{f.name}", bind="query-params"
        )
    return out


def breakdown_chart(ranked: list[dict[str, Any]]) -> alt.Chart:
    rows = [
        {"method": label(r["method"]), "part": BREAKDOWN_LABELS.get(k, field_label(k)), "points": v}
        for r in ranked for k, v in (r.get("breakdown") or {}).items()
    ]
    order = [label(r["method"]) for r in ranked]
    return (
        alt.Chart(pd.DataFrame(rows))
        .mark_bar()
        .encode(
            y=alt.Y("method:N", sort=order, title=None, axis=alt.Axis(labelFontSize=12)),
            x=alt.X("sum(points):Q", title="Score (points)"),
            color=alt.Color("part:N", title="From", legend=alt.Legend(orient="bottom", columns=4)),
            tooltip=["method:N", "part:N", alt.Tooltip("points:Q", format=".1f")],
        )
        .properties(height=alt.Step(34))
    )


def main() -> None:
    st.title("Decide")
    st.write("Tell the workbench about your situation and what matters most; the recommendation updates live from the measured numbers.")
    row = select_run("decide-run")
    if row is None:
        st.info("No finished runs yet, and no example run is installed — start one on **Evaluate**, then come back to weigh the results.", icon=":material/info:")
        return
    try:
        metrics = load_run_cached(row["dir"]).get("metrics") or {}
    except (OSError, ValueError) as exc:
        st.error(escape_markdown(user_message(f"{row['run_id']}: the run could not be read ({exc}).")), icon=":material/error:")
        return

    with st.container(border=True):
        st.markdown("**Your situation**")
        situation = [f.name for f in dataclasses.fields(Criteria) if f.name not in STANDARDS]
        criteria_values = dataclass_widgets(Criteria, Criteria(), key_prefix="crit", fields=situation, columns=4, bind="query-params")
        with st.expander("Quality floor, what counts as a material difference, machine price", icon=":material/tune:"):
            criteria_values.update(dataclass_widgets(Criteria, Criteria(), key_prefix="crit", fields=list(STANDARDS), columns=4, bind="query-params"))
    with st.container(border=True):
        st.markdown("**Priorities** (relative weights; they are normalised to sum to 1)")
        weights = weight_sliders()
    try:
        rec = recommend(metrics, criteria_values, weights)
    except DecisionError as exc:
        st.error(str(exc), icon=":material/error:")
        return

    st.session_state["decision"] = {"run_id": row["run_id"], "rec": rec}  # reports on Runs & export use these priorities
    best = rec["best"]
    if best is None:
        st.error(escape_markdown(rec["summary"]), icon=":material/block:")
        st.markdown("**What would help**\n" + "\n".join(f"- {escape_markdown(x)}" for x in rec.get("advice") or []))
    else:
        st.success(escape_markdown(rec["summary"]), icon=":material/recommend:")
    ranked = rec["ranked"]
    costs = rec.get("costs") or {}
    left, right = st.columns([2, 3], gap="large")
    with left:
        st.markdown("**Ranking** (eligible methods first; the others failed the quality floor)")
        table = pd.DataFrame([
            {"rank": i + 1, "method": label(r["method"]), "score": r["score"], "eligible": "yes" if r.get("eligible") else "no",
             "USD / month": fmt.money((costs.get(r["method"]) or {}).get("total"), cents=True),
             "USD / correct answer": fmt.money((costs.get(r["method"]) or {}).get("per_correct"))}
            for i, r in enumerate(ranked)
        ])  # fmt: skip
        st.dataframe(
            table,
            hide_index=True,
            width="stretch",
            column_config={
                "score": st.column_config.ProgressColumn(
                    "score", format="%.1f", min_value=0, max_value=max(100.0, max(table["score"])),
                    help="Points from your priorities: each measured quantity scaled 0-100 across the methods, times its weight, plus the "
                    "situation's bonuses (the chart beside it shows the parts). Higher is better; only eligible methods can be recommended.",
                ),
                "eligible": st.column_config.TextColumn("eligible", help="Passes the quality floor: accuracy high enough and not worse than the prior baseline."),
                "USD / month": st.column_config.TextColumn("USD / month", help="Your monthly queries × the cost per query, plus the one-time build spread over 12 months and the rebuilds your data changes need."),
            },
        )
    with right:
        st.markdown("**Where each score comes from**")
        st.altair_chart(breakdown_chart(ranked), width="stretch", theme=None)
    for name, b in (rec.get("baselines") or {}).items():
        st.caption(f"{escape_markdown(label(name))} (baseline, never recommended): {fmt.pct(b.get('accuracy'))} {fmt.pct_ci(b.get('accuracy_ci'))} accuracy")

    for i, r in enumerate(ranked):
        icon = ":material/emoji_events:" if r["method"] == best else ":material/analytics:" if r.get("eligible") else ":material/block:"
        tag = "" if r.get("eligible") else " · not eligible"
        with st.expander(f"{label(r['method'])} · score {fmt.score(r['score'])} points{tag}", expanded=i == 0, icon=icon):
            if r.get("ineligible_because"):
                st.markdown("**Why it is not eligible**")
                st.markdown("\n".join(f"- :red[:material/block:] {escape_markdown(x)}" for x in r["ineligible_because"]))
            if r.get("reasons"):
                st.markdown("**Reasons**")
                st.markdown("\n".join(f"- {escape_markdown(x)}" for x in r["reasons"]))
            if r.get("caveats"):
                st.markdown("**Caveats**")
                st.markdown("\n".join(f"- :orange[:material/warning:] {escape_markdown(x)}" for x in r["caveats"]))

    path = rec.get("decision_path") or []
    if path:
        st.subheader("Decision path")
        st.graphviz_chart(decision_path_dot(path), width="content")  # natural size: readable text
        st.dataframe(pd.DataFrame(path).rename(columns={"leads_to": "leads to"}), hide_index=True, width="stretch")


main()
