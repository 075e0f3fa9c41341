"""Page 4 · Compare: scoreboard with 95% intervals and cost, charts, and every method's answer to every held-out question."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pandas as pd
import streamlit as st

from app_pages.common import label, load_run_cached, num, ordered, pct, scoreboard_frame, select_run, user_message
from app_pages.textview import code_span, escape_markdown, find_spans, highlight_markdown
from workbench import fmt
from workbench.evaluation.scoring import METRIC_HELP
from workbench.methods.baselines import prior_flag_text


def scoreboard(metrics: dict[str, Any]) -> None:
    methods = metrics.get("methods") or {}
    names = ordered(methods)
    real = [n for n in names if not methods[n].get("baseline")]  # the best-of cards compare real methods only

    def best(key: str, high: bool) -> str | None:
        known = [n for n in real if methods[n].get(key) is not None]
        if not known:
            return None
        return (max if high else min)(known, key=lambda n: methods[n][key])

    cols = st.columns(4)
    for col, (title, key, high, show) in zip(
        cols,
        (
            ("Most accurate", "accuracy", True, pct),
            ("Fewest hallucinations", "hallucination_rate", False, pct),
            ("Cheapest per correct answer", "cost_per_correct_usd", False, fmt.money),
            ("Fastest per query (p50)", "latency_p50_s", False, fmt.seconds),
        ),
        strict=True,
    ):
        name = best(key, high)
        if name:
            col.metric(title, show(methods[name][key]), label(name), delta_color="off", delta_arrow="off")
    frame = scoreboard_frame(metrics)
    rates = ["Accuracy", "Hallucination", "Abstention", "Exact match"]
    shown = frame.copy()
    shown[rates] = shown[rates].map(fmt.round_pct).astype(float)  # rounded like every headline (half-up), so 62.5% reads 63% everywhere
    cfg = st.column_config
    pct_col = "%.0f%%"
    st.markdown("**Quality** on held-out questions")
    st.dataframe(
        shown[
            [
                "Method",
                "Accuracy",
                "Accuracy 95% CI",
                "Hallucination",
                "Hallucination 95% CI",
                "Abstention",
                "F1",
                "Exact match",
                "Questions",
                "Versus prior",
            ]
        ],
        hide_index=True,
        width="stretch",
        column_config={
            "Accuracy": cfg.ProgressColumn("Accuracy", format=pct_col, min_value=0, max_value=100, help=METRIC_HELP["accuracy"]),
            "Hallucination": cfg.ProgressColumn(
                "Hallucination", format=pct_col, min_value=0, max_value=100, help="Confident wrong answers / all held-out questions"
            ),
            "Abstention": cfg.NumberColumn("Abstention", format=pct_col, help='Share answered "I don\'t know"'),
            "F1": cfg.NumberColumn("F1", format="%.2f", help=METRIC_HELP["f1"]),
            "Exact match": cfg.NumberColumn("Exact match", format=pct_col, help=METRIC_HELP["exact_match"]),
            "Versus prior": cfg.TextColumn("Versus prior", help=METRIC_HELP["baselines"]),
        },
    )
    st.markdown("**Cost and speed** on this machine")
    st.dataframe(
        frame[["Method", "USD / 1k queries", "USD / correct answer", "Median per query (p50)", "Slowest 5% per query (p95)", "Latency probe (questions)", "Batched answers / s", "Build time",
               "Index / adapter size (MB)", "Peak RAM (MB)"]],
        hide_index=True,
        width="stretch",
        column_config={
            "USD / 1k queries": cfg.TextColumn(help="Batched compute seconds per answer × the machine's hourly price"),
            "USD / correct answer": cfg.TextColumn(help="Cost of one query / accuracy: what one right answer costs"),
            "Median per query (p50)": cfg.TextColumn(help="Median seconds to answer one question alone (latency probe, cache bypassed)"),
            "Slowest 5% per query (p95)": cfg.TextColumn(help="95th percentile of the same probe"),
            "Latency probe (questions)": cfg.NumberColumn(help="Questions in the latency probe"),
            "Batched answers / s": cfg.NumberColumn(format="%.2f", help="Throughput of the batched evaluation (answers per second)"),
            "Build time": cfg.TextColumn(help="One-time: index build or adapter training"),
            "Index / adapter size (MB)": cfg.NumberColumn(format="%.1f", help="Index or adapter size on disk"),
            "Peak RAM (MB)": cfg.NumberColumn(format="%.0f", help="Most memory the process used while this method answered (resident set, MB)"),
        },
    )
    st.caption(
        "Accuracy counts answerable questions only; hallucination is a non-abstaining wrong answer (on an unanswerable question, any answer). "
        "Intervals are 95% bootstrap intervals — overlapping intervals mean the difference may be noise."
    )
    st.caption(escape_markdown(f"{METRIC_HELP['exact_match']} {METRIC_HELP['baselines']}"))
    flagged = [n for n in real if prior_flag_text(metrics, n)]
    if flagged:
        st.warning(
            escape_markdown("; ".join(f"{label(n)}: {prior_flag_text(metrics, n)}" for n in flagged))
            + " — these may only reproduce the most frequent answer.",
            icon=":material/warning:",
        )
    for note in (metrics.get("baselines") or {}).get("notes") or []:
        st.caption(escape_markdown(note))


def charts(metrics: dict[str, Any]) -> None:
    try:
        from workbench.reports import charts as ch
    except ImportError as exc:  # pragma: no cover - charts ship with the library
        st.info(f"Charts unavailable: {exc}")
        return
    left, right = st.columns(2)
    for col, make in (
        (left, ch.accuracy_hallucination_chart),
        (right, ch.accuracy_cost_chart),
        (left, ch.rates_chart),
        (right, ch.break_even_chart),
    ):
        with col:
            try:
                st.altair_chart(make(metrics), width="stretch", theme=None)
            except ValueError as exc:
                st.info(str(exc))
    if metrics.get("learning_curve"):
        st.markdown("**Learning curve** — accuracy of the tuned methods at points of their training budget (the dev slice of the train split picks the point used)")
        try:
            st.altair_chart(ch.learning_curve_chart(metrics), width="stretch", theme=None)
        except ValueError as exc:
            st.info(str(exc))


def training(metrics: dict[str, Any], run: dict[str, Any]) -> None:
    """Each tuned method's training side by side (adapter type, trainable parameters, size, time, cost, loss), then the leakage check."""
    from workbench.reports.tables import training_table, training_title

    train = metrics.get("train") or {}
    head, rows = training_table({"metrics": metrics, "config": run.get("config") or {}})
    st.markdown(f"**{training_title({'metrics': metrics})}**")
    shown = [r for r in rows if r[0] != "Leakage guard"]  # the guard's long verdict goes in the expander below
    if shown:
        st.dataframe(pd.DataFrame(shown, columns=head), hide_index=True, width="stretch")
    if train.get("leakage"):
        with st.expander("Leakage check (held-out questions in the training data?)"):
            st.json(train["leakage"])


