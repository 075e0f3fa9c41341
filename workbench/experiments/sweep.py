"""Sweeps: one experiment over a grid of settings; a folder of ordinary run folders plus sweep.json.

Grid keys are settings exactly as ``--set`` takes them (``section.field``, or ``model`` / ``seed``), and
every value is coerced and validated the same way before any cell runs. The sweep folder is named from
its settings, so rerunning the same command resumes it: finished cells are skipped, failed, cancelled
or interrupted ones (a 'running' cell whose process died) run again. Shared work is reused through the
content-addressed caches (index, adapter, answers); sweep.json records per cell what was reused.
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tomllib

from ..config import SELECTABLE, ConfigError, RunConfig, build_config, section_settings
from ..methods.registry import RAG, ZERO_SHOT
from ..pipeline.runstore import RunStatus, check_run_id, effective_state
from ..storage import FolderLock, atomic_write_json, read_json, read_jsonl, stable_hash
from .grid import cell_id, check_grid, expand

SWEEP_FILE = "sweep.json"
# What sweep.json keeps of each method's metrics (the run folder keeps everything).
HEADLINE = ("accuracy", "accuracy_ci", "hallucination_rate", "abstention_rate", "f1", "usd_per_1k_queries", "cost_per_correct_usd",
            "latency_p50_s", "build_seconds", "n")  # fmt: skip
Progress = Callable[[str, str, float, str], None]  # (cell id, stage, fraction, message)


def default_sweeps_dir() -> Path:
    """Sweep folders go to ``WORKBENCH_SWEEPS`` or ``./sweeps``."""
    return Path(os.environ.get("WORKBENCH_SWEEPS", "sweeps"))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------- the sweep's settings


@dataclass
class SweepSpec:
    corpus: str
    grid: dict[str, list[Any]]
    methods: list[str] = field(default_factory=lambda: [ZERO_SHOT, RAG])
    preset: str = "quick"
    base: dict[str, dict[str, Any]] = field(default_factory=dict)  # --set / [set]: settings shared by every cell
    model: str | None = None
    seed: int = 0
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """What identifies the sweep (not its name): same settings, same cells."""
        data = {k: v for k, v in self.to_dict().items() if k != "name"}
        return stable_hash(data, str(Path(self.corpus).resolve()))[:10]

    def folder_name(self) -> str:
        if self.name:
            return check_run_id(self.name)
        corpus = re.sub(r"[^A-Za-z0-9._+-]+", "-", Path(self.corpus).name).strip("-.")[:40] or "corpus"
        return f"{corpus}-{self.key()}"

    def cell_config(self, settings: dict[str, Any]) -> RunConfig:
        """The full run config of one cell: base settings, then the cell's grid values; ConfigError naming the cell."""
        from ..corpus.load import corpus_defaults

        overrides = {s: dict(v) for s, v in self.base.items()}
        top: dict[str, Any] = {"methods": list(self.methods), "seed": self.seed}
        if self.model:
            top["model"] = self.model
        for key, value in settings.items():
            section, dot, name = key.partition(".")
            if dot:
                overrides.setdefault(section, {})[name] = value
            else:
                top[key] = value
        try:
            return build_config(self.corpus, self.preset, corpus_defaults(self.corpus), overrides, **top)
        except (ConfigError, TypeError) as exc:
            label = ", ".join(f"{k}={v}" for k, v in settings.items())
            raise ConfigError(f"grid cell {label}: {exc}") from None


