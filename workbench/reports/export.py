"""Shareable exports of a run folder: standalone HTML, PDF, Markdown, CSV and JSON.

Every figure is read from ``metrics.json`` / ``predictions.jsonl`` as written by the run; the same
table builders feed HTML, Markdown and PDF so the formats agree. All corpus and model text is
escaped (HTML entities, Markdown pipes, spreadsheet formula prefixes) and never executed.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from pathlib import Path
from typing import Any, Literal

from workbench import __version__, fmt
from workbench.decision.recommend import BREAKDOWN_LABELS, BREAKDOWN_ORDER, recommend
from workbench.errors import WorkbenchError
from workbench.evaluation.scoring import METRIC_HELP
from workbench.methods.baselines import prior_flag_text
from workbench.methods.registry import label, method_order
from workbench.storage import atomic_write_bytes, read_json, read_jsonl

FORMATS = ("html", "pdf", "md", "csv", "json")
Format = Literal["html", "pdf", "md", "csv", "json"]
SAMPLE_QUESTIONS = 24
DATA_ID = "workbench-run"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
Table = tuple[list[str], list[list[str]]]


class ReportError(WorkbenchError, ValueError):
    """The run folder cannot be reported on; the message says which file and what to do."""


# ---------------------------------------------------------------- loading


def load_run_data(run_dir: str | Path) -> dict[str, Any]:
    """config, meta, status, metrics, predictions and the training log of a finished run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such run folder; list runs with: python -m workbench runs")
    try:
        metrics = read_json(run_dir / "metrics.json")
        predictions = read_jsonl(run_dir / "predictions.jsonl")
    except (ValueError, RecursionError) as exc:
        raise ReportError(f"{run_dir}: metrics.json or predictions.jsonl is corrupt ({str(exc)[:120] or type(exc).__name__}); rerun the evaluation") from None
    status = _json_dict(run_dir / "status.json")
    if not isinstance(metrics, dict) or not metrics.get("methods"):
        raise ReportError(f"{run_dir / 'metrics.json'}: missing or has no methods (run state: {status.get('state', 'unknown')}); wait for the run to finish")
    if not isinstance(metrics["methods"], dict) or not all(isinstance(v, dict) for v in metrics["methods"].values()):
        raise ReportError(f"{run_dir / 'metrics.json'}: \"methods\" is not a table of per-method objects; rerun the evaluation")
    if not all(isinstance(r, dict) for r in predictions):
        raise ReportError(f"{run_dir / 'predictions.jsonl'}: a line is not a JSON object; rerun the evaluation")
    if not predictions:
        raise ReportError(f"{run_dir / 'predictions.jsonl'}: missing or empty; the run answered no questions")
    try:
        history = read_jsonl(run_dir / "train_log.jsonl")
    except (OSError, ValueError, RecursionError):
        history = []
    history = history or (metrics.get("train") or {}).get("loss_history") or []
    return {
        "run_id": run_dir.name,
        "config": _json_dict(run_dir / "config.json"),
        "meta": _json_dict(run_dir / "meta.json"),
        "status": status,
        "metrics": metrics,
        "predictions": predictions,
        "train_log": [{"step": r["step"], "loss": r["loss"]} for r in history if "step" in r and "loss" in r],
    }


def _json_dict(path: Path) -> dict:
    """A run's side file (config, meta, status) as a dict; a missing, corrupt or non-object file reads as {}."""
    try:
        data = read_json(path, {})
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _methods(run: dict) -> list[str]:
    return sorted(run["metrics"]["methods"], key=method_order)


def _recommendation(run: dict, override: dict | None) -> dict:
    rec = override or run["metrics"].get("recommendation")
    if not rec or "eligible" not in rec:  # none stored, or written before the quality floor existed: decide again
        inputs = (rec or {}).get("inputs") or {}
        rec = recommend(run["metrics"], inputs.get("criteria"), inputs.get("weights"))
    return rec


def verdict(rec: dict) -> tuple[str, list[str], list[str]]:
    """(title, reasons, caveats-or-advice) of a recommendation: the same words in every format."""
    if rec.get("best") is None:
        return "No recommendation: none of the measured methods is good enough", rec.get("reasons") or [], rec.get("advice") or []
    return f"Recommendation: {label(rec['best'])}", rec.get("reasons") or [], rec.get("caveats") or []


def _best_label(rec: dict) -> str | None:
    return label(rec["best"]) if rec.get("best") else None


# ---------------------------------------------------------------- formatting


def _num(x: Any, fmt: str = "{:.2f}") -> str:
    return "n/a" if x is None else fmt.format(x)


def _rate_ci(m: dict, key: str, ci_key: str) -> str:
    value = fmt.pct(m.get(key))
    ci = fmt.pct_ci(m.get(ci_key))
    return f"{value} {ci}" if ci else value


def _when(run: dict) -> str:
    stamp = run["status"].get("updated") or run["meta"].get("written") or ""
    return stamp.replace("T", " ")[:16] + (" UTC" if stamp else "")