def what_each_method_saw(metrics: dict[str, Any], run: dict[str, Any]) -> None:
    """Per method: documents indexed or trained on, Q/A used, synthetic pairs, few-shot pool, withheld twins."""
    from workbench.reports.tables import curve_table, seen_table

    data = {"metrics": metrics, "predictions": run.get("predictions") or [], "config": run.get("config") or {}}
    head, rows = seen_table(data)
    if rows:
        st.markdown("**What each method saw** (the same corpus for every method; held-out questions and their twins in none)")
        st.dataframe(pd.DataFrame(rows, columns=head), hide_index=True, width="stretch")
    splits = metrics.get("splits") or {}
    if splits:
        st.caption(
            f"Twin questions: {splits.get('grouped_questions', 0)} in {splits.get('twin_groups', 0)} groups kept on one side of the split; "
            f"{splits.get('withheld', 0)} train-side twins of held-out questions withheld from training and few-shot."
        )
    head, rows = curve_table(data)
    if rows:
        st.markdown("**Learning curve**")
        st.dataframe(pd.DataFrame(rows, columns=head), hide_index=True, width="stretch")


def outcome(row: dict[str, Any]) -> str:
    """A short verdict for one answer."""
    if row.get("answerable", True):
        if row.get("correct"):
            return "✓ correct"
        return "– abstained" if row.get("abstained") else "✗ wrong"
    return "✓ abstained" if row.get("abstained") else "✗ hallucinated"


def is_good(row: dict[str, Any]) -> bool:
    return bool(row.get("correct")) or (not row.get("answerable", True) and bool(row.get("abstained")))


def by_question(predictions: list[dict[str, Any]]) -> OrderedDict[str, dict[str, dict[str, Any]]]:
    grouped: OrderedDict[str, dict[str, dict[str, Any]]] = OrderedDict()
    for row in predictions:
        grouped.setdefault(str(row.get("question_id")), {})[row.get("method", "")] = row
    return grouped


def filter_questions(
    grouped: dict[str, dict[str, dict[str, Any]]], methods: list[str], wrong: bool, unanswerable: bool, disagree: bool
) -> list[str]:
    """Question ids passing the filters (all must hold): any method wrong, unanswerable, methods disagree."""
    out = []
    for qid, rows in grouped.items():
        shown = [rows[m] for m in methods if m in rows]
        if not shown:
            continue
        if wrong and all(is_good(r) for r in shown):
            continue
        if unanswerable and shown[0].get("answerable", True):
            continue
        if disagree and len({outcome(r) for r in shown}) < 2:
            continue
        out.append(qid)
    return out