def load_sweep_file(path: str | Path) -> dict[str, Any]:
    """A sweep TOML file as keyword arguments of SweepSpec (corpus relative to the file; [grid] and [set] tables)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the sweep file ({exc.strerror or exc}); check the path") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({str(exc).splitlines()[0]}); fix the file") from None
    known = {"corpus", "grid", "methods", "preset", "set", "model", "seed", "name"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{path}: unknown key {key!r}; valid: {', '.join(sorted(known))}")
    out: dict[str, Any] = {k: v for k, v in data.items() if k in ("methods", "preset", "model", "seed", "name")}
    if isinstance(out.get("methods"), str):
        out["methods"] = [m.strip() for m in out["methods"].split(",") if m.strip()]
    if "corpus" in data:
        corpus = Path(str(data["corpus"])).expanduser()
        out["corpus"] = str(corpus if corpus.is_absolute() or not (path.parent / corpus).is_dir() else path.parent / corpus)
    grid: dict[str, Any] = {}
    for key, value in (data.get("grid") or {}).items():
        if isinstance(value, dict):  # [grid.retrieval] top_k = [2, 4]
            grid.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            grid[key] = value
    out["grid"] = check_grid(grid, f"{path} [grid]")
    base = data.get("set") or {}
    if not isinstance(base, dict):
        raise ConfigError(f"{path}: [set] must be a table of settings such as eval.max_questions = 6")
    out["base"] = {s: section_settings(s, v, f"{path} [set]") for s, v in base.items()}
    return out


def make_spec(corpus: str | None, grid: dict[str, list[Any]], file: str | Path | None = None, **kw: Any) -> SweepSpec:
    """A SweepSpec from a sweep file (optional) and command-line values (which win; grids are merged)."""
    data = load_sweep_file(file) if file else {"grid": {}}
    for key in list(grid):
        if key in data["grid"]:
            raise ConfigError(f"--grid {key}: also in the sweep file's [grid]; give it in one place")
    data["grid"] = {**data["grid"], **grid}
    for key, value in kw.items():
        if value is None:
            continue
        if key == "base":
            merged = {s: dict(v) for s, v in data.get("base", {}).items()}
            for section, values in value.items():
                merged.setdefault(section, {}).update(values)
            data["base"] = merged
        else:
            data[key] = value
    if corpus:
        data["corpus"] = corpus
    if not data.get("corpus"):
        raise ConfigError("no corpus: give --corpus PATH or corpus = \"...\" in the sweep file")
    if not Path(data["corpus"]).is_dir():
        raise ConfigError(f"{data['corpus']}: corpus folder not found; give a folder with docs/ and questions.jsonl")
    data["corpus"] = str(Path(data["corpus"]).resolve())  # workers (Ray) may start in another folder
    if not data["grid"]:
        raise ConfigError("no grid: give --grid section.field=v1,v2 (or a [grid] table in the sweep file)")
    bad = [m for m in data.get("methods", []) if m not in SELECTABLE]
    if bad:
        raise ConfigError(f"--methods: unknown method(s) {', '.join(bad)}; choose from {', '.join(SELECTABLE)}")
    return SweepSpec(**data)


# ---------------------------------------------------------------- the sweep folder


@dataclass
class Cell:
    id: str
    settings: dict[str, Any]
    config: RunConfig


def plan(spec: SweepSpec) -> list[Cell]:
    """Every cell with its full, validated config (nothing runs when one cell is invalid)."""
    combos = expand(spec.grid)
    return [Cell(cell_id(i, s), s, spec.cell_config(s)) for i, s in enumerate(combos)]


def cell_state(run_dir: Path) -> str:
    """pending (no run yet), or the run's effective state (done, failed, cancelled, running, interrupted)."""
    if not (run_dir / "status.json").is_file():
        return "pending"
    state = effective_state(RunStatus(run_dir).read())
    return "done" if state == "done" and (run_dir / "metrics.json").is_file() else ("interrupted" if state == "done" else state)


def reuse_of(run_dir: Path) -> dict[str, Any]:
    """What this cell took from the shared caches: index / adapter cache hits and the share of answers served cached."""
    metrics = read_json(run_dir / "metrics.json", {}) or {}
    out: dict[str, Any] = {}
    if isinstance(metrics.get("index"), dict):
        out["index"] = {"cache_hit": bool(metrics["index"].get("cache_hit")), "key": str(metrics["index"].get("key", ""))[:16]}
    if isinstance(metrics.get("train"), dict):
        out["adapter"] = {"cache_hit": bool(metrics["train"].get("cache_hit")), "key": str(metrics["train"].get("key", ""))[:16]}
    try:
        rows = read_jsonl(run_dir / "predictions.jsonl") if (run_dir / "predictions.jsonl").is_file() else []
    except (OSError, ValueError):
        rows = []
    shares: dict[str, list[int]] = {}
    for row in rows:
        done = shares.setdefault(str(row.get("method")), [0, 0])
        done[0] += bool(row.get("cached"))
        done[1] += 1
    out["answers_cached"] = {m: round(c / n, 4) for m, (c, n) in shares.items() if n}
    return out


