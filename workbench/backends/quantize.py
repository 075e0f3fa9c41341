"""Reduced-precision copies of a generator: int8 weights for the `<method>@int8` rows.

Backend chosen by measurement on the default model (2 cores with AMX, a 575-token RAG prompt, 25 new
tokens; README "Quantization"): torchao's ``Int8DynamicActivationInt8WeightConfig`` (int8 weights,
activations quantized per token at run time) kept the bf16 answers and cut the weights from 1,260 to
769 MB, at 2.2x the prefill time. torch's own ``quantize_dynamic`` (deprecated, fp32 activations
quantized per tensor) decoded 2x faster but changed 4 of 4 answers ("13 employees" for "10"), and
torchao's int8 weight-only kept the answers but decoded 2.7x slower.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import WorkbenchError
from .adapters import shared_weights_copy

INT8 = "int8"
SCHEMES = {INT8: "torchao Int8DynamicActivationInt8Weight (int8 weights, per-token int8 activations)"}


class QuantizeError(WorkbenchError, RuntimeError):
    """A precision that cannot be applied here; the message says what to install or choose."""


def _tensor_bytes(t: Any, seen: set[int]) -> int:
    """Bytes behind ``t``: a quantized tensor subclass counts its inner tensors (int8 values, scales); shared storage once."""
    flatten = getattr(type(t), "__tensor_flatten__", None)
    if flatten is not None:
        names, _ = t.__tensor_flatten__()
        return sum(_tensor_bytes(getattr(t, n), seen) for n in names)
    storage = t.untyped_storage()
    if storage.data_ptr() in seen:
        return 0
    seen.add(storage.data_ptr())
    return storage.nbytes()


def weight_mb(model: Any) -> float:
    """Megabytes the model's weights take in memory (int8 tensors count one byte per value, tied weights once)."""
    seen: set[int] = set()
    return sum(_tensor_bytes(t, seen) for t in model.state_dict().values()) / 1e6


def _config(scheme: str) -> Any:
    if scheme != INT8:
        raise QuantizeError(f"unknown precision {scheme!r}; choose from {', '.join(SCHEMES)}")
    try:
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig
    except ImportError as exc:  # pinned in requirements.txt; a custom environment may lack it
        raise QuantizeError(f"the {scheme} rows need torchao ({exc}); run 'pip install -r requirements.txt'") from None
    return Int8DynamicActivationInt8WeightConfig()


def quantized_model(model: Any, scheme: str = INT8) -> Any:
    """A copy of ``model`` whose linear layers hold int8 weights (``model`` itself is left as it is)."""
    import torch

    config = _config(scheme)
    from torchao.quantization import quantize_

    out = shared_weights_copy(model)  # quantize_ replaces the copy's linear weights; the rest stays shared
    tied = _tied_output(out)  # an output layer sharing the embedding's weights stays as it is: an int8 copy would add memory

    def linear(module: Any, _fqn: str) -> bool:
        return isinstance(module, torch.nn.Linear) and module is not tied

    with torch.no_grad():
        quantize_(out, config, filter_fn=linear)
    return out.eval()


def _tied_output(model: Any) -> Any:
    """The output projection when it shares its weight with the input embedding, else None."""
    get_out, get_in = getattr(model, "get_output_embeddings", None), getattr(model, "get_input_embeddings", None)
    out, emb = (get_out() if get_out else None), (get_in() if get_in else None)
    return out if out is not None and emb is not None and getattr(out, "weight", None) is getattr(emb, "weight", 0) else None


def quantized_generator(generator: Any, scheme: str = INT8) -> tuple[Any, float]:
    """(a copy of a Hugging Face ``generator`` answering at ``scheme``, seconds it took); its fingerprint says so."""
    from .hf import HFGenerator

    if not isinstance(generator, HFGenerator):
        raise QuantizeError(f"{scheme} rows need the Hugging Face backend; {type(generator).__name__} has no weights to quantize")
    t0 = time.perf_counter()
    out = HFGenerator(quantized_model(generator.model, scheme), generator.tok, name=generator.name, adapter=generator.adapter or None, precision=scheme)
    return out, time.perf_counter() - t0


class PrecisionCopies:
    """A run's quantized copies of its generators (each made once) and the weight megabytes of every generator used."""

    def __init__(self) -> None:
        self._copies: dict[tuple[int, str], tuple[Any, float]] = {}
        self._mb: dict[int, float | None] = {}

    def get(self, generator: Any, precision: str) -> tuple[Any, float]:
        """(``generator`` at ``precision``, seconds making it took): made the first time, the same copy and seconds after."""
        key = (id(generator), precision)
        if key not in self._copies:
            self._copies[key] = quantized_generator(generator, precision)
        return self._copies[key]

    def model_mb(self, generator: Any) -> float | None:
        """Weight megabytes of ``generator``'s model; None for a backend without torch weights."""
        if id(generator) not in self._mb:
            self._mb[id(generator)] = generator_weight_mb(generator)
        return self._mb[id(generator)]


def generator_weight_mb(generator: Any) -> float | None:
    """``weight_mb`` of a generator's model, kept per fingerprint: a rerun served from caches need not load the weights for it."""
    from ..paths import cache_dir
    from ..storage import atomic_write_json, read_json

    if not hasattr(generator, "weights_loaded"):  # another backend: measure what it holds, if it holds torch weights
        model = getattr(generator, "model", None)
        return round(weight_mb(model), 3) if hasattr(model, "state_dict") else None
    path = cache_dir("weights") / f"{generator.fingerprint}.json"
    try:
        saved = read_json(path)
    except (OSError, ValueError):  # a torn file: measure again
        saved = None
    if isinstance(saved, dict) and isinstance(saved.get("model_mb"), (int, float)):
        return float(saved["model_mb"])
    mb = round(weight_mb(generator.model), 3)
    atomic_write_json(path, {"model_mb": mb, "folder": generator.folder, "adapter": generator.adapter, "precision": generator.precision, "dtype": str(generator.dtype)})
    return mb
