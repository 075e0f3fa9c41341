"""Command line: a thin layer over the library (see DESIGN.md "CLI")."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..config import METHODS, PRESETS, SELECTABLE, ConfigError, RunConfig, build_config, section_settings
from ..corpus.load import corpus_defaults
from ..paths import default_runs_dir
from .progress import StageProgress


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return text


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """`--set train.rank=8 --set retrieval.mode=dense` -> {"train": {"rank": 8}, ...}; keys checked here, values coerced by config."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"--set {item!r}: use section.field=value, e.g. --set train.rank=8")
        out.setdefault(section, {})[name.strip()] = _parse_value(value)
        section_settings(section, out[section], "--set")
    return out


def config_from_args(args: argparse.Namespace) -> RunConfig:
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        raise ConfigError(f"{corpus}: corpus folder not found; give a folder with docs/ and questions.jsonl")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    top: dict[str, Any] = {"methods": methods, "seed": args.seed}
    if args.model:
        top["model"] = args.model
    overrides = parse_overrides(args.set or [])
    try:
        return build_config(str(corpus), args.preset, corpus_defaults(str(corpus)), overrides, **top)
    except TypeError as exc:
        raise ConfigError(f"--set: {exc}") from None


def cmd_run(args: argparse.Namespace) -> int:
    from ..pipeline.run import run

    config = config_from_args(args)
    bar = StageProgress()
    t0 = time.perf_counter()
    try:
        run_dir = run(config, out_dir=args.out, run_id=args.run_id, progress=bar)
    finally:
        bar.close()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    print(format_scoreboard(metrics), file=sys.stderr)
    print(f"finished in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    print(run_dir)
    return 0


def format_scoreboard(metrics: dict[str, Any]) -> str:
    """The run's scoreboard as text, every number through workbench.fmt (the same rounding as app and reports)."""
    from .. import fmt
    from ..methods.registry import label

    cols = ("method", "accuracy [95% CI]", "halluc. [95% CI]", "abstain", "p50 / p95 per query", "q/s batched", "$/1k q", "$/correct", "build")
    rows = []
    for name, m in metrics.get("methods", {}).items():
        tag = " (baseline)" if m.get("baseline") else ""
        rows.append((
            label(name) + tag, f"{fmt.pct(m.get('accuracy'))} {fmt.pct_ci(m.get('accuracy_ci'))}",
            f"{fmt.pct(m.get('hallucination_rate'))} {fmt.pct_ci(m.get('hallucination_ci'))}", fmt.pct(m.get("abstention_rate")),
            f"{fmt.seconds(m.get('latency_p50_s'))} / {fmt.seconds(m.get('latency_p95_s'))}",
            "n/a" if m.get("throughput_qps") is None else f"{m['throughput_qps']:.2f}", fmt.money(m.get("usd_per_1k_queries")),
            fmt.money(m.get("cost_per_correct_usd")), fmt.seconds(m.get("build_seconds")),
        ))  # fmt: skip
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(cells, widths, strict=True)))  # noqa: E731
    out = [line(cols), "-" * (sum(widths) + 2 * (len(widths) - 1))] + [line(r) for r in rows]
    probe = {m.get("latency_probe_n") for m in metrics.get("methods", {}).values() if m.get("latency_probe_n")}
    if probe:
        out.append(f"latency: per query, {'/'.join(map(str, sorted(probe)))} questions answered one at a time (probe); q/s: batched evaluation")
    rec = metrics.get("recommendation") or {}
    if rec.get("summary"):
        out.append(f"recommendation: {rec['summary']}")
    return "\n".join(out)


def _key_values(items: list[str], flag: str) -> dict[str, Any]:
    """`a=1,b=x` pieces (from one or several flags) -> {"a": 1, "b": "x"}; "none" or "" -> None."""
    out: dict[str, Any] = {}
    for item in items:
        for piece in (p.strip() for p in item.split(",") if p.strip()):
            key, sep, value = piece.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"{flag} {piece!r}: use key=value, e.g. {flag} accuracy=0.5")
            text = value.strip()
            out[key.strip()] = None if text.lower() in ("", "none", "null") else _parse_value(text)
    return out