def _title(run: dict) -> str:
    corpus = run["metrics"].get("corpus") or {}
    return str(corpus.get("title") or corpus.get("name") or Path(str(run["config"].get("corpus", ""))).name or "corpus")


# ---------------------------------------------------------------- tables (shared by HTML, Markdown and PDF)


def scoreboard(run: dict) -> Table:
    """One row per method: accuracy and hallucination with 95% intervals, quality, per-query latency, throughput, cost."""
    head = ["Method", "n", "Accuracy [95% CI]", "Hallucination [95% CI]", "Abstention", "EM", "F1",
            "Per-query p50 / p95 (probe n)", "Batched q/s", "Tokens in / out", "USD / 1k queries", "USD / correct answer", "Build", "Versus prior"]
    rows = []
    for name in _methods(run):
        m = run["metrics"]["methods"][name]
        versus = "baseline" if m.get("baseline") else prior_flag_text(run["metrics"], name)
        rows.append([
            label(name) + (" (baseline)" if m.get("baseline") else ""), str(m.get("n", "")), _rate_ci(m, "accuracy", "accuracy_ci"),
            _rate_ci(m, "hallucination_rate", "hallucination_ci"), fmt.pct(m.get("abstention_rate")), fmt.pct(m.get("exact_match")), _num(m.get("f1")),
            f"{fmt.seconds(m.get('latency_p50_s'))} / {fmt.seconds(m.get('latency_p95_s'))} ({m.get('latency_probe_n', 'n/a')})",
            _num(m.get("throughput_qps")),
            f"{_num(m.get('prompt_tokens_mean'), '{:.0f}')} / {_num(m.get('output_tokens_mean'), '{:.0f}')}",
            fmt.money(m.get("usd_per_1k_queries")), fmt.money(m.get("cost_per_correct_usd")), fmt.seconds(m.get("build_seconds")), versus,
        ])
    return head, rows


def eligibility_table(rec: dict) -> Table:
    """Every candidate: eligible or not after the quality floor, with the reasons, its monthly cost and cost per correct answer."""
    costs = rec.get("costs") or {}
    rows = []
    for r in rec["ranked"]:
        c = costs.get(r["method"]) or {}
        rows.append([label(r["method"]), "yes" if r.get("eligible") else "no", "; ".join(r.get("ineligible_because") or r.get("floor") or []),
                     fmt.money(c.get("total"), cents=True), fmt.money(c.get("per_correct"))])
    for name, b in (rec.get("baselines") or {}).items():
        rows.append([label(name), "baseline", f"reference only: {fmt.pct(b.get('accuracy'))} {fmt.pct_ci(b.get('accuracy_ci'))} accuracy", "", ""])
    return ["Method", "Eligible", "Quality floor", "USD / month", "USD / correct answer"], rows
def metric_notes(run: dict) -> list[str]:
    """What accuracy, EM and F1 mean (with the unanswerable convention), the baselines, and any baseline notes."""
    notes = [METRIC_HELP[k] for k in ("accuracy", "exact_match", "f1", "baselines")]
    return notes + list((run["metrics"].get("baselines") or {}).get("notes") or [])


def ranking(rec: dict) -> Table:
    """The recommendation's ranked methods with total score and the points from each criterion."""
    present = {k for r in rec["ranked"] for k in r["breakdown"]}
    keys = [k for k in BREAKDOWN_ORDER if k in present] + sorted(present - set(BREAKDOWN_ORDER))
    head = ["#", "Method", "Score"] + [BREAKDOWN_LABELS.get(k, k.replace("_", " ").capitalize()) for k in keys]
    rows = [[str(i + 1), label(r["method"]) + ("" if r.get("eligible", True) else " (not eligible)"), fmt.score(r["score"])]
            + [_num(r["breakdown"].get(k), "{:+.1f}") if r["breakdown"].get(k) is not None else "" for k in keys]
            for i, r in enumerate(rec["ranked"])]
    return head, rows


def decision_path(rec: dict) -> Table:
    """The decision questions, the team's answers and where each leads."""
    return ["Question", "Answer", "Leads to"], [[s["question"], str(s["answer"]), s["leads_to"]] for s in rec.get("decision_path", [])]


def _pairs(run: dict, kind: str) -> list[tuple[str, dict]]:
    def rank(pair: str) -> tuple:
        return tuple(method_order(m)[0] for m in pair.split("|")) + (pair,)

    return sorted(((run["metrics"].get("comparisons") or {}).get(kind) or {}).items(), key=lambda kv: rank(kv[0]))


def mcnemar_table(run: dict) -> Table:
    """Paired McNemar tests between methods (b, c = questions only one of the two got right)."""
    rows = []
    for pair, t in _pairs(run, "mcnemar"):
        a, _, b = pair.partition("|")
        p = t.get("p_value")
        verdict = "n/a" if p is None else ("significant" if p < 0.05 else "not significant")
        rows.append([f"{label(a)} vs {label(b)}", str(t.get("b", "")), str(t.get("c", "")), fmt.p_value(p, prefix=False), verdict])
    return ["Pair", "Only first right (b)", "Only second right (c)", "p-value", "At 5%"], rows


