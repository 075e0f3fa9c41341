"""Where a sweep's cells run: ``local`` (one after another, in this process) or ``ray`` (one Ray task per cell).

Both call the same ``workbench.run.run`` into the same sweep folder, so a cell's run folder is the same
whichever executor ran it. On Ray each task asks for its CPUs (and one GPU when the cluster has one and
the cell generates or trains), streams progress back through a Ray queue, and, when the worker cannot
see the sweep folder (another machine without a shared disk), returns the run folder's files, which the
driver writes into the sweep folder.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import BASELINES, ConfigError, RunConfig
from ..errors import WorkbenchError
from ..storage import atomic_write_bytes, read_json
from .sweep import SWEEP_FILE, Cell, Progress, Sweep, lock

EXECUTORS = ("local", "ray")
WorkerSetup = Callable[[], None]


class SweepError(WorkbenchError, RuntimeError):
    """The sweep could not run (e.g. Ray not reachable); the message is one line saying why."""


# ---------------------------------------------------------------- local


def run_local(sweep: Sweep, cells: list[Cell], progress: Progress, on_done: Callable[[str, float], None], **_: Any) -> None:
    from ..pipeline.run import run

    for cell in cells:
        sweep.mark_started(cell, "local")
        t0 = time.perf_counter()
        try:
            run(cell.config, sweep.dir, cell.id, progress=lambda s, f, m, c=cell.id: progress(c, s, f, m))
        except WorkbenchError as exc:  # failed (its status.json says why), locked or refused: the sweep goes on
            progress(cell.id, "failed", 1.0, str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        on_done(cell.id, time.perf_counter() - t0)


# ---------------------------------------------------------------- ray


def _shares_folder(sweep_dir: str, token: str) -> bool:
    """True when this worker sees the driver's sweep folder (same machine or a shared disk)."""
    data = read_json(Path(sweep_dir) / SWEEP_FILE, None) if (Path(sweep_dir) / SWEEP_FILE).is_file() else None
    return isinstance(data, dict) and data.get("token") == token


def run_cell_task(config: dict, sweep_dir: str, run_id: str, token: str, queue: Any, setup: WorkerSetup | None, threads: int = 0) -> dict[str, Any]:
    """Body of the Ray task: run one cell; returns its state, and the run folder's files when the driver cannot see them."""
    if setup is not None:
        setup()
    if threads:  # a cell uses the CPUs it asked Ray for, no more (models.setup_threads reads it)
        import torch

        os.environ["WORKBENCH_THREADS"] = str(threads)
        torch.set_num_threads(threads)
    from ..pipeline.run import run

    shared = _shares_folder(sweep_dir, token)
    out = Path(sweep_dir) if shared else Path(tempfile.mkdtemp(prefix="workbench-cell-"))
    last = [0.0, ""]

    def report(stage: str, fraction: float, message: str) -> None:
        now = time.monotonic()
        if queue is None or (stage == last[1] and fraction < 1.0 and now - last[0] < 0.5):
            return
        last[:] = [now, stage]
        try:  # fire and forget: a task blocked in ray.get would hand its CPU to another cell (oversubscription)
            queue.actor.put_nowait.remote((run_id, stage, fraction, message))
        except Exception:  # noqa: BLE001 - progress is best effort; a full or gone queue never fails the cell
            pass

    t0 = time.perf_counter()
    error = None
    try:
        run(RunConfig.from_dict(config), out, run_id, progress=report)
    except WorkbenchError as exc:
        error = str(exc)
    files = {}
    if not shared:
        files = {p.name: p.read_bytes() for p in (out / run_id).iterdir() if p.is_file() and p.name != ".lock"}
    return {"run_id": run_id, "error": error, "files": files, "wall_s": time.perf_counter() - t0, "node": os.uname().nodename}


def _needs_gpu(config: RunConfig) -> bool:
    """Every method but the no-model baselines generates; lora and rag+lora also train."""
    return any(m not in BASELINES for m in config.methods)


