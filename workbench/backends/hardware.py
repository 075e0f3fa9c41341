"""Number format and batch size for this machine: bf16 or fp32 picked by a short measured probe, cached per machine.

Which format is faster depends on the CPU: with AMX bf16 matrix products ran 3-4x faster than fp32;
without it fp32 was faster. So the choice is measured once per machine (CPU model, flags, torch
version, threads) and cached in ``<home>/cache/probes``. ``WORKBENCH_DTYPE=bf16|fp32|fp16`` forces
one; on a GPU it is bf16 (fp16 where bf16 is unsupported) without a probe.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any, Literal

from ..paths import cache_dir
from ..storage import atomic_write_json, read_json, stable_hash

Workload = Literal["generate", "train", "embed"]
DTYPE_ENV = "WORKBENCH_DTYPE"
NAMES = {"bf16": "bfloat16", "fp32": "float32", "fp16": "float16"}
PROBE_VERSION = 2
# The probe: one projection of the default model (896 -> 4864), as a 256-row prompt chunk and as one
# decode step of a 16-row batch. An evaluation answer costs about PROMPT_TOKENS / 256 prompt chunks plus
# NEW_TOKENS decode steps shared by the batch's 16 rows.
PROBE_SHAPE = (896, 4864)
PROBE_ROWS = 256
DECODE_ROWS = 16
PROMPT_TOKENS = 270  # mean prompt of the five methods' mix (bench: 68 zero-shot, 182 few-shot, 540 RAG)
NEW_TOKENS = 12
BF16_MARGIN = 0.9  # keep bf16 (half the memory) unless fp32 is more than ~10% faster
_MEMO: dict[str, dict[str, Any]] = {}


def _cpu_model_and_flags() -> tuple[str, list[str]]:
    try:
        text = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read()
    except OSError:
        return platform.processor() or platform.machine(), []
    lines = text.splitlines()
    model = next((ln.partition(":")[2].strip() for ln in lines if ln.startswith(("model name", "Model"))), "") or platform.machine()
    flags = next((ln.partition(":")[2].split() for ln in lines if ln.startswith(("flags", "Features"))), [])
    return model, sorted(flags)


def machine_key() -> str:
    """What decides the winner: CPU model and flags, torch version, intra-op threads."""
    import torch

    model, flags = _cpu_model_and_flags()
    return stable_hash(PROBE_VERSION, model, flags, torch.__version__, torch.get_num_threads())


def _seconds(fn: Any, budget_s: float) -> float:
    """Least seconds of ``fn`` over a few timed repeats (after one warm-up call): other processes only add time."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-6)
    reps = max(1, int(budget_s / 5 / once))
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        times.append((time.perf_counter() - t0) / reps)
    return min(times)


def probe(budget_s: float = 0.05) -> dict[str, Any]:
    """Seconds of the probe products in bf16 and fp32: ``{"bf16": {"prefill_s", "decode_s"}, "fp32": {...}}``."""
    import torch
    import torch.nn.functional as F

    k, n = PROBE_SHAPE
    out: dict[str, Any] = {}
    with torch.inference_mode():
        for name in ("bf16", "fp32"):
            dtype = getattr(torch, NAMES[name])
            w = torch.randn(n, k, dtype=dtype)
            rows, one = torch.randn(PROBE_ROWS, k, dtype=dtype), torch.randn(DECODE_ROWS, k, dtype=dtype)
            out[name] = {"prefill_s": _seconds(lambda w=w, x=rows: F.linear(x, w), budget_s), "decode_s": _seconds(lambda w=w, x=one: F.linear(x, w), budget_s)}
    return out


def pick(timings: dict[str, Any], workload: Workload) -> str:
    """bf16 or fp32 from probe timings: prompt-sized products for training and embedding, plus batched decode steps for generation."""

    def cost(name: str) -> float:
        t = timings[name]
        if workload != "generate":
            return t["prefill_s"]
        return t["prefill_s"] * PROMPT_TOKENS / PROBE_ROWS + NEW_TOKENS * t["decode_s"] / DECODE_ROWS

    return "bf16" if cost("bf16") * BF16_MARGIN <= cost("fp32") else "fp32"


def _forced() -> str | None:
    value = os.environ.get(DTYPE_ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    if value not in NAMES:
        from ..errors import WorkbenchError

        raise WorkbenchError(f"{DTYPE_ENV}={value!r} is not a number format; use bf16, fp32, fp16 or auto")
    return value


def torch_device() -> str:
    """"cuda" when a GPU is visible to torch, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def dtype_choice(device: str | None = None) -> dict[str, Any]:
    """``{"generate", "train", "embed"}`` formats with where they came from (env, cuda, probe, probe-cache) and the probe timings."""
    import torch

    device = device or torch_device()
    forced = _forced()
    if forced:
        return {w: forced for w in ("generate", "train", "embed")} | {"source": f"env {DTYPE_ENV}", "device": device}
    if device == "cuda":
        name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return {w: name for w in ("generate", "train", "embed")} | {"source": "cuda", "device": device}
    key = machine_key()
    if key not in _MEMO:
        path = cache_dir("probes") / f"dtype-{key}.json"
        saved = read_json(path)
        if isinstance(saved, dict) and {"bf16", "fp32"} <= set(saved.get("timings", {})):
            _MEMO[key] = {"timings": saved["timings"], "source": "probe-cache", "measured": saved.get("measured")}
        else:
            timings = probe()
            measured = time.strftime("%Y-%m-%d %H:%M:%S %Z")
            atomic_write_json(path, {"timings": timings, "measured": measured, "cpu": _cpu_model_and_flags()[0], "torch_threads": torch.get_num_threads()})
            _MEMO[key] = {"timings": timings, "source": "probe", "measured": measured}
    found = _MEMO[key]
    return {w: pick(found["timings"], w) for w in ("generate", "train", "embed")} | {"device": device, "machine_key": key, **found}  # type: ignore[arg-type]


def chosen_dtype(workload: Workload = "generate", device: str | None = None) -> Any:
    """The torch dtype for ``workload`` on ``device`` (see ``dtype_choice``)."""
    import torch

    return getattr(torch, NAMES[dtype_choice(device)[workload]])


def fit_batch_size(requested: int, device: str, n_layers: int, kv_width: int, tokens_per_row: int, dtype_bytes: int = 2, free_bytes: int | None = None, cap: int = 256) -> int:
    """Rows per generate batch: ``requested`` on CPU; on a GPU as many as half its free memory holds in KV cache (at least ``requested``).

    ``kv_width`` is key+value width per layer (2 * kv_heads * head_dim); ``tokens_per_row`` the prompt plus new tokens.
    """
    if device != "cuda":
        return requested
    if free_bytes is None:
        import torch

        free_bytes = torch.cuda.mem_get_info()[0]
    per_row = max(1, n_layers * kv_width * tokens_per_row * dtype_bytes)
    return max(requested, min(cap, int(0.5 * free_bytes // per_row)))
