"""A finished run folder read for the reports: config, metrics, predictions, meta; a corrupt file is one clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError
from workbench.storage import read_json, read_jsonl


class ReportError(WorkbenchError, ValueError):
    """The run folder cannot be reported on; the message says which file and what to do."""


def load_run_data(run_dir: str | Path) -> dict[str, Any]:
    """config, meta, status, metrics, predictions and the training log of a finished run folder."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such run folder; list runs with: python -m workbench runs")
    try:
        metrics = read_json(run_dir / "metrics.json")
        predictions = read_jsonl(run_dir / "predictions.jsonl")
    except (ValueError, RecursionError) as exc:
        raise ReportError(f"{run_dir}: metrics.json or predictions.jsonl is corrupt ({str(exc)[:120] or type(exc).__name__}); rerun the evaluation") from None
    status = _json_dict(run_dir / "status.json")
    if not isinstance(metrics, dict) or not metrics.get("methods"):
        raise ReportError(f"{run_dir / 'metrics.json'}: missing or has no methods (run state: {status.get('state', 'unknown')}); wait for the run to finish")
    if not isinstance(metrics["methods"], dict) or not all(isinstance(v, dict) for v in metrics["methods"].values()):
        raise ReportError(f"{run_dir / 'metrics.json'}: \"methods\" is not a table of per-method objects; rerun the evaluation")
    if not all(isinstance(r, dict) for r in predictions):
        raise ReportError(f"{run_dir / 'predictions.jsonl'}: a line is not a JSON object; rerun the evaluation")
    if not predictions:
        raise ReportError(f"{run_dir / 'predictions.jsonl'}: missing or empty; the run answered no questions")
    try:
        history = read_jsonl(run_dir / "train_log.jsonl")
    except (OSError, ValueError, RecursionError):
        history = []
    history = history or (metrics.get("train") or {}).get("loss_history") or []
    return {
        "run_id": run_dir.name,
        "config": _json_dict(run_dir / "config.json"),
        "meta": _json_dict(run_dir / "meta.json"),
        "status": status,
        "metrics": metrics,
        "predictions": predictions,
        "train_log": [{"step": r["step"], "loss": r["loss"]} for r in history if "step" in r and "loss" in r],
    }


def _json_dict(path: Path) -> dict:
    """A run's side file (config, meta, status) as a dict; a missing, corrupt or non-object file reads as {}."""
    try:
        data = read_json(path, {})
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}