def _connect(address: str | None) -> bool:
    """Connect to ``address`` or the running Ray of this process, else start a local one; True when we started it."""
    try:
        import ray
    except ImportError:
        raise SweepError("the ray executor needs Ray; install it with: pip install 'ray==2.60.0'") from None
    if ray.is_initialized():
        return False
    from ..paths import repo_root

    if address:  # the cluster runs this same workbench code
        env = {"py_modules": [str(repo_root() / "workbench")]}
        try:
            ray.init(address=address, runtime_env=env)
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; one line for the user
            raise SweepError(f"--address {address}: cannot connect to the Ray cluster ({str(exc).splitlines()[0][:160]}); check the address and that the cluster runs") from None
        return True
    path = os.pathsep.join(p for p in (str(repo_root()), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    return True


def run_ray(
    sweep: Sweep,
    cells: list[Cell],
    progress: Progress,
    on_done: Callable[[str, float], None],
    address: str | None = None,
    cpus_per_cell: float = 1,
    worker_setup: WorkerSetup | None = None,
) -> None:
    started = _connect(address)
    import ray
    from ray.util.queue import Empty, Queue

    try:
        gpus = ray.cluster_resources().get("GPU", 0) > 0
        queue = Queue(actor_options={"num_cpus": 0})
        task = ray.remote(run_cell_task)
        pending: dict[Any, Cell] = {}
        for cell in cells:
            sweep.mark_started(cell, "ray")
            opts = {"num_cpus": cpus_per_cell, "num_gpus": 1 if gpus and _needs_gpu(cell.config) else 0, "max_retries": 0}
            threads = max(1, int(cpus_per_cell))
            ref = task.options(**opts).remote(cell.config.to_dict(), str(sweep.dir), cell.id, sweep.data["token"], queue, worker_setup, threads)
            pending[ref] = cell
            progress(cell.id, "queued", 0.0, f"submitted to Ray ({opts['num_cpus']} CPU{'' if opts['num_cpus'] == 1 else 's'}, {opts['num_gpus']} GPU)")
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            while True:
                try:
                    progress(*queue.get_nowait())
                except Empty:
                    break
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a worker that died: the cell is interrupted, rerun resumes it
                    progress(cell.id, "failed", 1.0, f"Ray task failed: {str(exc).splitlines()[0][:200]}")
                    on_done(cell.id, 0.0)
                    continue
                for name, data in result["files"].items():  # a worker without the sweep folder sent its run folder back
                    atomic_write_bytes(sweep.run_dir(cell.id) / name, data)
                if result["error"]:
                    progress(cell.id, "failed", 1.0, result["error"])
                on_done(cell.id, result["wall_s"])
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------- the sweep


def run_sweep(
    sweep: Sweep,
    executor: str = "local",
    progress: Progress | None = None,
    address: str | None = None,
    cpus_per_cell: float = 1,
    mlflow_uri: str | None = None,
    worker_setup: WorkerSetup | None = None,
) -> dict[str, Any]:
    """Run every cell not yet done; returns sweep.json's data. Finished cells are skipped, failed or interrupted ones rerun."""
    if executor not in EXECUTORS:
        raise ConfigError(f"--executor {executor!r} is unknown; use local or ray")
    if address and executor != "ray":
        raise ConfigError("--address is for the ray executor; add --executor ray")
    if cpus_per_cell <= 0:
        raise ConfigError(f"--cpus-per-cell {cpus_per_cell} must be above 0")
    progress = progress or (lambda *a: None)
    tracker = None
    if mlflow_uri:
        from .tracking import MlflowTracker

        tracker = MlflowTracker(mlflow_uri, sweep.dir.name)
    held = lock(sweep)
    try:
        sweep.open()
        todo = sweep.todo()
        skipped = len(sweep.cells) - len(todo)
        progress("sweep", "plan", 0.0, f"{len(sweep.cells)} cells: {skipped} already done, {len(todo)} to run ({executor})")

        def on_done(cell_id: str, wall_s: float) -> None:
            sweep.mark_finished(cell_id, wall_s)
            entry = sweep.entry(cell_id)
            progress(cell_id, entry["state"], 1.0, entry.get("error") or "finished")
            if tracker and entry["state"] == "done" and not entry.get("mlflow_run_id"):
                entry["mlflow_run_id"] = tracker.log_cell(entry, sweep.run_dir(cell_id))
                sweep.save()

        t0 = time.perf_counter()
        if executor == "ray":
            run_ray(sweep, todo, progress, on_done, address=address, cpus_per_cell=cpus_per_cell, worker_setup=worker_setup)
        else:
            run_local(sweep, todo, progress, on_done)
        if tracker:  # cells finished before --mlflow was given are logged too
            for entry in sweep.data["cells"]:
                if entry["state"] == "done" and not entry.get("mlflow_run_id"):
                    entry["mlflow_run_id"] = tracker.log_cell(entry, sweep.run_dir(entry["id"]))
        sweep.data.setdefault("sessions", []).append({"executor": executor, "cells_run": len(todo), "skipped": skipped,
                                                       "wall_s": round(time.perf_counter() - t0, 3), "at": sweep.data.get("updated")})  # fmt: skip
        sweep.save()
        return sweep.data
    finally:
        held.release()
