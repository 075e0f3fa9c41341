"""The run store: run ids, live status, metadata and listing of run folders."""

from __future__ import annotations

import getpass
import math
import os
import platform
import re
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..errors import WorkbenchError
from ..storage import atomic_write_json, pid_alive, read_json, read_jsonl, stable_hash

PACKAGES = ("torch", "transformers", "peft", "sentence-transformers", "faiss-cpu", "langchain-text-splitters", "bm25s", "streamlit", "numpy")
HEADLINE = ("accuracy", "hallucination_rate", "latency_p50_s", "usd_per_1k_queries")
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
# What a run or build job writes into its folder; a folder holding anything else is not ours to write into.
RUN_FILES = frozenset({
    "config.json", "status.json", "meta.json", "metrics.json", "predictions.jsonl", "error.log", "result.json", "job.json",
    "job.log", "train_log.jsonl", "freshness.json", ".lock", "CANCEL",
})  # fmt: skip


class UnreadableRunError(WorkbenchError, ValueError):
    """A run folder's files are missing, truncated or malformed; the message names the file."""


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is one safe folder name (no separators, not hidden, '.', '..'), else a ConfigError."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise ConfigError(
            f"run id {str(run_id)[:60]!r} is not a safe folder name; use 1-128 letters, digits, '.', '_', '-' or '+', starting with a letter or digit"
        )
    return run_id


def _json_object(path: Path) -> dict[str, Any] | None:
    try:
        data = read_json(path, None)
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def owned_run_folder(folder: Path) -> bool:
    """True when ``folder`` holds only what a run or job writes (and its config/status are ours): safe to write into."""
    try:
        names = {p.name for p in folder.iterdir()}
    except OSError:
        return False
    if not names:
        return True
    if any(n not in RUN_FILES and not n.startswith("report.") and not (n.startswith(".") and n.endswith(".tmp")) for n in names):
        return False
    status = _json_object(folder / "status.json") if "status.json" in names else {"state": "new"}
    config = _json_object(folder / "config.json") if "config.json" in names else {"run_id": ""}
    return bool(status is not None and "state" in status and config is not None and ("run_id" in config or "what" in config))