def format_decision(rec: dict[str, Any]) -> str:
    """The recommendation as plain text: headline, ranking with eligibility, reasons, caveats, advice."""
    from .. import fmt
    from ..methods.registry import label

    out = [rec["summary"], ""]
    out.append(f"{'#':>2}  {'method':<10} {'score':>6}  {'$/month':>9}  {'$/correct':>10}  eligible")
    for i, r in enumerate(rec["ranked"], 1):
        cost = (rec.get("costs") or {}).get(r["method"]) or {}
        why = "yes" if r.get("eligible") else "no: " + "; ".join(r.get("ineligible_because") or [])
        out.append(f"{i:>2}  {label(r['method']):<10} {fmt.score(r['score']):>6}  {fmt.money(cost.get('total'), cents=True):>9}  "
                   f"{fmt.money(cost.get('per_correct')):>10}  {why}")
    for name, b in (rec.get("baselines") or {}).items():
        out.append(f"    {label(name)} (baseline, never recommended): {fmt.pct(b.get('accuracy'))} {fmt.pct_ci(b.get('accuracy_ci'))} accuracy")
    for title, items in (("why", rec.get("reasons")), ("caveats", rec.get("caveats")), ("what would help", rec.get("advice"))):
        if items:
            out += ["", f"{title}:"] + [f"  - {x}" for x in items]
    out += ["", "decision path:"] + [f"  {s['question']} {s['answer']} -> {s['leads_to']}" for s in rec.get("decision_path") or []]
    return "\n".join(out)