def _headline(run_dir: Path) -> dict[str, dict[str, Any]]:
    metrics = read_json(run_dir / "metrics.json", {}) or {}
    out = {}
    for method, m in (metrics.get("methods") or {}).items():
        if isinstance(m, dict):
            out[method] = {k: m.get(k) for k in HEADLINE if k in m} | ({"baseline": True} if m.get("baseline") else {})
    return out


def best_per_method(cells: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """For each (non-baseline) method, the done cell with the highest accuracy; ties go to the cheaper, then the earlier cell."""
    best: dict[str, tuple[tuple, dict[str, Any]]] = {}
    for order, cell in enumerate(cells):
        if cell.get("state") != "done":
            continue
        for method, m in (cell.get("metrics") or {}).items():
            if m.get("baseline") or m.get("accuracy") is None:
                continue
            cost = m.get("usd_per_1k_queries")
            rank = (-m["accuracy"], cost if cost is not None else float("inf"), order)
            if method not in best or rank < best[method][0]:
                best[method] = (rank, {"cell": cell["id"], "settings": cell["settings"], "accuracy": m["accuracy"], "usd_per_1k_queries": cost})
    return {m: v for m, (_, v) in best.items()}


class Sweep:
    """A sweep folder: its cells' run folders and sweep.json (rewritten atomically after every change)."""

    def __init__(self, spec: SweepSpec, out_dir: str | Path | None = None):
        self.spec = spec
        self.dir = Path(out_dir or default_sweeps_dir()).resolve() / spec.folder_name()
        self.cells = plan(spec)
        self.path = self.dir / SWEEP_FILE
        self.data: dict[str, Any] = {}

    def open(self) -> Sweep:
        """Create the folder or resume it; a folder holding another sweep (other settings) is refused, never overwritten."""
        if self.dir.exists() and not self.dir.is_dir():
            raise ConfigError(f"{self.dir}: exists and is not a folder; choose another --name")
        if self.dir.is_dir() and any(p.name != ".lock" for p in self.dir.iterdir()) and not self.path.is_file():
            raise ConfigError(f"{self.dir}: exists and is not a sweep folder (no {SWEEP_FILE}); choose another --name or --out")
        self.dir.mkdir(parents=True, exist_ok=True)
        old = read_json(self.path, None) if self.path.is_file() else None
        if old is not None and (not isinstance(old, dict) or old.get("key") != self.spec.key()):
            raise ConfigError(f"{self.dir}: holds a sweep with other settings; use the same settings to resume it, or --name for a new sweep")
        previous = {c.get("id"): c for c in (old or {}).get("cells", []) if isinstance(c, dict)}
        self.data = {
            "name": self.dir.name, "key": self.spec.key(), "token": (old or {}).get("token") or stable_hash(self.dir.resolve(), time.time())[:12],
            "created": (old or {}).get("created") or _now(), "spec": self.spec.to_dict(), "grid": self.spec.grid,
            "cells": [self._cell_entry(c, previous.get(c.id, {})) for c in self.cells],
        }  # fmt: skip
        self.save()
        return self

    def _cell_entry(self, cell: Cell, old: dict[str, Any]) -> dict[str, Any]:
        entry = {"id": cell.id, "run_id": cell.id, "settings": cell.settings, "attempts": old.get("attempts", [])}
        for key in ("wall_s", "executor", "mlflow_run_id", "started", "finished"):
            if key in old:
                entry[key] = old[key]
        return entry

    def run_dir(self, cell_id: str) -> Path:
        return self.dir / cell_id

    def refresh(self) -> None:
        """Each cell's state, error, headline metrics and reuse, read from its run folder (the run folder is the truth)."""
        for entry in self.data["cells"]:
            run_dir = self.run_dir(entry["id"])
            entry["state"] = cell_state(run_dir)
            status = RunStatus(run_dir).read() if entry["state"] != "pending" else {}
            entry["error"] = status.get("error") if entry["state"] != "done" else None
            entry["stage"] = status.get("stage")
            entry["metrics"] = _headline(run_dir) if entry["state"] == "done" else {}
            entry["reuse"] = reuse_of(run_dir) if entry["state"] == "done" else {}
        self.data["best"] = best_per_method(self.data["cells"])
        counts: dict[str, int] = {}
        for entry in self.data["cells"]:
            counts[entry["state"]] = counts.get(entry["state"], 0) + 1
        self.data["counts"] = counts

    def save(self) -> None:
        self.refresh()
        self.data["updated"] = _now()
        atomic_write_json(self.path, self.data)

    def entry(self, cell_id: str) -> dict[str, Any]:
        return next(e for e in self.data["cells"] if e["id"] == cell_id)

    def todo(self) -> list[Cell]:
        """Cells still to run: pending, failed, cancelled and interrupted ones (a live 'running' cell is another process's)."""
        self.refresh()
        return [c for c in self.cells if self.entry(c.id)["state"] in ("pending", "failed", "cancelled", "interrupted")]

    def mark_started(self, cell: Cell, executor: str) -> None:
        entry = self.entry(cell.id)
        if entry.get("state") in ("failed", "cancelled", "interrupted"):
            entry["attempts"].append({"state": entry["state"], "error": entry.get("error"), "at": _now()})
            (self.run_dir(cell.id) / "error.log").unlink(missing_ok=True)  # the attempt is kept in sweep.json
        entry.update(executor=executor, started=_now())
        entry.pop("finished", None)
        self.save()

    def mark_finished(self, cell_id: str, wall_s: float) -> None:
        self.entry(cell_id).update(finished=_now(), wall_s=round(wall_s, 3))
        self.save()


def lock(sweep: Sweep) -> FolderLock:
    """One process runs a sweep at a time (a second one gets a one-line LockedError)."""
    return FolderLock(sweep.dir).acquire()


def load_sweep(sweep_dir: str | Path) -> dict[str, Any]:
    """sweep.json of a sweep folder with each cell's state refreshed from its run folder."""
    sweep_dir = Path(sweep_dir)
    data = read_json(sweep_dir / SWEEP_FILE, None) if (sweep_dir / SWEEP_FILE).is_file() else None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise ConfigError(f"{sweep_dir}: not a sweep folder (no readable {SWEEP_FILE}); give a folder written by python -m workbench sweep")
    for entry in data["cells"]:
        run_dir = sweep_dir / str(entry.get("run_id", ""))
        entry["state"] = cell_state(run_dir)
        entry["dir"] = str(run_dir)
        if entry["state"] == "done":  # a sweep killed before it saved still shows what its runs finished
            entry["metrics"], entry["reuse"], entry["error"] = _headline(run_dir), reuse_of(run_dir), None
        else:
            entry["metrics"], entry["reuse"] = {}, {}
    data["best"] = best_per_method(data["cells"])
    return data


def list_sweeps(sweeps_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Every sweep folder under ``sweeps_dir``, newest first: name, folder, corpus, cell counts."""
    root = Path(sweeps_dir or default_sweeps_dir())
    if not root.is_dir():
        return []
    out = []
    for d in sorted((p for p in root.iterdir() if (p / SWEEP_FILE).is_file()), key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            data = load_sweep(d)
        except (ConfigError, OSError, ValueError):
            continue
        states = [c["state"] for c in data["cells"]]
        out.append({"name": d.name, "dir": str(d), "corpus": Path(str((data.get("spec") or {}).get("corpus", ""))).name,
                    "cells": len(states), "done": states.count("done"), "updated": data.get("updated", "")})  # fmt: skip
    return out
