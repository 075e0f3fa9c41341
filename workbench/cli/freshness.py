"""`python -m workbench freshness`: the freshness experiment from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ..config import RunConfig, build_config
from ..corpus.load import corpus_defaults
from ..experiments.fact_edits import FreshnessError, load_patch
from ..experiments.freshness import run_freshness, store_in_run
from ..storage import atomic_write_json
from .progress import StageProgress


def config_for(args: Any, run_dir: Path | None) -> RunConfig:
    """The run folder's own settings when --out is a run (same cached index/adapter), else preset + corpus.toml."""
    if run_dir is not None and (run_dir / "config.json").is_file():
        config = RunConfig.from_dict(json.loads((run_dir / "config.json").read_text(encoding="utf-8")))
        if Path(config.corpus).resolve() != Path(args.corpus).resolve():
            raise FreshnessError(f"{run_dir}: that run used corpus {config.corpus}, not {args.corpus}; pass --corpus {config.corpus} or another --out")
        if args.model:
            config.model = args.model
        return config
    top: dict[str, Any] = {"seed": args.seed}
    if args.model:
        top["model"] = args.model
    return build_config(str(args.corpus), args.preset, corpus_defaults(str(args.corpus)), None, **top)


def main(args: Any) -> int:
    """`python -m workbench freshness`: run the experiment, print progress and the summary, write JSON to --out."""
    if not Path(args.corpus).is_dir():
        raise FreshnessError(f"{args.corpus}: corpus folder not found; give a folder with docs/ and questions.jsonl")
    out = Path(args.out) if args.out else None
    run_dir = out if out is not None and (out / "metrics.json").is_file() else None
    if out is not None and out.is_dir() and run_dir is None:
        raise FreshnessError(f"{out}: a folder but not a finished run (no metrics.json); give a run folder or a .json file path")
    config = config_for(args, run_dir)
    edits = load_patch(args.patch) if args.patch else None
    bar = StageProgress()
    try:
        result = run_freshness(args.corpus, config, edits=edits, n_edits=args.edits, progress=bar)
    finally:
        bar.close()
    for s in result["skipped"]:
        print(f"skipped {s['question_id']} ({s['doc_id']}): {s['reason']}", file=sys.stderr)
    if run_dir is not None:
        store_in_run(run_dir, result)
        print(f"stored under metrics.json 'freshness' in {run_dir}", file=sys.stderr)
    elif out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out, result)
    print(result["summary"])
    if out is not None:
        print(run_dir / "freshness.json" if run_dir else out)
    return 0