def cmd_decide(args: argparse.Namespace) -> int:
    from ..decision.criteria import DecisionError
    from ..decision.recommend import recommend
    from ..storage import read_json

    run_dir = Path(args.run_dir)
    if not (run_dir / "metrics.json").is_file():
        raise ConfigError(f"{run_dir}: not a finished run folder (no metrics.json); list runs with: python -m workbench runs")
    try:
        metrics = read_json(run_dir / "metrics.json")
    except ValueError as exc:
        raise ConfigError(f"{run_dir / 'metrics.json'}: not valid JSON ({exc}); rerun the evaluation") from None
    try:
        criteria = _key_values([x for group in args.criteria or [] for x in group], "--criteria")
        rec = recommend(metrics, criteria, _key_values(args.weights or [], "--weights") or None)
    except DecisionError as exc:
        raise ConfigError(str(exc)) from None
    print(json.dumps(rec, indent=2, sort_keys=True) if args.json else format_decision(rec))
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from ..pipeline.build import build

    config = config_from_args(args)
    bar = StageProgress()
    try:
        job_dir = build(config, args.what, out_dir=args.out, job_id=args.job_id, progress=bar)
    finally:
        bar.close()
    print(job_dir)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..reports.export import write_report

    run_dir = Path(args.run_dir)
    if (run_dir / "sweep.json").is_file():  # a sweep folder: the sweep summary
        from ..reports.sweep_report import write_sweep_report

        print(write_sweep_report(run_dir, args.format, Path(args.out) if args.out else None))
        return 0
    if not (run_dir / "metrics.json").is_file():
        raise ConfigError(f"{run_dir}: not a finished run folder (no metrics.json); list runs with: python -m workbench runs")
    out = write_report(run_dir, args.format, Path(args.out) if args.out else None)
    print(out)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from .. import fmt
    from ..pipeline.runstore import list_runs

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"{args.out}: is not a folder of runs; give the folder that holds the run folders")
    rows = list_runs(args.out)
    if not rows:
        print(f"no runs in {args.out}")
        return 0
    for r in rows:
        heads = "  ".join(f"{m} {fmt.pct(v.get('accuracy'))}/{fmt.pct(v.get('hallucination_rate'))}" for m, v in r["methods"].items() if v.get("accuracy") is not None)
        extra = f"  error: {r['error']}" if r["state"] in ("failed", "interrupted", "unreadable") and r.get("error") else ""
        print(f"{r['run_id']:<48} {r['state']:<11} {r['corpus']:<16} {r['preset']:<8} {heads}{extra}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from ..corpus.check import main as check_main

    return check_main(args.path)


def cmd_doctor(args: argparse.Namespace) -> int:
    from .doctor import doctor_info, format_doctor, prepare

    if args.prepare:
        prepare()
        return 0
    info = doctor_info()
    print(json.dumps(info, indent=2) if args.json else format_doctor(info))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench.harness import main as bench_main

    return bench_main(quick=args.quick, out=args.out, sections=args.sections)


def cmd_freshness(args: argparse.Namespace) -> int:
    from .freshness import main as fresh_main

    return fresh_main(args)


def cmd_sweep(args: argparse.Namespace) -> int:
    from ..experiments.grid import parse_grid
    from ..experiments.sweep import Sweep, make_spec
    from ..experiments.sweep_executors import run_sweep
    from ..reports.sweep_report import format_sweep

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    spec = make_spec(args.corpus, parse_grid(args.grid or []), args.file, methods=methods, preset=args.preset,
                     base=parse_overrides(args.set or []) or None, model=args.model, seed=args.seed, name=args.name)  # fmt: skip
    sweep = Sweep(spec, args.out)
    t0 = time.perf_counter()
    data = run_sweep(sweep, args.executor, progress=_SweepProgress(), address=args.address, cpus_per_cell=args.cpus_per_cell, mlflow_uri=args.mlflow)
    print(format_sweep(data), file=sys.stderr)
    print(f"finished in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    bad = [c for c in data["cells"] if c["state"] != "done"]
    if bad:
        print(f"error: {len(bad)} of {len(data['cells'])} cells not done ({bad[0]['id']}: {bad[0].get('error') or bad[0]['state']}); "
              "rerun the same command to retry them", file=sys.stderr)  # fmt: skip
    print(sweep.dir)
    return 1 if bad else 0


class _SweepProgress:
    """One line per cell and stage (and every 5 s within a stage): cells may run side by side, so lines are never redrawn."""

    def __init__(self, stream: Any = sys.stderr):
        self.stream, self.seen = stream, {}

    def __call__(self, cell: str, stage: str, fraction: float, message: str) -> None:
        now = time.monotonic()
        last = self.seen.get(cell)
        if last and last[0] == stage and fraction < 1.0 and now - last[1] < 5 and not message.startswith("warning:"):
            return
        self.seen[cell] = (stage, now)
        self.stream.write(f"[{cell[:40]:<40}] {stage:<9} {fraction * 100:5.1f}% {message[:90]}\n")
        self.stream.flush()


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", required=True, help="corpus folder (docs/ + questions.jsonl)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {','.join(SELECTABLE)} (default {','.join(METHODS)}; the others are opt-in)")
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS), help="quick: 30 questions, one epoch on the documents + Q/A generated from them + train Q/A, a small RAFT adapter (15-18 min cold measured on the fact corpus, 2 idle cores; about 9 s when nothing changed); standard: everything; demo: 12 questions for a live demo in a few minutes (wide intervals)")
    p.add_argument("--out", default=str(default_runs_dir()), help="folder of run folders")
    p.add_argument("--model", default=None, help="generator: qwen2.5-0.5b (default), gemma3-270m, smollm2-135m, a HF folder or a .gguf")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="override any setting, e.g. --set train.rank=8")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workbench", description="RAG vs LoRA vs few-shot, measured on your corpus.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the comparison and write a run folder")
    _add_run_args(p)
    p.add_argument("--run-id", default=None, help="name of the run folder (default: time-corpus-hash)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("build", help="build only the RAG index or the LoRA adapter (cached)")
    _add_run_args(p)
    p.add_argument("--what", required=True, choices=["index", "adapter"])
    p.add_argument("--job-id", default=None)
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("report", help="export a run (html, pdf, md, csv, json) or a sweep folder's summary (html, md, csv, json)")
    p.add_argument("run_dir")
    p.add_argument("--format", default="html", choices=["html", "pdf", "md", "csv", "json"])
    p.add_argument("--out", default=None)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("decide", help="the recommendation for a finished run, with your weights and criteria")
    p.add_argument("run_dir")
    p.add_argument("--weights", action="append", metavar="accuracy=..,hallucination=..,cost=..,latency=..",
                   help="relative weights (normalised to sum to 1); omitted ones keep their defaults")
    p.add_argument("--criteria", action="append", nargs="+", metavar="KEY=VALUE",
                   help="your situation and floor, e.g. monthly_queries=50000 data_changes=weekly min_accuracy=0.3 (see decision.Criteria)")
    p.add_argument("--json", action="store_true", help="print the recommendation as JSON (keys best, eligible, ranked, reasons, ...)")
    p.set_defaults(func=cmd_decide)

    p = sub.add_parser("runs", help="list runs with their headline numbers")
    p.add_argument("--out", default=str(default_runs_dir()))
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("sweep", help="run a grid of settings: one run folder per cell plus sweep.json (resumable)")
    p.add_argument("--corpus", default=None, help="corpus folder (or corpus = ... in --file)")
    p.add_argument("--grid", action="append", metavar="SECTION.FIELD=V1,V2", help="a swept setting and its values, e.g. --grid retrieval.top_k=2,4")
    p.add_argument("--file", default=None, help="a sweep TOML file: corpus, methods, preset, model, seed, name, [grid] and [set] tables")
    p.add_argument("--methods", default=None, help=f"comma-separated, from {','.join(SELECTABLE)} (default zero-shot,rag)")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS))
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE", help="a setting shared by every cell, e.g. --set eval.max_questions=6")
    p.add_argument("--model", default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--executor", default="local", choices=["local", "ray"], help="local: cells one after another here; ray: one Ray task per cell")
    p.add_argument("--address", default=None, help="Ray cluster address (e.g. ray://head:10001 or auto); default: a local Ray started for the sweep")
    p.add_argument("--cpus-per-cell", type=float, default=1, help="Ray: CPUs each cell asks for")
    p.add_argument("--out", default=None, help="folder of sweep folders (default WORKBENCH_SWEEPS or ./sweeps)")
    p.add_argument("--name", default=None, help="sweep folder name (default: corpus and a hash of the settings, so a rerun resumes)")
    p.add_argument("--mlflow", default=None, metavar="URI", help="log each cell to MLflow, e.g. file:./mlruns or sqlite:///mlflow.db")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("check-corpus", help="validate a corpus folder; non-zero exit on errors")
    p.add_argument("path")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("doctor", help="versions, device, models, cache")
    p.add_argument("--json", action="store_true")
    p.add_argument("--prepare", action="store_true", help="convert the default model once (used by make)")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("bench", help="performance harness; writes JSON figures")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", required=True)
    p.add_argument("--sections", default=None, help="comma-separated subset of generation,lora,waste,embedding,retrieval,runs (default: all)")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("freshness", help="edit facts in a corpus copy and measure what each method needs to catch up")
    p.add_argument("--corpus", required=True)
    p.add_argument("--edits", type=int, default=10, help="facts changed (generated edits)")
    p.add_argument("--patch", default=None, help="a JSON patch file of edits instead of generated ones")
    p.add_argument("--model", default=None)
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="write the result JSON here (and into a run folder if it is one)")
    p.set_defaults(func=cmd_freshness)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ..errors import WorkbenchError
    from ..storage import LockedError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (ConfigError, LockedError) as exc:
        print(f"error: {_first_line(exc)}", file=sys.stderr)
        return 2
    except WorkbenchError as exc:
        print(f"error: {_first_line(exc)}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        return 2 if isinstance(exc, FileNotFoundError) else 1


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def os_error_line(exc: OSError) -> str:
    """An OSError as one line naming the path: 'PATH: Permission denied; check the path and its permissions'."""
    where = " -> ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
    reason = exc.strerror or _first_line(exc)
    return f"{where}: {reason}; check the path and its permissions" if where else f"{reason}; check the paths and their permissions"
