"""`python -m workbench doctor`: what a user pastes into a bug report, and the one-time model preparation."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..backends.models import DEFAULT_GENERATOR, ModelError, cli_progress, describe_models, resolve_generator
from ..paths import bundled_corpora, home
from ..pipeline.runstore import git_revision, machine, versions


def _size_mb(path: Path) -> float:
    if not path.exists():
        return 0.0
    return round(sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6, 1)


def doctor_info() -> dict[str, Any]:
    root = home()
    m = machine()
    return {
        "versions": versions(),
        "git_revision": git_revision(),
        "machine": m,
        "dtype": ", ".join(f"{w} {m['dtype'][w]}" for w in ("generate", "train", "embed")) + f" ({m['dtype']['source']})",
        "models": describe_models(),
        "workbench_home": str(root),
        "cache_mb": {p.name: _size_mb(p) for p in sorted((root / "cache").glob("*"))} | {"models": _size_mb(root / "models")},
        "disk_free_gb": round(shutil.disk_usage(root).free / 1e9, 1),
        "bundled_corpora": {k: str(v) for k, v in bundled_corpora().items()},
        "chromium": shutil.which("chromium") or "missing (browser tests skip)",
    }


def format_doctor(info: dict[str, Any]) -> str:
    lines = ["workbench doctor", ""]
    lines.append("versions:  " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    lines.append(f"git:       {info['git_revision'] or '-'}")
    m = info["machine"]
    lines.append(f"machine:   {m['platform']}, {m['cpu_count']} cpus, torch threads {m['torch_threads']}, device {m['device']}{' (' + m['gpu'] + ')' if m['gpu'] else ''}, dtype {info['dtype']}")
    lines.append(f"home:      {info['workbench_home']} (free {info['disk_free_gb']} GB)")
    lines.append("cache:     " + ", ".join(f"{k} {v} MB" for k, v in info["cache_mb"].items()))
    lines.append("models:")
    for name, d in info["models"].items():
        state = "installed" if d.get("installed") else "NOT installed"
        if d.get("converted"):
            state += f", converted ({d['converted_mb']} MB)"
        lines.append(f"  {name:<18} {state:<36} {d.get('description', '')}")
    lines.append("corpora:   " + (", ".join(info["bundled_corpora"]) or "none"))
    lines.append(f"chromium:  {info['chromium']}")
    return "\n".join(lines)


def prepare(model: str = DEFAULT_GENERATOR) -> None:
    """Convert the default generator once (progress on stderr); a no-op when already done."""
    try:
        resolve_generator(model, progress=cli_progress)
    except ModelError as exc:
        raise SystemExit(f"error: {exc}") from None
