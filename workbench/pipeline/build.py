"""Build only the RAG index or only the LoRA adapter, as a job folder with the run's status protocol.

The app's Build page starts this in a background process and polls `status.json` and
`train_log.jsonl` (live loss curve). Both artefacts land in the shared content-addressed cache,
so a later run with the same settings reuses them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from ..config import RunConfig
from ..methods.registry import LORA
from ..paths import default_runs_dir
from ..storage import FolderLock, atomic_write_json
from .runstore import RunStatus, new_run_id, prepare_run_folder

Progress = Callable[[str, float, str], None]


def build(
    config: RunConfig,
    what: Literal["index", "adapter"],
    out_dir: str | Path | None = None,
    job_id: str | None = None,
    progress: Progress | None = None,
) -> Path:
    """Build one artefact; returns the job folder holding status.json, result.json (and train_log.jsonl)."""
    from ..corpus.load import load_corpus
    from .stages import Cancelled, RunError, one_line, open_embedder, prepare_adapters, prepare_index, select_held_out, stage_reporter

    jobs = Path(out_dir) if out_dir else default_runs_dir() / "_jobs"
    job_dir = prepare_run_folder(jobs, job_id or f"{what}-{new_run_id(config)}")
    status = RunStatus(job_dir)
    with FolderLock(job_dir):
        (job_dir / "CANCEL").unlink(missing_ok=True)
        atomic_write_json(job_dir / "config.json", {**config.to_dict(), "what": what})
        status.update(state="running", stage=what, progress=0.0, message="starting", error=None)
        log = (job_dir / "train_log.jsonl").open("a", encoding="utf-8")
        report = stage_reporter(job_dir, status, progress)

        try:
            t0 = time.perf_counter()
            embedder = open_embedder(config)
            corpus = load_corpus(config.corpus, test_fraction=config.eval.test_fraction, seed=config.seed, embedder=embedder)
            if what == "index":
                held_out = select_held_out(corpus, config.eval.max_questions, config.seed)
                _, quality, info = prepare_index(config, corpus, held_out, embedder, report)
                result = {"index": info, "retrieval": quality}
            else:
                from ..backends.loader import open_generator

                generator = open_generator(config.model)

                def report_train(stage: str, fraction: float, message: str) -> None:
                    report(stage, fraction, message)

                def on_step(p: dict) -> None:
                    log.write(f'{{"step": {p["step"]}, "loss": {p["loss"]:.6f}, "tokens_per_s": {p["tokens_per_s"]:.1f}}}\n')
                    log.flush()

                held_out = select_held_out(corpus, config.eval.max_questions, config.seed)
                _, info = prepare_adapters(config, corpus, generator, embedder, report_train, {}, on_step=on_step, held_out=held_out)
                result = {"train": info, "learning_curve": {LORA: info["learning_curve"]}}
            result["wall_seconds"] = time.perf_counter() - t0
            atomic_write_json(job_dir / "result.json", result)
            status.update(state="done", progress=1.0, message="finished")
        except Cancelled as exc:
            status.update(state="cancelled", error=str(exc))
            raise
        except BaseException as exc:
            status.update(state="failed", error=one_line(exc))
            if isinstance(exc, RunError):
                raise
            raise RunError(one_line(exc)) from exc
        finally:
            log.close()
    return job_dir
