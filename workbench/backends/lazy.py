"""Model weights loaded on first use, so a run served wholly from its caches never loads them.

An unchanged rerun finds every answer, judgement and adapter in its caches; all it needs of the model
is its identity (folder, dtype, device: the caches' keys), which is known before the weights are read.
Loading the default model's weights and its transformers modelling code took 3-4 s of a 10 s rerun.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LazyWeights:
    """A model to be built by ``load`` when first asked for, with what caches key on known up front.

    ``keep`` (default) builds it once and keeps it; without, ``load`` runs at every ``get`` and does its
    own sharing (learning-curve snapshots: one adapter model whose weights follow the snapshot asked for).
    """

    def __init__(self, folder: str, dtype: Any, device: str, load: Callable[[], Any], keep: bool = True):
        self.folder, self.dtype, self.device = folder, dtype, device
        self._load, self._keep = load, keep
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def get(self) -> Any:
        if not self._keep:
            return _outside_inference_mode(self._load)
        if self._model is None:
            with self._lock:
                if self._model is None:
                    self._model = _outside_inference_mode(self._load)
        return self._model


def _outside_inference_mode(load: Callable[[], Any]) -> Any:
    """``load()`` with inference mode off: first use is often inside ``torch.inference_mode()``, whose tensors
    could never be written again outside it (an adapter snapshot's weights are)."""
    import torch

    with torch.inference_mode(False):
        return load()
