"""Command line: a thin layer over the library (see DESIGN.md "CLI")."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from .config import METHODS, PRESETS, ConfigError, RunConfig, build_config
from .paths import default_runs_dir


class _StageProgress:
    """One progress line per stage: redrawn in place on a terminal, throttled lines otherwise."""

    def __init__(self, stream: Any = sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self.stage = ""
        self.last = 0.0

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        now = time.monotonic()
        new_stage = stage != self.stage
        if not (self.tty or new_stage or fraction >= 1.0 or now - self.last > 5):
            return
        if new_stage and self.stage and self.tty:
            self.stream.write("\n")
        self.stage, self.last = stage, now
        width = 24
        filled = int(width * max(0.0, min(1.0, fraction)))
        line = f"[{stage:<9}] |{'#' * filled}{'.' * (width - filled)}| {fraction * 100:5.1f}% {message[:80]}"
        self.stream.write(("\r" + line.ljust(130)) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.stage:
            self.stream.write("\n")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """`--set train.rank=8 --set retrieval.mode=dense` -> {"train": {"rank": 8}, ...}."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            raise ConfigError(f"--set {item!r}: use section.field=value, e.g. --set train.rank=8")
        out.setdefault(section, {})[name] = _parse_value(value)
    return out


def corpus_defaults(corpus: str) -> dict[str, Any]:
    import tomllib

    path = Path(corpus) / "corpus.toml"
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")).get("defaults", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix or remove the file") from None


def config_from_args(args: argparse.Namespace) -> RunConfig:
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        raise ConfigError(f"{corpus}: corpus folder not found; give a folder with docs/ and questions.jsonl")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    top: dict[str, Any] = {"methods": methods, "seed": args.seed}
    if args.model:
        top["model"] = args.model
    overrides = parse_overrides(args.set or [])
    unknown = set(overrides) - {"split", "index", "retrieval", "generation", "few_shot", "train", "eval"}
    if unknown:
        raise ConfigError(f"--set: unknown section(s) {', '.join(sorted(unknown))}")
    try:
        return build_config(str(corpus), args.preset, corpus_defaults(str(corpus)), overrides, **top)
    except TypeError as exc:
        raise ConfigError(f"--set: {exc}") from None


def cmd_run(args: argparse.Namespace) -> int:
    from .run import run

    config = config_from_args(args)
    bar = _StageProgress()
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
    head = f"{'method':<10} {'accuracy':>17} {'halluc.':>17} {'abstain':>8} {'p50 s':>7} {'$/1k q':>8} {'build s':>8}"
    lines = [head, "-" * len(head)]
    for name, m in metrics.get("methods", {}).items():
        acc, hal = m.get("accuracy", 0), m.get("hallucination_rate", 0)
        alo, ahi = m.get("accuracy_ci", [acc, acc])
        hlo, hhi = m.get("hallucination_ci", [hal, hal])
        lines.append(
            f"{name:<10} {acc:6.1%} [{alo:4.0%}-{ahi:4.0%}] {hal:6.1%} [{hlo:4.0%}-{hhi:4.0%}] {m.get('abstention_rate', 0):8.1%} "
            f"{m.get('latency_p50_s', 0):7.2f} {m.get('usd_per_1k_queries', 0):8.4f} {m.get('build_seconds', 0):8.1f}"
        )
    rec = metrics.get("recommendation") or {}
    if rec.get("summary"):
        lines.append(f"recommendation: {rec['summary']}")
    return "\n".join(lines)


def cmd_build(args: argparse.Namespace) -> int:
    from .build import build

    config = config_from_args(args)
    bar = _StageProgress()
    try:
        job_dir = build(config, args.what, out_dir=args.out, job_id=args.job_id, progress=bar)
    finally:
        bar.close()
    print(job_dir)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    run_dir = Path(args.run_dir)
    if not (run_dir / "metrics.json").is_file():
        raise ConfigError(f"{run_dir}: not a finished run folder (no metrics.json); list runs with: python -m workbench runs")
    out = write_report(run_dir, args.format, Path(args.out) if args.out else None)
    print(out)
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from .runstore import list_runs

    rows = list_runs(args.out)
    if not rows:
        print(f"no runs in {args.out}")
        return 0
    for r in rows:
        heads = "  ".join(f"{m} {v['accuracy']:.0%}/{v['hallucination_rate']:.0%}" for m, v in r["methods"].items() if v.get("accuracy") is not None)
        extra = f"  error: {r['error']}" if r["state"] in ("failed", "interrupted") and r.get("error") else ""
        print(f"{r['run_id']:<48} {r['state']:<11} {r['corpus']:<16} {r['preset']:<8} {heads}{extra}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from .check import main as check_main

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
    from .bench import main as bench_main

    return bench_main(quick=args.quick, out=args.out)


def cmd_freshness(args: argparse.Namespace) -> int:
    from .freshness import main as fresh_main

    return fresh_main(args)


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--corpus", required=True, help="corpus folder (docs/ + questions.jsonl)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, from {','.join(METHODS)}")
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS), help="quick: 30 questions, one epoch on the documents + Q/A generated from them + train Q/A, a small RAFT adapter (estimated 24 min cold on 2 cores, seconds when cached); standard: everything")
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

    p = sub.add_parser("report", help="export a run as html, pdf, md, csv or json")
    p.add_argument("run_dir")
    p.add_argument("--format", default="html", choices=["html", "pdf", "md", "csv", "json"])
    p.add_argument("--out", default=None)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("runs", help="list runs with their headline numbers")
    p.add_argument("--out", default=str(default_runs_dir()))
    p.set_defaults(func=cmd_runs)

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
    from .storage import LockedError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except (ConfigError, LockedError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one clear line for the user; details in the run folder
        known = {"RunError", "Cancelled", "CorpusError", "DocumentError", "ModelError", "IndexLoadError", "LeakageError", "ReportError"}
        if type(exc).__name__ in known or any(t.__name__ in known for t in type(exc).__mro__):
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
