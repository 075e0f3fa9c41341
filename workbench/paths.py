"""Where the workbench keeps things: one environment variable moves all storage."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Root of caches and converted models (``WORKBENCH_HOME``, default ``~/.cache/workbench``)."""
    env = os.environ.get("WORKBENCH_HOME")
    root = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "workbench"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_dir(kind: str) -> Path:
    """A content-addressed cache area such as ``indexes``, ``adapters`` or ``answers``."""
    path = home() / "cache" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def models_dir() -> Path:
    path = home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_runs_dir() -> Path:
    """Run folders go to ``WORKBENCH_RUNS`` or ``./runs``."""
    return Path(os.environ.get("WORKBENCH_RUNS", "runs"))


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def bundled_corpora() -> dict[str, Path]:
    """Name -> folder of each corpus shipped in ``corpora/``."""
    root = repo_root() / "corpora"
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / "questions.jsonl").is_file()}
