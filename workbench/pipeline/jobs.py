"""Background jobs: start the CLI in its own process group and follow it through its folder's status.json.

Long work (a comparison run, an index build, LoRA training) must outlive a browser refresh and never
block a UI thread, so the app starts ``python -m workbench run|build ...`` as a detached process
whose stdout/stderr go to ``job.log`` in the job folder, and polls ``status.json`` there. Cancelling
writes a ``CANCEL`` file (the pipeline checks it between steps); a process that ignores it past a
grace period gets SIGTERM.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from ..errors import WorkbenchError
from ..paths import default_runs_dir, home, repo_root
from ..storage import atomic_write_json, pid_alive, read_json, read_jsonl

LOG_NAME = "job.log"
CANCEL_NAME = "CANCEL"
TERMINAL_STATES = ("done", "failed", "cancelled")

# Process handles of jobs started by this process, so finished children are reaped (no zombies).
_CHILDREN: dict[int, subprocess.Popen] = {}


class JobError(WorkbenchError, RuntimeError):
    """A job could not be started; the message says why in one line."""


@dataclass
class Job:
    """A started background job: its folder, process id and the command it runs."""

    kind: Literal["run", "build"]
    job_dir: Path
    pid: int
    command: list[str] = field(default_factory=list)

    @property
    def log_path(self) -> Path:
        return self.job_dir / LOG_NAME


def jobs_dir() -> Path:
    """Folder for build jobs (index / adapter) under ``WORKBENCH_HOME``."""
    path = home() / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_job_id(label: str) -> str:
    """A sortable, unique id: UTC time, a label (corpus or job kind) and a random suffix."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label).strip("-")[:40] or "job"
    return f"{stamp}-{safe}-{secrets.token_hex(2)}"


def _set_args(overrides: dict[str, dict[str, Any]] | None) -> list[str]:
    """``--set section.field=value`` pairs; non-strings are JSON so lists and booleans survive."""
    args: list[str] = []
    for section, values in sorted((overrides or {}).items()):
        for name, value in sorted(values.items()):
            text = value if isinstance(value, str) else json.dumps(value)
            args += ["--set", f"{section}.{name}={text}"]
    return args


