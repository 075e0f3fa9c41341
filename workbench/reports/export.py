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
from pathlib import Path
from typing import Any, Literal

from workbench import __version__
from workbench.methods.registry import label
from workbench.storage import atomic_write_bytes

from .html import chart_specs, render_html
from .run_data import ReportError, load_run_data
from .tables import (
    Table,
    best_label,
    break_even_table,
    curve_table,
    decision_path,
    eligibility_table,
    mcnemar_table,
    method_names,
    metric_notes,
    ranking,
    recommendation_of,
    retrieval_table,
    run_title,
    run_when,
    sample_rows,
    scoreboard,
    seen_table,
    settings_table,
    training_table,
    training_title,
    verdict,
    verdict_mark,
)

FORMATS = ("html", "pdf", "md", "csv", "json")
Format = Literal["html", "pdf", "md", "csv", "json"]
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


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
    rec = recommendation_of(run, recommendation)
    corpus = run["metrics"].get("corpus") or {}
    title, reasons, notes = verdict(rec)
    out = [f"# RAG vs fine-tuning vs few-shot: {md_cell(run_title(run))}\n",
           " · ".join(x for x in (f"Corpus {md_cell(corpus.get('name', ''))} ({md_cell(corpus.get('kind', ''))})", f"run {md_cell(run['run_id'])}",
                                  md_cell(run_when(run)), f"model {md_cell(run['config'].get('model', ''))}") if x) + "\n",
           f"## {md_cell(title)}\n", md_cell(rec["summary"]) + "\n", "**Why**\n"]
    out += [f"- {md_cell(r)}" for r in reasons] + [""]
    if notes:
        out += [f"**{'Caveats' if rec.get('best') else 'What would help'}**\n"] + [f"- {md_cell(c)}" for c in notes] + [""]
    for title, table in (("Decision path", decision_path(rec)), ("Quality floor", eligibility_table(rec)), ("Ranking", ranking(rec)), ("Scoreboard", scoreboard(run)),
                         ("Are the differences real? (McNemar)", mcnemar_table(run)), ("Break-even volumes", break_even_table(run)),
                         ("Retrieval", retrieval_table(run)), (training_title(run), training_table(run)), ("What each method saw", seen_table(run)),
                         ("Learning curve", curve_table(run)), ("Settings", settings_table(run))):
        out += [f"## {title}\n", _md_table(table)]
        if title == "Scoreboard":
            out += ["## What the figures mean\n"] + [f"- {md_cell(n)}" for n in metric_notes(run)] + [""]
    methods = method_names(run)
    rows = []
    for q in sample_rows(run):
        cells = [q["question"], " / ".join(q["gold"]) or "(unanswerable)"]
        for m in methods:
            row = q["answers"].get(m)
            why = (row or {}).get("why")
            cells.append(f"{(row or {}).get('answer', '')} ({verdict_mark(row)[1]}{': ' + why if why else ''})")
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
    rec = recommendation_of(run, recommendation)
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
        p(f"RAG vs fine-tuning vs few-shot: {run_title(run)}", h1),
        p(f"Corpus {corpus.get('name', '')} ({corpus.get('kind', '')}) · {corpus.get('n_test_evaluated', '?')} held-out questions · "
          f"run {run['run_id']} · {run_when(run)} · model {run['config'].get('model', '')}", small),
        p(title, h2), p(rec["summary"]),
    ]
    story += [p("• " + r) for r in reasons]
    word = "Caveat: " if rec.get("best") else "Would help: "
    story += [p(word + c, ParagraphStyle("cav", parent=body, textColor=colors.HexColor("#8a5300"))) for c in notes]
    widths = [w * cm for w in (2.4, 0.9, 2.5, 2.6, 2.0, 1.3, 1.2, 2.6, 1.8, 1.6, 1.9, 1.8, 1.8, 1.8)]  # no header breaks inside a word
    story += [KeepTogether([p("Scoreboard", h2), table(scoreboard(run), widths, best=best_label(rec)), *[p(n, small) for n in metric_notes(run)]])]
    story += [KeepTogether([p("Quality floor", h2), table(eligibility_table(rec), [3 * cm, 1.8 * cm, 14 * cm, 2.6 * cm, 2.8 * cm])])]
    story += [KeepTogether([p("Ranking", h2), table(ranking(rec))])]
    images = []
    for _title_text, chart in chart_specs(run):
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
    training = training_table(run)  # one column per tuned method
    story += [KeepTogether([p("Decision path", h2), table(decision_path(rec), [7 * cm, 8 * cm, 10 * cm])]),
              KeepTogether([p("Are the differences real? (McNemar)", h2), table(mcnemar_table(run))]),
              KeepTogether([p("Break-even volumes", h2), table(break_even_table(run))]),
              KeepTogether([p("Retrieval", h2), table(retrieval_table(run), [6 * cm, 4 * cm])]),
              KeepTogether([p("What each method saw", h2), table(seen_table(run), [3 * cm, 22 * cm])]),
              KeepTogether([p("Learning curve", h2), table(curve_table(run))]),
              KeepTogether([p(training_title(run), h2), table(training, [5 * cm] + [min(12, 20 / (len(training[0]) - 1)) * cm] * (len(training[0]) - 1))]),
              KeepTogether([p("Settings", h2), table(settings_table(run), [5 * cm, 18 * cm]), Spacer(1, 8),
                            p(f"Generated by workbench {__version__} · git {run['meta'].get('git_revision', '') or 'n/a'}", small)])]
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=landscape(A4), leftMargin=1.4 * cm, rightMargin=1.4 * cm, topMargin=1.2 * cm, bottomMargin=1.2 * cm,
                            title=f"Workbench report: {run_title(run)}", author=f"workbench {__version__}")
    doc.build(story)
    return buf.getvalue()
