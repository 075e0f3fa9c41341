"""Crash safety: atomic writes under a full disk, the run-folder lock, torn logs, SIGKILL mid-run, and a write audit.

SIGKILL during LoRA training (resume from the last complete checkpoint) is covered by
tests/test_lora.py; here only the rule that incomplete checkpoints are ignored is checked.
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, TINY_OVERRIDES, make_tiny_corpus

from workbench import storage
from workbench.config import build_config
from workbench.pipeline.run import run
from workbench.pipeline.runstore import list_runs, load_run
from workbench.pipeline.stages import RunError
from workbench.storage import FolderLock, LockedError, atomic_write_json, read_json, read_jsonl

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _config(corpus: Path, model: Path, **kw):
    return build_config(str(corpus), "quick", {"chunk_size": 120, "chunk_overlap": 20, "top_k": 2}, TINY_OVERRIDES, model=str(model), methods=["zero-shot"], **kw)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*.tmp"))


# ------------------------------------------------------------------------------------------------ disk full


@pytest.mark.parametrize("where", ["write", "fsync"])
def test_disk_full_during_write_keeps_the_previous_file(tmp_path, monkeypatch, where):
    target = tmp_path / "metrics.json"
    atomic_write_json(target, {"accuracy": 0.5})
    before = target.read_bytes()

    if where == "fsync":
        def fail(fd: int) -> None:
            raise ENOSPC

        monkeypatch.setattr(storage.os, "fsync", fail)
    else:
        real_fdopen = os.fdopen

        class HalfWriter:
            """Writes half the bytes, then reports the disk full (a torn write)."""

            def __init__(self, fh):
                self.fh = fh

            def write(self, data: bytes) -> int:
                self.fh.write(data[: len(data) // 2])
                self.fh.flush()
                raise ENOSPC

            def __getattr__(self, name):
                return getattr(self.fh, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.fh.close()

        monkeypatch.setattr(storage.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    with pytest.raises(OSError) as exc:
        atomic_write_json(target, {"accuracy": 0.9, "padding": "x" * 10_000})
    assert exc.value.errno == errno.ENOSPC
    assert target.read_bytes() == before and read_json(target) == {"accuracy": 0.5}
    assert _leftovers(tmp_path) == []  # the half-written temp file is removed


def test_disk_full_during_a_run_marks_it_failed_and_keeps_earlier_runs(tiny_corpus, tiny_lm_dir, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    good = run(_config(tiny_corpus, tiny_lm_dir), out_dir=runs, run_id="good")
    good_files = {p.name: p.read_bytes() for p in good.iterdir() if p.is_file() and p.name != ".lock"}
    real = storage.atomic_write_bytes

    def full_disk(path, data):
        if Path(path).name == "predictions.jsonl":
            raise ENOSPC
        return real(path, data)

    monkeypatch.setattr(storage, "atomic_write_bytes", full_disk)
    with pytest.raises(RunError) as exc:
        run(_config(tiny_corpus, tiny_lm_dir), out_dir=runs, run_id="full")
    assert "No space left on device" in str(exc.value) and "\n" not in str(exc.value)
    failed = load_run(runs / "full")
    assert failed["status"]["state"] == "failed" and "No space left" in failed["status"]["error"]
    assert not (runs / "full" / "predictions.jsonl").exists() and not (runs / "full" / "metrics.json").exists()
    assert _leftovers(runs) == []
    assert {p.name: p.read_bytes() for p in good.iterdir() if p.is_file() and p.name != ".lock"} == good_files
    assert {r["run_id"]: r["state"] for r in list_runs(runs)} == {"good": "done", "full": "failed"}


def test_disk_full_everywhere_still_reports_the_original_error(tiny_corpus, tiny_lm_dir, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    real = storage.atomic_write_bytes
    broken = {"on": False}

    def full_disk(path, data):
        if Path(path).name == "predictions.jsonl":
            broken["on"] = True  # from here on the disk is full: the status update fails too
        if broken["on"]:
            raise ENOSPC
        return real(path, data)

    monkeypatch.setattr(storage, "atomic_write_bytes", full_disk)
    with pytest.raises(RunError, match="No space left on device"):
        run(_config(tiny_corpus, tiny_lm_dir), out_dir=runs, run_id="full")
    monkeypatch.setattr(storage, "atomic_write_bytes", real)
    FolderLock(runs / "full").acquire().release()  # the lock was released despite the failure


# ------------------------------------------------------------------------------------------------ lock


def test_second_run_on_the_same_folder_fails_fast(tiny_corpus, tiny_lm_dir, tmp_path):
    run_dir = tmp_path / "runs" / "busy"
    holder = FolderLock(run_dir).acquire()
    atomic_write_json(run_dir / "status.json", {"state": "running", "pid": os.getpid()})
    before = (run_dir / "status.json").read_bytes()
    try:
        with pytest.raises(LockedError) as exc:  # raised at once: the lock is never waited for (it is held until the end of the test)
            run(_config(tiny_corpus, tiny_lm_dir), out_dir=tmp_path / "runs", run_id="busy")
        assert "busy: another process is using this folder" in str(exc.value) and "\n" not in str(exc.value)
        assert (run_dir / "status.json").read_bytes() == before  # the first run's status is untouched
        proc = subprocess.run(
            [sys.executable, "-m", "workbench", "run", "--corpus", str(tiny_corpus), "--methods", "zero-shot", "--model", str(tiny_lm_dir),
             "--out", str(tmp_path / "runs"), "--run-id", "busy"],
            cwd=REPO, capture_output=True, text=True, timeout=120,
        )
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines()[-1].startswith("error: ") and "another process is using this folder" in proc.stderr
    finally:
        holder.release()


# ------------------------------------------------------------------------------------------------ torn files


def test_torn_last_line_of_an_appended_log_is_dropped(tmp_path):
    log = tmp_path / "train_log.jsonl"
    log.write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.1}\n{"step": 3, "lo')
    assert read_jsonl(log) == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.1}]
    log.write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "lo\n{"step": 3, "loss": 2.0}\n')
    with pytest.raises(json.JSONDecodeError):  # corruption in the middle is never hidden
        read_jsonl(log)


def test_incomplete_checkpoints_are_ignored_on_resume(tmp_path):
    from workbench.tuning.checkpoints import COMPLETE, latest_checkpoint

    root = tmp_path / "checkpoints"
    for name, complete in (("step-2", True), ("step-4", True), ("step-6", False), (".tmp-step-8", True)):
        (root / name).mkdir(parents=True)
        (root / name / "adapter_model.safetensors").write_bytes(b"partial")
        if complete:
            (root / name / COMPLETE).write_text("done\n")
    step, folder = latest_checkpoint(tmp_path)
    assert step == 4 and folder.name == "step-4"
    assert latest_checkpoint(tmp_path / "nothing") is None


# ------------------------------------------------------------------------------------------------ SIGKILL


def _slow_corpus(root: Path) -> Path:
    """The tiny corpus plus 30 held-out questions, so the answer stage lasts long enough to be killed."""
    make_tiny_corpus(root)
    extra = [json.dumps({"id": f"x{i}", "question": f"What is fact number {i} about the Vantor-9?", "answers": [f"{i} units"], "split": "test"}) for i in range(30)]
    with (root / "questions.jsonl").open("a", encoding="utf-8") as fh:
        fh.write("\n".join(extra) + "\n")
    return root


def _cli_run(corpus: Path, model: Path, out: Path, run_id: str, *settings: str) -> list[str]:
    cmd = [sys.executable, "-m", "workbench", "run", "--corpus", str(corpus), "--methods", "zero-shot", "--model", str(model), "--out", str(out),
           "--run-id", run_id, "--set", "eval.bootstrap_samples=100"]
    return cmd + [arg for s in settings for arg in ("--set", s)]


def test_sigkill_during_evaluation_leaves_an_interrupted_run_and_a_rerun_finishes(tmp_path, tiny_lm_dir):
    corpus = _slow_corpus(tmp_path / "slow")
    runs = tmp_path / "runs"
    slow = ("generation.max_new_tokens=24", "generation.batch_size=1")
    proc = subprocess.Popen(_cli_run(corpus, tiny_lm_dir, runs, "killed", *slow), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    status_path = runs / "killed" / "status.json"
    deadline = time.monotonic() + 180
    seen = {}
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                seen = json.loads(status_path.read_text())
            except (OSError, ValueError):
                seen = {}
            if seen.get("stage") == "answer" and seen.get("progress", 0) > 0:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
        assert seen.get("stage") == "answer", f"never reached the answer stage: {seen}"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    killed = load_run(runs / "killed")
    assert killed["status"]["state"] == "interrupted"  # never "done", never "running" forever
    assert not (runs / "killed" / "metrics.json").exists()
    assert {r["run_id"]: r["state"] for r in list_runs(runs)} == {"killed": "interrupted"}
    quick = ("eval.max_questions=5", "generation.max_new_tokens=4", "generation.batch_size=8")
    again = subprocess.run(_cli_run(corpus, tiny_lm_dir, runs, "rerun", *quick), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-800:]
    assert Path(again.stdout.strip().splitlines()[-1]).name == "rerun"
    done = load_run(runs / "rerun")
    assert done["status"]["state"] == "done" and len([r for r in done["predictions"] if r["method"] != "prior"]) == 5  # + the prior baseline
    assert {r["run_id"]: r["state"] for r in list_runs(runs)} == {"killed": "interrupted", "rerun": "done"}


# ------------------------------------------------------------------------------------------------ write audit

# Every raw (non-atomic) write in workbench/, with why it cannot leave a half-written artefact that looks complete.
RAW_WRITE = re.compile(r"\.write_text\(|\.write_bytes\(|open\([^)]*['\"][wax]b?\+?['\"]|\.open\(['\"][wax]|json\.dump\(|save_pretrained\(|faiss\.write_index\(|torch\.save\(|\.to_csv\(|np\.save\(|\.save\(str")
AUDITED = {
    "build.py": ['(job_dir / "train_log.jsonl").open("a"'],  # append-only log; read_jsonl drops a torn last line
    "freshness.py": ["path.write_bytes(new_text.encode(encoding))"],  # edits a fresh copy that is refused once non-empty
    "jobs.py": ['open(job_dir / LOG_NAME, "ab")', "path.write_text(_now())"],  # child stdout log; CANCEL marker (content unused)
    "lora.py": ["model.save_pretrained(str(tmp)", 'open(log_path, "a"'],  # final adapter: tmp folder -> os.replace; append-only train log
    "checkpoints.py": ["model.save_pretrained(str(tmp)", "torch.save(", "(tmp / COMPLETE).write_text"],  # tmp folder -> os.replace; COMPLETE last
    "lora_data.py": ["torch.save("],  # data.pt.tmp -> replace; data.json (atomic) is written after and both are required to load
    "models.py": ['open(tmp, "wb")', "marker.write_text(", "save_pretrained(tmp", '"workbench_source.json").write_text(', 'open(self.path, "w")'],  # tmp -> os.replace; marker after; lock file
    "run.py": ['(run_dir / "error.log").write_text('],  # a diagnostic log written after status says failed
    "index.py": ["faiss.write_index(", "self.bm25.save("],  # inside a tmp folder, manifest (with sha256s) last, then os.replace
    "storage.py": ['os.fdopen(fd, "wb")'],  # the atomic writer itself: temp file in the same folder, fsync, os.replace
}


def test_every_raw_write_in_the_library_is_audited():
    unaudited = []
    for path in sorted((REPO / "workbench").glob("*.py")):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if RAW_WRITE.search(code) and not line.lstrip().startswith(('"""', "def ")) and not any(a in code for a in AUDITED.get(path.name, [])):
                unaudited.append(f"workbench/{path.name}:{lineno}: {line.strip()}")
    assert not unaudited, "non-atomic writes: use storage.atomic_write_* or add them to AUDITED with a reason:\n" + "\n".join(unaudited)
