"""The standalone HTML report: escaped text, tables, inline SVG charts and the run's data embedded for re-reading."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from workbench import __version__, fmt
from workbench.methods.registry import label

from . import tables as tb
from .run_data import ReportError, load_run_data

DATA_ID = "workbench-run"


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
td{border-bottom:1px solid #e6e8eb;padding:6px 9px;vertical-align:top;overflow-wrap:anywhere}tr:nth-child(even) td{background:#fafbfc}
tr.best td{background:#e8f5ee;font-weight:600}td.num{white-space:nowrap}
.grid{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:14px}.grid .card{margin:0;overflow:auto}.chart svg{max-width:100%;height:auto}
.ok{color:#0b7a4b}.bad{color:#b42318}.abstain{color:#6b7280}.ans{font-size:12.5px;max-width:220px;overflow-wrap:anywhere}
.tag{display:inline-block;font-size:11px;padding:0 6px;border-radius:8px;margin-left:4px}
.tag.ok{background:#e3f4ea}.tag.bad{background:#fde8e6}.tag.abstain{background:#eef0f2}
footer{margin-top:36px;color:#6b7280;font-size:12px;border-top:1px solid #d9dde3;padding-top:10px}
.note{color:#6b7280;font-size:12.5px}
@media print{body{background:#fff}.card{break-inside:avoid}}
"""


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_table(table: tb.Table, best: str | None = None, num_from: int = 1) -> str:
    head, rows = table
    if not rows:
        return '<p class="note">Not measured in this run.</p>'
    out = ["<table><thead><tr>", "".join(f"<th>{esc(h)}</th>" for h in head), "</tr></thead><tbody>"]
    for row in rows:
        cls = ' class="best"' if best is not None and row and row[0] == best else ""
        # a figure never breaks across lines; a sentence in a figures column (e.g. the leakage guard) wraps
        cells = "".join(f'<td class="num">{esc(c)}</td>' if i >= num_from and len(str(c)) <= 40 else f"<td>{esc(c)}</td>" for i, c in enumerate(row))
        out.append(f"<tr{cls}>{cells}</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def chart_specs(run: dict) -> list[tuple[str, Any]]:
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
    rec = tb.recommendation_of(run, recommendation)
    metrics, corpus = run["metrics"], run["metrics"].get("corpus") or {}
    title, reasons, notes = tb.verdict(rec)
    sub = [f"Corpus: {corpus.get('name', '')} ({corpus.get('kind', '')})", f"{corpus.get('n_docs', '?')} documents",
           f"{corpus.get('n_test_evaluated', '?')} held-out questions", f"Run: {run['run_id']}", f"Date: {tb.run_when(run)}",
           f"Model: {run['config'].get('model', '')}"]
    parts = [
        f"<header><h1>RAG vs fine-tuning vs few-shot: {esc(tb.run_title(run))}</h1>",
        '<div class="sub">' + "".join(f"<span>{esc(s)}</span>" for s in sub if not s.endswith(": ")) + "</div></header>",
        f'<section class="card verdict{"" if rec.get("best") else " none"}"><p class="best">{esc(title)}</p>',
        f'<p class="summary">{esc(rec["summary"])}</p><h3>Why</h3><ul>' + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>",
    ]
    if notes:
        parts.append(f'<h3>{"Caveats" if rec.get("best") else "What would help"}</h3><ul class="caveats">' + "".join(f"<li>{esc(c)}</li>" for c in notes) + "</ul>")
    parts += [
        "</section>", "<h2>Decision path</h2>", _html_table(tb.decision_path(rec), num_from=99),
        "<h2>Quality floor</h2>", _html_table(tb.eligibility_table(rec), num_from=3),
        "<h2>Ranking</h2>", _html_table(tb.ranking(rec), best=None, num_from=2),
        '<p class="note">Only methods that pass the quality floor can be recommended. Score = weighted accuracy, net useful answers (right answers and '
        "correct \"I don't know\"s minus confident wrong answers), monthly cost and p95 per-query latency (differences below what matters at your "
        f"volume score the same), then the adjustments shown. Weights: {esc(', '.join(f'{k} {v:.2f}' for k, v in rec['inputs']['weights'].items()))}.</p>",
        "<h3>Other methods</h3><ul>" + "".join(f"<li>{esc(r['reasons'][0])}" + "".join(f"; {esc(x)}" for x in r.get("ineligible_because") or []) + "</li>"
                                                for r in rec["ranked"] if r["method"] != rec.get("best")) + "</ul>",
        "<h2>Scoreboard</h2>", _html_table(tb.scoreboard(run), best=tb.best_label(rec)),
        f'<p class="note">Accuracy over answerable held-out questions; hallucination = confident wrong answers over all held-out questions; '
        f"95% bootstrap intervals. Per-query p50 / p95: seconds to answer one question alone (latency probe, answer cache bypassed; n in brackets); "
        f"batched q/s: throughput of the batched evaluation, which the cost is based on. Cost at {esc(fmt.money(metrics.get('usd_per_hour')))}/hour of machine time.</p>",
        "".join(f'<p class="note">{esc(n)}</p>' for n in tb.metric_notes(run)),
        "<h2>Charts</h2><div class=\"grid\">",
    ]
    parts += [f'<div class="card chart" title="{esc(t)}">{to_svg(c)}</div>' for t, c in chart_specs(run)]
    parts += [
        "</div>", "<h2>Are the differences real?</h2>", _html_table(tb.mcnemar_table(run)),
        "<h2>Break-even volumes</h2>", _html_table(tb.break_even_table(run)),
        '<div class="grid"><div><h2>Retrieval</h2>', _html_table(tb.retrieval_table(run)), "</div><div><h2>" + esc(tb.training_title(run)) + "</h2>",
        _html_table(tb.training_table(run)), "</div></div>", "<h2>What each method saw</h2>", _html_table(tb.seen_table(run), num_from=99),
        "<h2>Learning curve</h2>", _html_table(tb.curve_table(run), num_from=99), "<h2>Settings</h2>", _html_table(tb.settings_table(run), num_from=99),
        "<h2>Sample answers</h2>", _sample_html(run),
        f"<footer>Generated by workbench {esc(__version__)} · git {esc(run['meta'].get('git_revision', '') or 'n/a')} · "
        f"{esc(', '.join(f'{k} {v}' for k, v in sorted((run['meta'].get('versions') or {}).items())[:8]))}"
        f"{' · ' + esc((run['meta'].get('machine') or {}).get('platform', '')) if run['meta'].get('machine') else ''}</footer>",
    ]
    data = {k: run[k] for k in ("config", "meta", "metrics", "predictions", "status")}
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Workbench report: {esc(tb.run_title(run))}</title><style>{CSS}</style></head><body><main>" + "\n".join(parts) + "</main>"
        f'<script type="application/json" id="{DATA_ID}">{_embed_json(data)}</script></body></html>\n'
    )


def _sample_html(run: dict) -> str:
    methods = tb.method_names(run)
    items = tb.sample_rows(run)
    head = "".join(f"<th>{esc(label(m))}</th>" for m in methods)
    rows = []
    for q in items:
        gold = " | ".join(q["gold"]) if q["gold"] else "(unanswerable)"
        cells = []
        for m in methods:
            row = q["answers"].get(m)
            cls, word = tb.verdict_mark(row)
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
