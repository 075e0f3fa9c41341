"""The run store: run ids, live status, metadata and listing of run folders."""

from __future__ import annotations

import getpass
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from .storage import atomic_write_json, pid_alive, read_json, read_jsonl, stable_hash

PACKAGES = ("torch", "transformers", "peft", "sentence-transformers", "faiss-cpu", "langchain-text-splitters", "bm25s", "streamlit", "numpy")
HEADLINE = ("accuracy", "hallucination_rate", "latency_p50_s", "usd_per_1k_queries")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id(config: Any) -> str:
    """Sortable and unique: time, corpus name and a short hash of the settings."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    corpus = Path(getattr(config, "corpus", "") or "corpus").name or "corpus"
    return f"{stamp}-{corpus}-{stable_hash(config.to_dict(), os.getpid(), _now())[:6]}"


class RunStatus:
    """status.json of a run: state, stage, progress, message, error; every update is atomic."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "status.json"

    def read(self) -> dict[str, Any]:
        try:
            return read_json(self.path, {}) or {}
        except ValueError:
            return {}

    def update(self, **fields: Any) -> dict[str, Any]:
        data = self.read()
        data.update(fields)
        data["updated"] = _now()
        data["pid"] = os.getpid()
        data.setdefault("started", data["updated"])
        atomic_write_json(self.path, data)
        return data


def effective_state(status: dict[str, Any]) -> str:
    """A 'running' run whose process has died is reported as 'interrupted', never 'done'."""
    state = status.get("state", "unknown")
    if state == "running" and not pid_alive(status.get("pid")):
        return "interrupted"
    return state


def git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "neon", "asimd")


def cpu_flags() -> list[str]:
    """The CPU features that pick different matrix kernels (and so can move floating-point results)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    line = next((ln for ln in text.splitlines() if ln.startswith(("flags", "Features"))), "")
    present = set(line.partition(":")[2].split())
    return [f for f in CPU_FLAGS if f in present]


def machine() -> dict[str, Any]:
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "user": getpass.getuser() if hasattr(os, "getuid") else "",
    }


def write_meta(run_dir: Path, timings: dict[str, float], extra: dict[str, Any] | None = None) -> None:
    meta = {"versions": versions(), "machine": machine(), "git_revision": git_revision(), "timings_s": timings, "written": _now()}
    atomic_write_json(run_dir / "meta.json", {**meta, **(extra or {})})


def load_run(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    status = RunStatus(run_dir).read()
    return {
        "run_id": run_dir.name,
        "dir": str(run_dir),
        "config": read_json(run_dir / "config.json", {}),
        "meta": read_json(run_dir / "meta.json", {}),
        "status": {**status, "state": effective_state(status)},
        "metrics": read_json(run_dir / "metrics.json", {}),
        "predictions": read_jsonl(run_dir / "predictions.jsonl"),
    }


def list_runs(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Every run folder, newest first, with its state and headline numbers per method."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    rows = []
    for d in sorted((p for p in runs_dir.iterdir() if p.is_dir() and (p / "status.json").exists()), reverse=True):
        status = RunStatus(d).read()
        config = read_json(d / "config.json", {}) or {}
        try:
            metrics = read_json(d / "metrics.json", {}) or {}
        except ValueError:
            metrics = {}
        rows.append(
            {
                "run_id": d.name,
                "dir": str(d),
                "state": effective_state(status),
                "error": status.get("error"),
                "created": status.get("started", ""),
                "corpus": Path(config.get("corpus", "")).name,
                "preset": config.get("preset", ""),
                "model": config.get("model", ""),
                "methods": {m: {k: v.get(k) for k in HEADLINE} for m, v in metrics.get("methods", {}).items()},
                "best": (metrics.get("recommendation") or {}).get("best"),
            }
        )
    return rows


def latest_run(runs_dir: str | Path, corpus: str | None = None) -> Path | None:
    """Newest finished run, of a given corpus name if asked."""
    for row in list_runs(runs_dir):
        if row["state"] == "done" and (corpus is None or row["corpus"] == Path(corpus).name):
            return Path(row["dir"])
    return None
