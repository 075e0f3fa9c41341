"""Crash-safe training checkpoints (adapter, optimiser, scheduler, RNG) and the learning-curve snapshots of an adapter.

Each is written to a temp folder and moved into place with os.replace; a checkpoint counts only once its COMPLETE marker is written.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

from ..storage import atomic_write_json, read_json

COMPLETE = "COMPLETE"


def complete_checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, folder) of the checkpoints under ``root`` that carry a COMPLETE marker, oldest first."""
    found = []
    for p in root.glob("step-*") if root.is_dir() else ():
        m = re.fullmatch(r"step-(\d+)", p.name)
        if m and (p / COMPLETE).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(out_dir: str | Path) -> tuple[int, Path] | None:
    """(step, folder) of the highest checkpoint with a COMPLETE marker; incomplete ones are ignored."""
    found = complete_checkpoints(Path(out_dir) / "checkpoints")
    return found[-1] if found else None


PROMPT_ENCODER_FILE = "prompt_encoder.safetensors"


def _prompt_encoder(model: Any) -> Any:
    """The trainable prompt encoder of a p-tuning peft model (an MLP writing the virtual tokens), else None."""
    config = getattr(model, "active_peft_config", None)
    if config is None or str(getattr(config, "peft_type", "")).split(".")[-1] != "P_TUNING":
        return None
    return model.prompt_encoder[model.active_adapter]


def save_checkpoint(model: Any, opt: Any, sched: Any, out_dir: Path, state: dict[str, Any]) -> None:
    """Adapter, optimiser, scheduler and RNG states into a temp folder, COMPLETE last, then os.replace."""
    import numpy as np
    import torch

    root = out_dir / "checkpoints"
    step = state["step"]
    tmp, final = root / f".tmp-step-{step}", root / f"step-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    encoder = _prompt_encoder(model)
    if encoder is not None:  # p-tuning: peft saves the encoder's output, resuming needs the encoder itself
        from safetensors.torch import save_file

        save_file({k: v.detach().contiguous() for k, v in encoder.state_dict().items()}, str(tmp / PROMPT_ENCODER_FILE))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    torch.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": rng}, tmp / "trainer_state.pt")
    np_state = np.random.get_state()
    py_state = random.getstate()
    extra = {
        "python_rng": [py_state[0], list(py_state[1]), py_state[2]],
        "numpy_rng": [np_state[0], np_state[1].tolist(), *map(float, np_state[2:])],
    }
    atomic_write_json(tmp / "state.json", {**state, **extra})
    (tmp / COMPLETE).write_text(f"step {step}\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old_step, old in complete_checkpoints(root):
        if old_step < step:
            shutil.rmtree(old, ignore_errors=True)


def snapshot_steps(steps: int, points: int) -> set[int]:
    """Steps before the last where the adapter is kept for the learning curve (``points`` - 1 evenly spaced)."""
    return {max(1, round(steps * k / points)) for k in range(1, points)} - {steps}


def save_snapshot(model: Any, out_dir: Path, step: int) -> None:
    """The adapter at ``step`` into snapshots/step-N (temp folder, then os.replace), for the learning curve."""
    tmp, final = out_dir / "snapshots" / f".tmp-step-{step}", out_dir / "snapshots" / f"step-{step}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)


def snapshots(adapter_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, folder) of the learning-curve snapshots of a finished adapter, the final adapter last."""
    adapter_dir = Path(adapter_dir)
    found = []
    for p in (adapter_dir.parent / "snapshots").glob("step-*"):
        m = re.fullmatch(r"step-(\d+)", p.name)
        if m and (p / "adapter_model.safetensors").is_file():
            found.append((int(m.group(1)), p))
    meta = read_json(adapter_dir / "workbench.json") or {}
    return sorted(found) + [(int(meta.get("steps", 0)), adapter_dir)]


def restore_checkpoint(model: Any, opt: Any, sched: Any, folder: Path) -> dict[str, Any]:
    """Adapter, optimiser, scheduler and every RNG back to a checkpoint; returns its state.json."""
    import numpy as np
    import torch
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(folder / "adapter_model.safetensors")))
    encoder = _prompt_encoder(model)
    if encoder is not None and (folder / PROMPT_ENCODER_FILE).is_file():
        encoder.load_state_dict(load_file(str(folder / PROMPT_ENCODER_FILE)))
    blob = torch.load(folder / "trainer_state.pt", weights_only=True)
    opt.load_state_dict(blob["optimizer"])
    sched.load_state_dict(blob["scheduler"])
    torch.set_rng_state(blob["rng"]["torch"])
    if "cuda" in blob["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state(blob["rng"]["cuda"])
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    py = state["python_rng"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = state["numpy_rng"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(cached)))
    return state