def break_even_table(run: dict) -> Table:
    """Query volume at which two methods cost the same in total."""
    rows = []
    for pair, b in _pairs(run, "break_even"):
        a, _, c = pair.partition("|")
        q = b.get("queries")
        rows.append([f"{label(a)} vs {label(c)}", "never (one is cheaper on both counts)" if q is None else f"{fmt.count(q)} queries",
                     label(b["cheaper_upfront"]) if b.get("cheaper_upfront") else "tie",
                     label(b["cheaper_per_query"]) if b.get("cheaper_per_query") else "tie"])
    return ["Pair", "Break-even", "Cheaper upfront", "Cheaper per query"], rows


def retrieval_table(run: dict) -> Table:
    """Retrieval quality on the held-out questions (recall@k, MRR)."""
    r = run["metrics"].get("retrieval") or {}
    keys = [k for k in ("recall@1", "recall@3", "recall@5", "recall@10", "mrr") if r.get(k) is not None]
    return ["Measure", "Value"], [[k, fmt.pct(r[k]) if k.startswith("recall") else f"{r[k]:.3f}"] for k in keys] + (
        [["questions", str(r["n_questions"])]] if r.get("n_questions") is not None else [])


def training_table(run: dict) -> Table:
    """LoRA training summary: time, throughput, loss start and end, steps."""
    t = run["metrics"].get("train") or {}
    rows = []
    for key, name, pattern in (("train_seconds", "Training time (s)", "{:.1f}"), ("steps", "Optimiser steps", "{}"), ("tokens_per_s", "Tokens / s", "{:.0f}"),
                           ("loss_first", "Loss (first step)", "{:.3f}"), ("loss_last", "Loss (last step)", "{:.3f}")):
        if t.get(key) is not None:
            rows.append([name, pattern.format(t[key])])
    leakage = t.get("leakage") or {}
    if leakage:
        rows.append(["Leakage guard", ", ".join(f"{k}: {v}" for k, v in sorted(leakage.items()) if not isinstance(v, (list, dict)))])
    return ["Measure", "Value"], rows


SEEN_KEYS = (("documents_indexed", "documents indexed"), ("chunks_indexed", "chunks indexed"), ("few_shot_pool", "few-shot pool"),
             ("documents", "documents trained on"), ("chunks", "chunk passages (continued pre-training)"), ("generated_qa", "generated Q/A pairs (synthetic)"),
             ("train_qa", "train Q/A"), ("raft_examples", "RAFT examples"), ("dev_questions", "dev questions (checkpoint pick, not trained)"),
             ("generated_dropped_leak", "generated pairs dropped as held-out twins"), ("withheld_twins", "withheld twins"))


def seen_table(run: dict) -> Table:
    """What each method saw: documents indexed or trained on, Q/A used, synthetic pairs, few-shot pool, withheld twins."""
    seen = run["metrics"].get("seen") or {}
    rows = []
    for m in _methods(run):
        info = {**(seen.get(m) or {}), **((seen.get(m) or {}).get("train_data") or {})}
        parts = [f"{label_} {info[k]:,}" for k, label_ in SEEN_KEYS if isinstance(info.get(k), int) and (info[k] or k == "withheld_twins")]
        rows.append([label(m), "; ".join(parts) or "the question only"])
    return ["Method", "Saw"], rows


def curve_table(run: dict) -> Table:
    """Learning curve of the tuned methods: dev and held-out accuracy at points of the training budget."""
    rows = []
    for m, points in (run["metrics"].get("learning_curve") or {}).items():
        for p in points:
            rows.append([label(m), str(p.get("step")), _num(p.get("train_seconds"), "{:.0f}"), f"{fmt.pct(p['dev_accuracy'])} of {p.get('n_dev', 0)}" if p.get("dev_accuracy") is not None else "–",
                         f"{fmt.pct(p['held_out_accuracy'])} of {p.get('n_held_out', 0)}" if p.get("held_out_accuracy") is not None else "–",
                         "base model (reference)" if p.get("base") else ("picked" if p.get("picked") else "")])
    return ["Method", "Step", "Train s", "Dev accuracy", "Held-out accuracy (subset)", ""], rows


