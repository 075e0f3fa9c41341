"""Experiment tracking: each finished sweep cell as one MLflow run (settings as params, metrics per method, artefact paths)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from ..config import ConfigError
from ..errors import WorkbenchError
from ..storage import read_json

LOGGED = ("accuracy", "hallucination_rate", "abstention_rate", "exact_match", "f1", "usd_per_1k_queries", "cost_per_correct_usd",
          "latency_p50_s", "latency_p95_s", "throughput_qps", "build_seconds", "prompt_tokens_mean", "output_tokens_mean")  # fmt: skip
ARTEFACTS = ("config.json", "metrics.json", "predictions.jsonl")


class TrackingError(WorkbenchError, RuntimeError):
    """MLflow is missing or its tracking store cannot be written; the message says what to do."""


def _flat(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        else:
            out[name] = str(value)[:500]
    return out


class MlflowTracker:
    """Logs to ``uri`` (``file:/path``, ``sqlite:///file.db`` or a tracking server) under the experiment ``experiment``."""

    def __init__(self, uri: str, experiment: str):
        try:
            import mlflow
        except ImportError:
            raise TrackingError("--mlflow needs MLflow; install it with: pip install 'mlflow-skinny==3.17.2'") from None
        if not uri.strip():
            raise ConfigError("--mlflow is empty; give a tracking URI such as file:./mlruns or sqlite:///mlflow.db")
        self.mlflow, self.uri = mlflow, uri
        if uri.startswith("file:") or "://" not in uri:  # a folder store, asked for by name: MLflow 3 wants the opt-in
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            mlflow.set_tracking_uri(uri)
            self.experiment_id = mlflow.set_experiment(experiment).experiment_id
        except ModuleNotFoundError as exc:  # sqlite: needs SQLAlchemy, which mlflow-skinny leaves out
            raise TrackingError(f"--mlflow {uri}: this store needs the {exc.name} package (pip install sqlalchemy alembic), or use a folder store file:./mlruns") from None
        except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds; one line for the user
            raise TrackingError(f"--mlflow {uri}: cannot use this tracking store ({str(exc).splitlines()[0][:160]}); check the URI") from None

    def log_cell(self, entry: dict[str, Any], run_dir: Path) -> str:
        """One MLflow run for a finished cell; returns its MLflow run id."""
        mlflow = self.mlflow
        config = read_json(run_dir / "config.json", {}) or {}
        metrics = read_json(run_dir / "metrics.json", {}) or {}
        values = {}
        for method, m in (metrics.get("methods") or {}).items():
            for key in LOGGED:
                x = m.get(key)
                if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x):
                    values[f"{method}.{key}".replace("+", "_plus_")] = float(x)
        params = {k: v for k, v in _flat(config).items() if k not in ("corpus_fingerprint", "model_fingerprint")}
        tags = {"workbench.cell": entry["id"], "workbench.run_dir": str(run_dir), **{f"grid.{k}": str(v) for k, v in entry["settings"].items()}}
        with mlflow.start_run(experiment_id=self.experiment_id, run_name=entry["id"], tags=tags) as active:
            mlflow.log_params(params)
            mlflow.log_metrics(values)
            for name in ARTEFACTS:
                if (run_dir / name).is_file():
                    mlflow.log_artifact(str(run_dir / name))
            return active.info.run_id
