"""Example runs shipped with the project: one finished run folder per bundled corpus, shown where a page would be empty.

They live in ``examples/<corpus>/<run-id>/`` (``WORKBENCH_EXAMPLES`` moves the folder), are made by the tool itself
(``make examples``) and are never mixed into the user's own runs: the run listing reads ``WORKBENCH_RUNS`` only.
``python -m workbench.pipeline.examples copy RUN_DIR`` copies the files a run folder needs (no caches, logs or locks).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from ..paths import repo_root
from ..storage import read_json
from .runstore import list_runs

# The run-folder files an example needs; job logs, locks, training logs and caches stay behind.
EXAMPLE_FILES = ("config.json", "meta.json", "metrics.json", "predictions.jsonl", "status.json")
PREFERRED = "kestrel_labs"  # the fact corpus: the example shown when the chosen corpus has none


def examples_dir() -> Path:
    """``WORKBENCH_EXAMPLES``, else ``examples/`` in the repository."""
    env = os.environ.get("WORKBENCH_EXAMPLES")
    return Path(env) if env else repo_root() / "examples"


def list_examples(root: str | Path | None = None) -> list[dict[str, Any]]:
    """Finished example runs, one listing row each (as runstore.list_runs) plus ``made`` (date) and ``revision``."""
    root = Path(root) if root else examples_dir()
    if not root.is_dir():
        return []
    rows = []
    for corpus_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for row in list_runs(corpus_dir):
            if row["state"] != "done":
                continue
            try:
                meta = read_json(Path(row["dir"]) / "meta.json", {}) or {}
            except (OSError, ValueError):
                meta = {}
            made = str(meta.get("written") or row.get("created") or "")[:10]
            rows.append({**row, "corpus": row.get("corpus") or corpus_dir.name, "example": True, "made": made,
                         "revision": str(meta.get("git_revision") or "unknown")})  # fmt: skip
    return rows


def example_for(corpus_name: str | None, root: str | Path | None = None) -> dict[str, Any] | None:
    """The newest example of this corpus, else the fact corpus's, else any; None when no example is present."""
    rows = list_examples(root)
    for wanted in (corpus_name, PREFERRED):
        mine = [r for r in rows if r["corpus"] == wanted]
        if mine:
            return mine[0]
    return rows[0] if rows else None


def example_label(row: dict[str, Any]) -> str:
    return f"Example run (made on {row.get('made') or 'an unknown date'}, revision {row.get('revision') or 'unknown'})"


def copy_example(run_dir: str | Path, root: str | Path | None = None) -> Path:
    """Copy a finished run folder's result files into ``examples/<corpus>/<run-id>/``; replaces that corpus's old example."""
    run_dir = Path(run_dir)
    status = read_json(run_dir / "status.json", {}) or {}
    if status.get("state") != "done" or not (run_dir / "metrics.json").is_file():
        raise SystemExit(f"{run_dir}: not a finished run (state {status.get('state', 'missing')!r}); run it to the end first")
    corpus = Path((read_json(run_dir / "config.json", {}) or {}).get("corpus") or "corpus").name
    target_corpus = (Path(root) if root else examples_dir()) / corpus
    staged = target_corpus.with_name(f".{corpus}.tmp")
    shutil.rmtree(staged, ignore_errors=True)
    (staged / run_dir.name).mkdir(parents=True)
    for name in EXAMPLE_FILES:
        if (run_dir / name).is_file():
            shutil.copy2(run_dir / name, staged / run_dir.name / name)
    shutil.rmtree(target_corpus, ignore_errors=True)
    staged.rename(target_corpus)
    return target_corpus / run_dir.name


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "copy":
        print("usage: python -m workbench.pipeline.examples copy RUN_DIR", file=sys.stderr)
        return 2
    print(copy_example(argv[1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