def settings_table(run: dict) -> Table:
    """The settings that shaped the numbers, from config.json."""
    c = run["config"]
    g = lambda section, key: (c.get(section) or {}).get(key, "")  # noqa: E731
    rows = [
        ["Model", str(c.get("model", ""))], ["Preset / seed", f"{c.get('preset', '')} / {c.get('seed', '')}"],
        ["Methods", ", ".join(label(m) for m in c.get("methods", []))],
        ["Chunking", f"{g('split', 'mode')} {g('split', 'chunk_size')} (overlap {g('split', 'chunk_overlap')})"],
        ["Retrieval", f"{g('retrieval', 'mode')}, top {g('retrieval', 'top_k')}, {g('index', 'embedder')} / {g('index', 'index_type')}"],
        ["Few-shot", f"k={g('few_shot', 'k')}, {g('few_shot', 'selection')}"],
        ["LoRA", f"r={g('train', 'rank')}, alpha={g('train', 'alpha')}, lr={g('train', 'learning_rate')}, steps={g('train', 'max_steps') or str(g('train', 'epochs')) + ' epochs'}"],
        ["Generation", f"max {g('generation', 'max_new_tokens')} new tokens, temperature {g('generation', 'temperature')}"],
        ["Evaluation", f"{g('eval', 'bootstrap_samples')} bootstrap samples, {fmt.money(run['metrics'].get('usd_per_hour', g('eval', 'usd_per_hour')))}/hour, "
                       f"latency probe of {g('eval', 'latency_probe_n')} questions answered one at a time per method (answer cache bypassed)"],
    ]
    rep = run["meta"].get("reproducibility") or {}
    if rep:
        rows.append(["Reproducibility", f"seed {rep.get('seed')}, {rep.get('decoding')}, batch size {rep.get('batch_size')}, {rep.get('dtype')} on "
                     f"{rep.get('device')}, {rep.get('torch_threads')} torch threads, CPU flags "
                     f"{', '.join((run['meta'].get('machine') or {}).get('cpu_flags') or []) or 'n/a'}. {rep.get('may_vary', '')}"])
    for key in ("corpus_fingerprint", "model_fingerprint"):
        if c.get(key):
            rows.append([key.replace("_", " ").capitalize(), str(c[key])[:16]])
    return ["Setting", "Value"], rows


def sample_rows(run: dict, limit: int = SAMPLE_QUESTIONS) -> list[dict]:
    """Up to ``limit`` held-out questions with every method's answer; questions where methods disagree first."""
    by_q: dict[str, dict] = {}
    for r in run["predictions"]:
        q = by_q.setdefault(r["question_id"], {"id": r["question_id"], "question": r.get("question", ""), "gold": r.get("gold") or [],
                                               "answerable": r.get("answerable", True), "answers": {}})
        q["answers"][r["method"]] = r
    items = list(by_q.values())
    disagree = [q for q in items if len({bool(a.get("correct")) for a in q["answers"].values()}) > 1]
    rest = [q for q in items if q not in disagree]
    return (disagree + rest)[:limit]


def _mark(row: dict | None) -> tuple[str, str]:
    if row is None:
        return "", "not run"
    if row.get("correct"):
        return "ok", "correct"
    if row.get("abstained"):
        return "abstain", "abstained"
    return "bad", "hallucinated" if row.get("hallucinated") else "wrong"


# ---------------------------------------------------------------- HTML