def prepare_run_folder(out_dir: Path, run_id: str) -> Path:
    """``out_dir/run_id``, created; refuses an unsafe id, a symlink, a file, or an existing folder that is not a run."""
    run_dir = Path(out_dir) / check_run_id(run_id)
    if run_dir.is_symlink():
        raise ConfigError(f"{run_dir}: is a symbolic link; a run only writes into a folder of its own, choose another run id")
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: exists and is not a folder; choose another run id")
    if run_dir.is_dir() and not owned_run_folder(run_dir):
        raise ConfigError(f"{run_dir}: exists and is not a workbench run folder, so nothing is written into it; choose another run id")
    if (run_dir / "metrics.json").exists() and (_json_object(run_dir / "status.json") or {}).get("state") == "done":
        raise ConfigError(f"{run_dir}: a finished run is already there and is kept as it is; choose another run id")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run_id(config: Any) -> str:
    """Sortable and unique: time, corpus name and a short hash of the settings."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    name = Path(getattr(config, "corpus", "") or "corpus").name
    corpus = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.")[:40] or "corpus"
    return f"{stamp}-{corpus}-{stable_hash(config.to_dict(), os.getpid(), _now())[:6]}"


class RunStatus:
    """status.json of a run: state, stage, progress, message, error; every update is atomic."""

    def __init__(self, run_dir: str | Path):
        self.path = Path(run_dir) / "status.json"

    def read(self) -> dict[str, Any]:
        try:
            data = read_json(self.path, {}) or {}
        except (ValueError, RecursionError):
            return {}
        return data if isinstance(data, dict) else {}

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
    state = str(status.get("state", "unknown"))
    if state == "running" and not pid_alive(status.get("pid")):
        return "interrupted"
    return state


def git_revision() -> str:
    """The short commit of the code, with ``-dirty`` when tracked files differ from it; "" outside a checkout."""
    here = Path(__file__).parent
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, cwd=here).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5, cwd=here).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return f"{rev}-dirty" if rev and dirty else rev


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "missing"
    return out


CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "neon", "asimd", "bf16")


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

    from ..backends.hardware import dtype_choice

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_flags": cpu_flags(),
        "torch_threads": torch.get_num_threads(),
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "dtype": dtype_choice(),  # bf16 or fp32 per workload, measured (or forced by WORKBENCH_DTYPE)
        "user": getpass.getuser() if hasattr(os, "getuid") else "",
    }


def write_meta(run_dir: Path, timings: dict[str, float], extra: dict[str, Any] | None = None) -> None:
    try:
        started = read_json(run_dir / "meta.json", {}) if (run_dir / "meta.json").is_file() else {}
    except (OSError, ValueError):
        started = {}
    revision = started.get("git_revision") if isinstance(started, dict) and started.get("git_revision") else git_revision()
    # the revision the run started on: a commit made while it runs does not rename the code it ran
    meta = {"versions": versions(), "machine": machine(), "git_revision": revision, "timings_s": timings, "written": _now()}
    atomic_write_json(run_dir / "meta.json", {**meta, **(extra or {})})


def _read_part(path: Path, kind: type, default: Any) -> Any:
    """A run file parsed as ``kind`` (dict or list), ``default`` when absent; UnreadableRunError naming the file otherwise."""
    if path.exists() and not path.is_file():
        raise UnreadableRunError(f"{path}: is not a file")
    try:
        data = read_jsonl(path) if kind is list else read_json(path, default)
    except RecursionError:
        raise UnreadableRunError(f"{path}: nested too deeply to be a run file") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0][:120]
        raise UnreadableRunError(f"{path}: unreadable ({reason})") from None
    if data is None:
        return default
    if not isinstance(data, kind):
        raise UnreadableRunError(f"{path}: holds {type(data).__name__}, not a JSON {'object' if kind is dict else 'list'}")
    return data


def _headline(metrics: dict[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    methods = metrics.get("methods", {})
    if not isinstance(methods, dict):
        raise UnreadableRunError(f"{path}: \"methods\" is {type(methods).__name__}, not an object")
    out: dict[str, dict[str, Any]] = {}
    for m, v in methods.items():
        if not isinstance(v, dict):
            raise UnreadableRunError(f"{path}: methods.{m} is {type(v).__name__}, not an object")
        for k in HEADLINE:
            x = v.get(k)
            if x is not None and (isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x)):
                raise UnreadableRunError(f"{path}: methods.{m}.{k} is {str(x)[:30]!r}, not a number")
        out[str(m)] = {k: v.get(k) for k in HEADLINE}
    return out


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """Every file of a run folder; UnreadableRunError naming the file when one is malformed."""
    run_dir = Path(run_dir)
    status = _read_part(run_dir / "status.json", dict, {})
    metrics = _read_part(run_dir / "metrics.json", dict, {})
    _headline(metrics, run_dir / "metrics.json")
    return {
        "run_id": run_dir.name,
        "dir": str(run_dir),
        "config": _read_part(run_dir / "config.json", dict, {}),
        "meta": _read_part(run_dir / "meta.json", dict, {}),
        "status": {**status, "state": effective_state(status)},
        "metrics": metrics,
        "predictions": _read_part(run_dir / "predictions.jsonl", list, []),
    }


def _row(d: Path) -> dict[str, Any]:
    status = _read_part(d / "status.json", dict, {})
    config = _read_part(d / "config.json", dict, {})
    metrics = _read_part(d / "metrics.json", dict, {})
    for path, data, keys in ((d / "status.json", status, ("state", "started")), (d / "config.json", config, ("corpus", "preset", "model"))):
        for key in keys:
            if data.get(key) is not None and not isinstance(data[key], str):
                raise UnreadableRunError(f"{path}: {key} is {str(data[key])[:30]!r}, not text")
    recommendation = metrics.get("recommendation")
    return {
        "run_id": d.name,
        "dir": str(d),
        "state": effective_state(status),
        "error": None if status.get("error") is None else str(status["error"])[:500],
        "created": status.get("started") or "",
        "corpus": Path(config.get("corpus") or "").name,
        "preset": config.get("preset") or "",
        "model": config.get("model") or "",
        "methods": _headline(metrics, d / "metrics.json"),
        "best": recommendation.get("best") if isinstance(recommendation, dict) else None,
    }


def list_runs(runs_dir: str | Path) -> list[dict[str, Any]]:
    """Every run folder, newest first, with its state and headline numbers per method.

    A malformed folder never breaks the listing: it is listed with state ``unreadable`` and the reason in ``error``.
    """
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    rows = []
    for d in sorted((p for p in runs_dir.iterdir() if p.is_dir() and (p / "status.json").exists()), reverse=True):
        try:
            rows.append(_row(d))
        except Exception as exc:  # noqa: BLE001 - one bad folder must not hide every other run
            why = str(exc) if isinstance(exc, UnreadableRunError) else f"{d}: {type(exc).__name__}: {str(exc)[:120]}"
            rows.append({"run_id": d.name, "dir": str(d), "state": "unreadable", "error": why, "created": "", "corpus": "",
                         "preset": "", "model": "", "methods": {}, "best": None})  # fmt: skip
    return rows