def run_command(
    corpus: str | Path,
    *,
    methods: list[str],
    preset: str,
    out_dir: Path,
    run_id: str,
    model: str | None = None,
    seed: int | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """The ``python -m workbench run`` command line for these settings."""
    cmd = [sys.executable, "-m", "workbench", "run", "--corpus", str(corpus), "--methods", ",".join(methods)]
    cmd += ["--preset", preset, "--out", str(out_dir), "--run-id", run_id]
    if model:
        cmd += ["--model", model]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    return cmd + _set_args(overrides)


def build_command(
    corpus: str | Path,
    what: Literal["index", "adapter"],
    *,
    out_dir: Path,
    job_id: str,
    preset: str = "quick",
    model: str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> list[str]:
    """The ``python -m workbench build`` command line for an index or an adapter."""
    cmd = [sys.executable, "-m", "workbench", "build", "--corpus", str(corpus), "--what", what]
    cmd += ["--out", str(out_dir), "--job-id", job_id, "--preset", preset]
    if model:
        cmd += ["--model", model]
    return cmd + _set_args(overrides)


def _spawn(kind: Literal["run", "build"], cmd: list[str], job_dir: Path, extra: dict[str, Any] | None = None) -> Job:
    from .runstore import prepare_run_folder

    prepare_run_folder(job_dir.parent, job_dir.name)
    if (job_dir / "status.json").exists():
        raise JobError(f"{job_dir}: a job already used this folder; pick another id")
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(repo_root()), env.get("PYTHONPATH", "")) if p)
    log = open(job_dir / LOG_NAME, "ab")  # handed to the child, closed below
    try:
        proc = subprocess.Popen(
            cmd, cwd=str(repo_root()), env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    except OSError as exc:
        raise JobError(f"could not start {' '.join(cmd[:4])}: {exc}") from exc
    finally:
        log.close()
    _CHILDREN[proc.pid] = proc
    atomic_write_json(job_dir / "job.json", {"kind": kind, "pid": proc.pid, "command": cmd, "started": _now(), **(extra or {})})
    atomic_write_json(
        job_dir / "status.json",
        {
            "state": "running",
            "stage": "starting",
            "progress": 0.0,
            "message": "starting the worker process",
            "error": None,
            "pid": proc.pid,
            "updated": _now(),
        },
    )
    return Job(kind=kind, job_dir=job_dir, pid=proc.pid, command=cmd)


def start_run(
    corpus: str | Path,
    *,
    methods: list[str],
    preset: str = "quick",
    model: str | None = None,
    out_dir: str | Path | None = None,
    run_id: str | None = None,
    seed: int | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
    estimate: dict[str, Any] | None = None,
) -> Job:
    """Start a comparison run in the background; its run folder is ``out_dir/run_id``.

    ``estimate`` (estimate.estimate_run's result) is kept in job.json as ``estimate_s`` and ``estimate_stages`` for the live ETA.
    """
    if not methods:
        raise JobError("no methods selected; choose at least one")
    out = Path(out_dir) if out_dir else default_runs_dir()
    out = out.resolve()
    run_id = run_id or new_job_id(Path(corpus).name)
    cmd = run_command(corpus, methods=methods, preset=preset, out_dir=out, run_id=run_id, model=model, seed=seed, overrides=overrides)
    extra = {"estimate_s": estimate["total_s"], "estimate_stages": estimate["stages"]} if estimate else None
    return _spawn("run", cmd, out / run_id, extra)


def start_build(
    corpus: str | Path,
    what: Literal["index", "adapter"],
    *,
    preset: str = "quick",
    model: str | None = None,
    out_dir: str | Path | None = None,
    job_id: str | None = None,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> Job:
    """Start building the RAG index or training the LoRA adapter in the background."""
    if what not in ("index", "adapter"):
        raise JobError(f"unknown build target {what!r}; use index or adapter")
    out = Path(out_dir).resolve() if out_dir else jobs_dir()
    job_id = job_id or new_job_id(f"{what}-{Path(corpus).name}")
    cmd = build_command(corpus, what, out_dir=out, job_id=job_id, preset=preset, model=model, overrides=overrides)
    return _spawn("build", cmd, out / job_id)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def is_alive(pid: int | None) -> bool:
    """Whether process ``pid`` still runs (reaps it when it is a finished child of ours)."""
    if not pid:
        return False
    proc = _CHILDREN.get(pid)
    if proc is not None:
        if proc.poll() is None:
            return True
        _CHILDREN.pop(pid, None)
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return False
    except ChildProcessError:
        pass
    except OSError:
        return False
    return pid_alive(pid)


def job_status(job_dir: str | Path) -> dict[str, Any]:
    """status.json plus ``alive``; a 'running' job whose process died reads as failed with the log's last line."""
    job_dir = Path(job_dir)
    try:
        status = dict(read_json(job_dir / "status.json", default={}) or {})
    except (json.JSONDecodeError, OSError):
        status = {}
    if not status:
        return {"state": "missing", "stage": "", "progress": 0.0, "message": "", "error": f"{job_dir}: no status.json", "alive": False}
    pid = status.get("pid") or (read_json(job_dir / "job.json", default={}) or {}).get("pid")
    alive = is_alive(pid)
    status["alive"] = alive
    if status.get("state") not in TERMINAL_STATES and not alive:
        if (job_dir / CANCEL_NAME).exists():
            status.update(state="cancelled", error=status.get("error") or "cancelled by the user", message="cancelled")
        else:
            tail = log_tail(job_dir, 1).strip()
            status.update(
                state="failed", error=status.get("error") or tail or "the worker process exited without a status", message="failed"
            )
    return status


def running_jobs(folder: str | Path) -> list[Path]:
    """Job folders in ``folder`` whose status.json says 'running' and whose process is alive, newest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for status_path in sorted(folder.glob("*/status.json"), reverse=True):
        try:
            status = read_json(status_path, default={}) or {}
        except (json.JSONDecodeError, OSError):
            continue
        if isinstance(status, dict) and status.get("state") == "running" and is_alive(status.get("pid")):
            found.append(status_path.parent)
    return found


def job_settings(job_dir: str | Path) -> dict[str, Any]:
    """The methods, preset, model and seed a run job was started with (from its command line in job.json)."""
    cmd = (read_json(Path(job_dir) / "job.json", default={}) or {}).get("command") or []
    out: dict[str, Any] = {}
    for flag, name in (("--methods", "methods"), ("--preset", "preset"), ("--model", "model"), ("--seed", "seed")):
        if flag in cmd and cmd.index(flag) + 1 < len(cmd):
            out[name] = cmd[cmd.index(flag) + 1]
    if "methods" in out:
        out["methods"] = [m for m in out["methods"].split(",") if m]
    return out


def cancel(job_dir: str | Path) -> None:
    """Ask the job to stop: it checks for the CANCEL file between steps."""
    path = Path(job_dir) / CANCEL_NAME
    if not path.exists():
        path.write_text(_now())


def cancel_requested_at(job_dir: str | Path) -> float | None:
    """Seconds since the epoch when cancel was requested, or None."""
    path = Path(job_dir) / CANCEL_NAME
    return path.stat().st_mtime if path.exists() else None


def terminate_if_overdue(job_dir: str | Path, grace_s: float = 20.0) -> bool:
    """SIGTERM the job's process group when a cancel has waited longer than ``grace_s``; True if signalled."""
    asked = cancel_requested_at(job_dir)
    status = job_status(job_dir)
    if asked is None or not status.get("alive") or time.time() - asked < grace_s:
        return False
    pid = int(status["pid"])
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            return False
    return True


def log_tail(job_dir: str | Path, lines: int = 20) -> str:
    """The last ``lines`` lines of the job's log (empty when there is none yet)."""
    path = Path(job_dir) / LOG_NAME
    if not path.is_file():
        return ""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 64_000))
        text = fh.read().decode("utf-8", errors="replace")
    # progress bars rewrite their line with carriage returns: keep only the final state of each line
    rows = [row.rsplit("\r", 1)[-1] for row in text.splitlines()]
    return "\n".join([r for r in rows if r.strip()][-lines:])


def train_log(job_dir: str | Path) -> list[dict[str, Any]]:
    """``{"step", "loss"}`` rows of a training job, for the live loss curve."""
    try:
        return [r for r in read_jsonl(Path(job_dir) / "train_log.jsonl") if "step" in r and "loss" in r]
    except json.JSONDecodeError:  # a line being written right now
        rows = []
        for line in (Path(job_dir) / "train_log.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "step" in row and "loss" in row:
                rows.append(row)
        return rows