CSS = """
*{box-sizing:border-box}body{margin:0;background:#f4f5f7;color:#1f2937;font:14px/1.5 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:32px 28px 48px}
header{border-bottom:3px solid #0b3d66;padding-bottom:14px;margin-bottom:22px}
h1{font-size:26px;margin:0 0 4px;color:#0b3d66}h2{font-size:18px;margin:30px 0 10px;color:#0b3d66;border-bottom:1px solid #d9dde3;padding-bottom:4px}
h3{font-size:15px;margin:16px 0 6px}.sub{color:#5b6472;font-size:13px}.sub span{margin-right:14px}
.card{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:16px 20px;margin:10px 0}
.verdict{border-left:6px solid #0b7a4b}.verdict .best{font-size:22px;font-weight:700;color:#0b7a4b;margin:0 0 4px}
.verdict p.summary{font-size:15px;margin:4px 0 10px}.verdict.none{border-left-color:#8a5300}.verdict.none .best{color:#8a5300}
ul{margin:6px 0 6px 20px;padding:0}li{margin:2px 0}.caveats li{color:#8a5300}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px;margin:6px 0}
th{background:#0b3d66;color:#fff;text-align:left;font-weight:600;padding:7px 9px;white-space:nowrap}
td{border-bottom:1px solid #e6e8eb;padding:6px 9px;vertical-align:top}tr:nth-child(even) td{background:#fafbfc}
tr.best td{background:#e8f5ee;font-weight:600}td.num{white-space:nowrap}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:14px}.grid .card{margin:0;overflow:auto}.chart svg{max-width:100%;height:auto}
.ok{color:#0b7a4b}.bad{color:#b42318}.abstain{color:#6b7280}.ans{font-size:12.5px;max-width:220px;overflow-wrap:anywhere}
.tag{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;margin-left:4px}
.tag.ok{background:#e3f4ea}.tag.bad{background:#fde8e6}.tag.abstain{background:#eef0f2}
footer{margin-top:36px;color:#6b7280;font-size:12px;border-top:1px solid #d9dde3;padding-top:10px}
.note{color:#6b7280;font-size:12.5px}
@media print{body{background:#fff}.card{break-inside:avoid}}
"""


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_table(table: Table, best: str | None = None, num_from: int = 1) -> str:
    head, rows = table
    if not rows:
        return '<p class="note">Not measured in this run.</p>'
    out = ["<table><thead><tr>", "".join(f"<th>{esc(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        cls = ' class="best"' if best is not None and row and row[0] == best else ""
        cells = "".join(f'<td class="num">{esc(c)}</td>' if i >= num_from else f"<td>{esc(c)}</td>" for i, c in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _charts(run: dict) -> list[tuple[str, Any]]:
    """(title, altair chart) for every chart the run's data supports."""
    from workbench.reports import charts

    out = []
    for title, build in (("Accuracy vs hallucination", charts.accuracy_hallucination_chart), ("Accuracy vs cost", charts.accuracy_cost_chart),
                         ("Rates per method", charts.rates_chart), ("Break-even", charts.break_even_chart)):
        try:
            out.append((title, build(run["metrics"])))
        except charts.ChartError:
            continue
    if run["train_log"]:
        out.append(("Training loss", charts.loss_chart(run["train_log"])))
    if run["metrics"].get("learning_curve"):
        try:
            out.append(("Learning curve", charts.learning_curve_chart(run["metrics"])))
        except charts.ChartError:
            pass
    return out


def _embed_json(data: Any) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' can close the element."""
    text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_html(run_dir: str | Path, recommendation: dict | None = None) -> str:
    """A standalone HTML report (inline CSS and SVG, no scripts but the run's data as JSON, no network)."""
    from workbench.reports.charts import to_svg

    run = load_run_data(run_dir)
    rec = _recommendation(run, recommendation)
    metrics, corpus = run["metrics"], run["metrics"].get("corpus") or {}
    title, reasons, notes = verdict(rec)
    sub = [f"Corpus: {corpus.get('name', '')} ({corpus.get('kind', '')})", f"{corpus.get('n_docs', '?')} documents",
           f"{corpus.get('n_test_evaluated', '?')} held-out questions", f"Run: {run['run_id']}", f"Date: {_when(run)}",
           f"Model: {run['config'].get('model', '')}"]
    parts = [
        f"<header><h1>RAG vs fine-tuning vs few-shot: {esc(_title(run))}</h1>",
        '<div class="sub">' + "".join(f"<span>{esc(s)}</span>" for s in sub if not s.endswith(": ")) + "</div></header>",
        f'<section class="card verdict{"" if rec.get("best") else " none"}"><p class="best">{esc(title)}</p>',
        f'<p class="summary">{esc(rec["summary"])}</p><h3>Why</h3><ul>' + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>",
    ]
    if notes:
        parts.append(f'<h3>{"Caveats" if rec.get("best") else "What would help"}</h3><ul class="caveats">' + "".join(f"<li>{esc(c)}</li>" for c in notes) + "</ul>")
    parts += [
        "</section>", "<h2>Decision path</h2>", _html_table(decision_path(rec), num_from=99),
        "<h2>Quality floor</h2>", _html_table(eligibility_table(rec), num_from=3),
        "<h2>Ranking</h2>", _html_table(ranking(rec), best=None, num_from=2),
        '<p class="note">Only methods that pass the quality floor can be recommended. Score = weighted accuracy, net useful answers (right answers and '
        "correct \"I don't know\"s minus confident wrong answers), monthly cost and p95 per-query latency (differences below what matters at your "
        f"volume score the same), then the adjustments shown. Weights: {esc(', '.join(f'{k} {v:.2f}' for k, v in rec['inputs']['weights'].items()))}.</p>",
        "<h3>Other methods</h3><ul>" + "".join(f"<li>{esc(r['reasons'][0])}" + "".join(f"; {esc(x)}" for x in r.get("ineligible_because") or []) + "</li>"
                                                for r in rec["ranked"] if r["method"] != rec.get("best")) + "</ul>",
        "<h2>Scoreboard</h2>", _html_table(scoreboard(run), best=_best_label(rec)),
        f'<p class="note">Accuracy over answerable held-out questions; hallucination = confident wrong answers over all held-out questions; '
        f"95% bootstrap intervals. Per-query p50 / p95: seconds to answer one question alone (latency probe, answer cache bypassed; n in brackets); "
        f"batched q/s: throughput of the batched evaluation, which the cost is based on. Cost at {esc(fmt.money(metrics.get('usd_per_hour')))}/hour of machine time.</p>",
        "".join(f'<p class="note">{esc(n)}</p>' for n in metric_notes(run)),
        "<h2>Charts</h2><div class=\"grid\">",
    ]
    parts += [f'<div class="card chart" title="{esc(t)}">{to_svg(c)}</div>' for t, c in _charts(run)]
    parts += [
        "</div>", "<h2>Are the differences real?</h2>", _html_table(mcnemar_table(run)),
        "<h2>Break-even volumes</h2>", _html_table(break_even_table(run)),
        '<div class="grid"><div><h2>Retrieval</h2>', _html_table(retrieval_table(run)), "</div><div><h2>Training (LoRA)</h2>",
        _html_table(training_table(run)), "</div></div>", "<h2>What each method saw</h2>", _html_table(seen_table(run), num_from=99),
        "<h2>Learning curve</h2>", _html_table(curve_table(run), num_from=99), "<h2>Settings</h2>", _html_table(settings_table(run), num_from=99),
        "<h2>Sample answers</h2>", _sample_html(run),
        f"<footer>Generated by workbench {esc(__version__)} · git {esc(run['meta'].get('git_revision', '') or 'n/a')} · "
        f"{esc(', '.join(f'{k} {v}' for k, v in sorted((run['meta'].get('versions') or {}).items())[:8]))}"
        f"{' · ' + esc((run['meta'].get('machine') or {}).get('platform', '')) if run['meta'].get('machine') else ''}</footer>",
    ]
    data = {k: run[k] for k in ("config", "meta", "metrics", "predictions", "status")}
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Workbench report: {esc(_title(run))}</title><style>{CSS}</style></head><body><main>" + "\n".join(parts) + "</main>"
        f'<script type="application/json" id="{DATA_ID}">{_embed_json(data)}</script></body></html>\n'
    )


def _sample_html(run: dict) -> str:
    methods = _methods(run)
    items = sample_rows(run)
    head = "".join(f"<th>{esc(label(m))}</th>" for m in methods)
    rows = []
    for q in items:
        gold = " | ".join(q["gold"]) if q["gold"] else "(unanswerable)"
        cells = []
        for m in methods:
            row = q["answers"].get(m)
            cls, word = _mark(row)
            text = (row or {}).get("answer", "")
            text = text if len(text) <= 200 else text[:200] + "…"
            why = (row or {}).get("why", "")
            cells.append(f'<td class="ans">{esc(text)}<span class="tag {cls}" title="{esc(why)}">{esc(word)}</span>'
                         + (f'<div class="note">{esc(why)}</div>' if why else "") + "</td>")
        rows.append(f"<tr><td>{esc(q['question'])}<div class=\"note\">{esc(q['id'])}</div></td><td class=\"ans\">{esc(gold)}</td>{''.join(cells)}</tr>")
    n_q = len({r["question_id"] for r in run["predictions"]})
    return (f'<p class="note">{len(items)} of {n_q} held-out questions, those where methods disagree first.</p>'
            f"<table><thead><tr><th>Question</th><th>Gold</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def load_report_html(path: str | Path) -> dict:
    """The run data (config, meta, metrics, predictions, status) embedded in an HTML report."""
    text = Path(path).read_text(encoding="utf-8")
    match = re.search(rf'<script type="application/json" id="{DATA_ID}">(.*?)</script>', text, re.S)
    if not match:
        raise ReportError(f"{path}: no embedded run data (<script id=\"{DATA_ID}\">); export it again with: python -m workbench report RUN_DIR")
    try:
        data = json.loads(match.group(1))
    except (ValueError, RecursionError) as exc:
        raise ReportError(f"{path}: the embedded run data is not valid JSON ({str(exc)[:80] or 'nested too deeply'}); export it again") from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics") or {}, dict):
        raise ReportError(f"{path}: the embedded run data is not a run; export it again with: python -m workbench report RUN_DIR")
    return data


# ---------------------------------------------------------------- Markdown, CSV, JSON


def md_cell(text: Any) -> str:
    """Text safe in Markdown: no HTML, no table-breaking pipes or newlines, no links or images (``](``, ``][``, ``]:`` broken up)."""
    out = html.escape(str(text), quote=False).replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return out.replace("](", "]\\(").replace("][", "]\\[").replace("]:", "]\\:")


def _md_table(table: Table) -> str:
    head, rows = table
    if not rows:
        return "_Not measured in this run._\n"
    lines = ["| " + " | ".join(md_cell(h) for h in head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_markdown(run_dir: str | Path, recommendation: dict | None = None) -> str:
    """The report as Markdown tables (text escaped so no HTML in it renders)."""
    run = load_run_data(run_dir)
    rec = _recommendation(run, recommendation)
    corpus = run["metrics"].get("corpus") or {}
    title, reasons, notes = verdict(rec)
    out = [f"# RAG vs fine-tuning vs few-shot: {md_cell(_title(run))}\n",
           " · ".join(x for x in (f"Corpus {md_cell(corpus.get('name', ''))} ({md_cell(corpus.get('kind', ''))})", f"run {md_cell(run['run_id'])}",
                                  md_cell(_when(run)), f"model {md_cell(run['config'].get('model', ''))}") if x) + "\n",
           f"## {md_cell(title)}\n", md_cell(rec["summary"]) + "\n", "**Why**\n"]
    out += [f"- {md_cell(r)}" for r in reasons] + [""]
    if notes:
        out += [f"**{'Caveats' if rec.get('best') else 'What would help'}**\n"] + [f"- {md_cell(c)}" for c in notes] + [""]
    for title, table in (("Decision path", decision_path(rec)), ("Quality floor", eligibility_table(rec)), ("Ranking", ranking(rec)), ("Scoreboard", scoreboard(run)),
                         ("Are the differences real? (McNemar)", mcnemar_table(run)), ("Break-even volumes", break_even_table(run)),
                         ("Retrieval", retrieval_table(run)), ("Training (LoRA)", training_table(run)), ("What each method saw", seen_table(run)),
                         ("Learning curve", curve_table(run)), ("Settings", settings_table(run))):
        out += [f"## {title}\n", _md_table(table)]
        if title == "Scoreboard":
            out += ["## What the figures mean\n"] + [f"- {md_cell(n)}" for n in metric_notes(run)] + [""]
    methods = _methods(run)
    rows = []
    for q in sample_rows(run):
        cells = [q["question"], " / ".join(q["gold"]) or "(unanswerable)"]
        for m in methods:
            row = q["answers"].get(m)
            why = (row or {}).get("why")
            cells.append(f"{(row or {}).get('answer', '')} ({_mark(row)[1]}{': ' + why if why else ''})")
        rows.append(cells)
    out += ["## Sample answers\n", _md_table((["Question", "Gold"] + [label(m) for m in methods], rows))]
    return "\n".join(out)


CSV_COLUMNS = ["method", "question_id", "question", "gold", "answerable", "split", "qtype", "answer", "correct", "abstained", "hallucinated",
               "exact_match", "f1", "match", "why", "semantic_sim", "unsupported", "groundedness", "prompt_tokens", "output_tokens", "batched_latency_s",
               "probe_latency_s", "cached", "sources"]
CSV_RENAMED = {"batched_latency_s": "latency_s", "probe_latency_s": "latency_probe_s"}  # labelled: batch share vs one question alone


def csv_safe(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula: leading = + - @ tab or CR get a quote prefix."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def render_csv(run_dir: str | Path) -> str:
    """Predictions as CSV, one row per method x question, formula-injection safe."""
    run = load_run_data(run_dir)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in run["predictions"]:
        values = dict(r)
        values["gold"] = " | ".join(r.get("gold") or [])
        values["sources"] = " | ".join(str(c.get("doc_id") or c.get("example_id") or "") for c in r.get("contexts") or [])
        writer.writerow([csv_safe(values.get(CSV_RENAMED.get(col, col))) for col in CSV_COLUMNS])
    return buf.getvalue()


def render_json(run_dir: str | Path) -> str:
    """{"config", "meta", "metrics", "predictions"} of the run as one JSON document."""
    run = load_run_data(run_dir)
    return json.dumps({k: run[k] for k in ("config", "meta", "metrics", "predictions")}, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"


# ---------------------------------------------------------------- writing


REPORT_SUFFIXES = {"html": (".html", ".htm"), "pdf": (".pdf",), "md": (".md", ".markdown"), "csv": (".csv",), "json": (".json",)}


def report_target(run_dir: Path, fmt: str, out: Path | None) -> Path:
    """Where a report goes: ``out`` (inside it as report.<fmt> when it is a folder); never a run's own file or a file of another kind."""
    from workbench.pipeline.runstore import RUN_FILES

    if out is None:
        return run_dir / f"report.{fmt}"
    out = Path(out)
    if out.is_dir():
        out = out / f"report.{fmt}"
    parent_is_run = (out.parent / "status.json").is_file() or (out.parent / "config.json").is_file()
    if out.name in RUN_FILES and parent_is_run:
        raise ReportError(f"{out}: is one of the run's own files and is never overwritten; give --out a new file such as {out.parent / f'report.{fmt}'}")
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise ReportError(f"{out}: is not a plain file; give --out a new file name")
    if out.exists() and out.suffix.lower() not in REPORT_SUFFIXES[fmt]:
        raise ReportError(f"{out}: exists and is not a .{fmt} file, so it is not overwritten; give --out a new file ending in .{fmt}")
    return out


def write_report(run_dir: str | Path, fmt: Format = "html", out: Path | None = None, recommendation: dict | None = None) -> Path:
    """Write the report in ``fmt`` to ``out`` (default ``<run_dir>/report.<ext>``; a folder gets report.<ext> inside) and return its path."""
    if fmt not in FORMATS:
        raise ReportError(f"report format {fmt!r} is unknown; use one of {', '.join(FORMATS)}")
    run_dir = Path(run_dir)
    out = report_target(run_dir, fmt, out)
    if fmt == "pdf":
        try:
            data = render_pdf(run_dir, recommendation)
        except UnicodeError as exc:
            raise ReportError(f"{run_dir}: holds text that is not valid Unicode ({exc.reason}); export it as html or md instead") from None
    else:
        render = {"html": render_html, "md": render_markdown}.get(fmt)
        text = render(run_dir, recommendation) if render else (render_csv(run_dir) if fmt == "csv" else render_json(run_dir))
        data = text.encode("utf-8", errors="replace")  # a stray lone surrogate in an old run folder becomes '?', never a crash
    try:
        atomic_write_bytes(out, data)
    except OSError as exc:
        blocker = next((p for p in out.parents if p.exists()), None)
        reason = f"{blocker} is a file, not a folder" if blocker is not None and not blocker.is_dir() else (exc.strerror or str(exc))
        raise ReportError(f"{out}: cannot write the report ({reason}); choose another --out") from None
    return out


def render_pdf(run_dir: str | Path, recommendation: dict | None = None) -> bytes:
    """A PDF (A4 landscape) with the recommendation, scoreboard, comparisons and charts (PNG via vl-convert)."""
    from xml.sax.saxutils import escape

    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
    from reportlab.lib.units import cm
    from reportlab.platypus import Image, KeepTogether, Paragraph, SimpleDocTemplate, Spacer, TableStyle
    from reportlab.platypus import Table as PdfTable

    from workbench.reports.charts import to_png

    run = load_run_data(run_dir)
    rec = _recommendation(run, recommendation)
    ss = getSampleStyleSheet()
    navy = colors.HexColor("#0b3d66")
    h1 = ParagraphStyle("h1", parent=ss["Title"], alignment=0, fontSize=18, textColor=navy, spaceAfter=4)
    h2 = ParagraphStyle("h2", parent=ss["Heading2"], fontSize=13, textColor=navy, spaceBefore=10, spaceAfter=4)
    body = ParagraphStyle("body", parent=ss["BodyText"], fontSize=9.5, leading=12.5)
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10)
    head_style = ParagraphStyle("head", parent=small, textColor=colors.white, fontName="Helvetica-Bold")
    p = lambda text, style=body: Paragraph(escape(str(text)), style)  # noqa: E731

    def table(t: Table, widths: list[float] | None = None, best: str | None = None) -> Any:
        head, rows = t
        if not rows:
            return p("Not measured in this run.", small)
        data = [[p(h, head_style) for h in head]] + [[p(c, small) for c in row] for row in rows]
        style = [("BACKGROUND", (0, 0), (-1, 0), navy), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                 ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.HexColor("#d9dde3")),
                 ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#f6f7f9")])]
        for i, row in enumerate(rows, start=1):
            if best is not None and row[0] == best:
                style.append(("BACKGROUND", (0, i), (-1, i), colors.HexColor("#e3f4ea")))
        out = PdfTable(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
        out.setStyle(TableStyle(style))
        return out

    corpus = run["metrics"].get("corpus") or {}
    title, reasons, notes = verdict(rec)
    story: list[Any] = [
        p(f"RAG vs fine-tuning vs few-shot: {_title(run)}", h1),
        p(f"Corpus {corpus.get('name', '')} ({corpus.get('kind', '')}) · {corpus.get('n_test_evaluated', '?')} held-out questions · "
          f"run {run['run_id']} · {_when(run)} · model {run['config'].get('model', '')}", small),
        p(title, h2), p(rec["summary"]),
    ]
    story += [p("• " + r) for r in reasons]
    word = "Caveat: " if rec.get("best") else "Would help: "
    story += [p(word + c, ParagraphStyle("cav", parent=body, textColor=colors.HexColor("#8a5300"))) for c in notes]
    widths = [w * cm for w in (2.4, 0.9, 2.5, 2.6, 2.0, 1.3, 1.2, 2.6, 1.8, 1.6, 1.9, 1.8, 1.8, 1.8)]  # no header breaks inside a word
    story += [KeepTogether([p("Scoreboard", h2), table(scoreboard(run), widths, best=_best_label(rec)), *[p(n, small) for n in metric_notes(run)]])]
    story += [KeepTogether([p("Quality floor", h2), table(eligibility_table(rec), [3 * cm, 1.8 * cm, 14 * cm, 2.6 * cm, 2.8 * cm])])]
    story += [KeepTogether([p("Ranking", h2), table(ranking(rec))])]
    images = []
    for _title_text, chart in _charts(run):
        png = to_png(chart, scale=2.0)
        img = Image(io.BytesIO(png))
        ratio = img.imageHeight / img.imageWidth
        img.drawWidth, img.drawHeight = 8.6 * cm, 8.6 * cm * ratio
        images.append(img)
    if images:
        grid = [images[i:i + 3] + [""] * (3 - len(images[i:i + 3])) for i in range(0, len(images), 3)]
        charts_table = PdfTable(grid, colWidths=[8.9 * cm] * 3, hAlign="LEFT")
        charts_table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("BOTTOMPADDING", (0, 0), (-1, -1), 10)]))
        story += [KeepTogether([p("Charts", h2), charts_table])]
    story += [KeepTogether([p("Decision path", h2), table(decision_path(rec), [7 * cm, 8 * cm, 10 * cm])]),
              KeepTogether([p("Are the differences real? (McNemar)", h2), table(mcnemar_table(run))]),
              KeepTogether([p("Break-even volumes", h2), table(break_even_table(run))]),
              KeepTogether([p("Retrieval", h2), table(retrieval_table(run), [6 * cm, 4 * cm])]),
              KeepTogether([p("What each method saw", h2), table(seen_table(run), [3 * cm, 22 * cm])]),
              KeepTogether([p("Learning curve", h2), table(curve_table(run))]),
              KeepTogether([p("Training (LoRA)", h2), table(training_table(run), [6 * cm, 12 * cm])]),
              KeepTogether([p("Settings", h2), table(settings_table(run), [5 * cm, 18 * cm]), Spacer(1, 8),
                            p(f"Generated by workbench {__version__} · git {run['meta'].get('git_revision', '') or 'n/a'}", small)])]
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=landscape(A4), leftMargin=1.4 * cm, rightMargin=1.4 * cm, topMargin=1.2 * cm, bottomMargin=1.2 * cm,
                            title=f"Workbench report: {_title(run)}", author=f"workbench {__version__}")
    doc.build(story)
    return buf.getvalue()