def contexts_view(method: str, row: dict[str, Any], gold: list[str]) -> None:
    """Retrieved chunks with the gold answers highlighted (escaped text), or the few-shot example ids."""
    contexts = row.get("contexts") or []
    if not contexts:
        return
    if "text" not in contexts[0]:
        ids = ", ".join(str(c.get("example_id", "")) for c in contexts)
        st.caption(f"{label(method)} · solved examples in the prompt (train split): {escape_markdown(ids)}")
        return
    hits = sum(bool(find_spans(str(c.get("text", "")), gold)) for c in contexts)
    with st.expander(f"{label(method)} · retrieved chunks: {len(contexts)}, {hits} holding a gold answer", expanded=hits > 0):
        for c in contexts:
            st.markdown(f"**#{c.get('rank', '?')}** · {code_span(c.get('doc_id', ''))} · retrieval score {num(c.get('score'), '{:.3f}')}",
                        help="How well this chunk matched the question in the retriever (higher is a closer match; the scale depends on the retrieval mode).")  # fmt: skip
            st.markdown(highlight_markdown(str(c.get("text", "")), gold))


def drilldown(predictions: list[dict[str, Any]], methods: list[str]) -> None:
    if not predictions:
        st.info("This run has no per-question predictions.")
        return
    grouped = by_question(predictions)
    c1, c2, c3, c4 = st.columns([1.1, 1.5, 1.4, 3])
    wrong = c1.toggle("Wrong only", key="f-wrong", bind="query-params", help="Questions at least one shown method got wrong (or wrongly abstained on).")
    unans = c2.toggle("Unanswerable only", key="f-unans", bind="query-params", help="Questions whose answer is not in the corpus.")
    disagree = c3.toggle("Disagreements", key="f-disagree", bind="query-params", help="Questions where the methods' verdicts differ.")
    shown = c4.multiselect("Methods", methods, default=methods, format_func=label, key="f-methods", bind="query-params") or methods
    ids = filter_questions(grouped, shown, wrong, unans, disagree)
    st.caption(f"{len(ids)} of {len(grouped)} held-out questions")
    if not ids:
        st.info("No question matches these filters.")
        return
    table = pd.DataFrame(
        [
            {
                "id": qid,
                "question": next(iter(grouped[qid].values())).get("question", ""),
                **{label(m): outcome(grouped[qid][m]) for m in shown if m in grouped[qid]},
            }
            for qid in ids
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch", height=min(300, 38 + 35 * len(table)))
    qid = st.selectbox(
        "Question", ids, key="f-question", format_func=lambda i: f"{i} · {str(next(iter(grouped[i].values())).get('question', ''))[:90]}"
    )
    rows = grouped[qid]
    first = next(iter(rows.values()))
    gold = [str(g) for g in first.get("gold") or []]
    with st.container(border=True):
        st.markdown(f"**Question** {code_span(qid)}")
        st.markdown(escape_markdown(str(first.get("question", ""))))
        if first.get("answerable", True):
            st.markdown("**Gold answers:** " + " · ".join(f":green-background[{escape_markdown(g)}]" for g in gold))
        else:
            st.markdown("**Unanswerable** — the corpus does not hold the answer; the right reply is *I don't know*.")
    cols = st.columns(len([m for m in shown if m in rows]) or 1)
    for col, m in zip(cols, [m for m in shown if m in rows], strict=False):
        row = rows[m]
        with col, st.container(border=True):
            st.markdown(f"**{label(m)}** · {outcome(row)}")
            st.markdown(escape_markdown(str(row.get("answer", ""))) or "*(empty answer)*")
            if row.get("why"):
                st.caption("Why: " + escape_markdown(str(row["why"])))
            details = [
                f"F1 {num(row.get('f1'))}",
                f"{row.get('prompt_tokens', 0)}→{row.get('output_tokens', 0)} tokens",
                f"{fmt.seconds(row.get('latency_s'))} batched" + (f", {fmt.seconds(row['latency_probe_s'])} alone" if row.get("latency_probe_s") is not None else ""),
            ]
            if row.get("groundedness") is not None:
                details.append(f"grounded {num(row.get('groundedness'))}")
            st.caption(" · ".join(details))
            if row.get("unsupported_items"):
                st.caption("Unsupported: " + escape_markdown("; ".join(map(str, row["unsupported_items"]))))
    for m in [m for m in shown if m in rows]:
        contexts_view(m, rows[m], gold)


def statistics(metrics: dict[str, Any], run: dict[str, Any]) -> None:
    comps = metrics.get("comparisons") or {}
    left, right = st.columns(2)
    with left:
        st.markdown("**Paired significance (McNemar)**")
        mc = comps.get("mcnemar") or {}
        if mc:
            frame = pd.DataFrame(
                [
                    {
                        "pair": " vs ".join(label(x) for x in k.split("|")),
                        "only first right": v.get("b"),
                        "only second right": v.get("c"),
                        "p-value": fmt.p_value(v.get("p_value"), prefix=False),
                    }
                    for k, v in mc.items()
                ]
            )
            st.dataframe(frame, hide_index=True, width="stretch")
            st.caption("p < 0.05: the accuracy difference is unlikely to be chance.")
        else:
            st.caption("Needs two or more methods.")
    with right:
        st.markdown("**Break-even query volume**")
        be = comps.get("break_even") or {}
        if be:
            frame = pd.DataFrame(
                [
                    {
                        "pair": " vs ".join(label(x) for x in k.split("|")),
                        "break-even queries": "never (one is cheaper both ways)" if v.get("queries") is None else f"{v['queries']:,.0f}",
                        "cheaper up-front": label(v.get("cheaper_upfront") or ""),
                        "cheaper per query": label(v.get("cheaper_per_query") or ""),
                    }
                    for k, v in be.items()
                ]
            )
            st.dataframe(frame, hide_index=True, width="stretch")
        else:
            st.caption("Needs two or more methods with costs.")
    retrieval = metrics.get("retrieval") or {}
    if retrieval:
        st.markdown("**Retrieval quality** (is the chunk holding the answer retrieved?)")
        keys = [k for k in ("recall@1", "recall@3", "recall@5", "recall@10", "mrr") if retrieval.get(k) is not None]
        cols = st.columns(len(keys) or 1)
        for col, k in zip(cols, keys, strict=False):
            helptext = (
                "Mean reciprocal rank: 1 when the chunk holding the answer is retrieved first, 1/2 when second, and so on (0 to 1)."
                if k == "mrr"
                else f"Share of answerable held-out questions whose answer is in one of the top {k.split('@')[1]} retrieved chunks."
            )
            col.metric(k.upper() if k == "mrr" else k, pct(retrieval[k]) if k != "mrr" else f"{retrieval[k]:.2f}", help=helptext)
    train = metrics.get("train") or {}
    if train:
        training(metrics, run)
    what_each_method_saw(metrics, run)
    with st.expander("Run settings and environment"):
        st.json({"config": run.get("config"), "meta": run.get("meta")}, expanded=False)


def main() -> None:
    st.title("Compare")
    st.write("How each method did on the held-out questions: quality with 95% intervals, cost, and every answer side by side.")
    row = select_run("compare-run")
    if row is None:
        st.info("No finished runs yet, and no example run is installed (`make examples` makes one) — start a run on **Evaluate**.", icon=":material/info:")
        st.page_link("app_pages/evaluate.py", label="Go to Evaluate", icon=":material/play_circle:")
        return
    try:
        run = load_run_cached(row["dir"])
    except (OSError, ValueError) as exc:
        st.error(escape_markdown(user_message(f"{row['run_id']}: the run folder could not be read ({exc}); it may be incomplete.")), icon=":material/error:")
        return
    metrics = run.get("metrics") or {}
    if not metrics.get("methods"):
        st.warning(f"{row['run_id']}: metrics.json holds no measured methods.")
        return
    corpus = metrics.get("corpus") or {}
    cfg = run.get("config") or {}
    st.caption(
        f"Corpus **{escape_markdown(corpus.get('title') or corpus.get('name', ''))}** · {corpus.get('n_test_evaluated', '?')} held-out questions evaluated · "
        f"preset {cfg.get('preset', '?')} · model {code_span(str(cfg.get('model', '?')).rsplit('/', 1)[-1])} · seed {cfg.get('seed', '?')}"
    )
    rec = metrics.get("recommendation") or {}
    if rec.get("summary"):
        (st.success if rec.get("best") else st.warning)(escape_markdown(rec["summary"]), icon=":material/recommend:")
    methods = ordered(metrics["methods"])
    tabs = st.tabs(["Scoreboard", "Charts", "Per-question answers", "Statistics"], key="tab", bind="query-params")
    with tabs[0]:
        scoreboard(metrics)
    with tabs[1]:
        charts(metrics)
    with tabs[2]:
        drilldown(run.get("predictions") or [], methods)
    with tabs[3]:
        statistics(metrics, run)


main()
