"""One adapter model for all the snapshots of a learning curve, built only if an answer is not cached."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .adapters import load_adapter_model
from .hf import HFGenerator
from .lazy import LazyWeights


class AdapterSnapshots:
    """Generators for the snapshots of one adapter (a learning curve's points), sharing one adapter model.

    The model is built from the base generator's on first use; each generator, when asked for its model,
    sets the shared model's adapter weights to its own snapshot's (a no-op when they already are), so the
    generators may be used in any order. While every answer comes from a cache, nothing is loaded.
    """

    def __init__(self, base: Any, adapter_dir: str | Path):
        self.base, self.adapter_dir = base, Path(adapter_dir)
        self._model: Any = None
        self._holds: Path | None = None  # the snapshot whose weights the model carries

    def model_at(self, folder: Path) -> Any:
        from peft.utils import set_peft_model_state_dict
        from safetensors.torch import load_file

        if self._model is None:
            self._model, self._holds = load_adapter_model(self.base.model, self.adapter_dir), self.adapter_dir
        if self._holds != folder:
            set_peft_model_state_dict(self._model, load_file(str(folder / "adapter_model.safetensors")))
            self._holds = folder
        return self._model

    def generator(self, folder: str | Path) -> Any:
        """A generator answering with the snapshot in ``folder`` (its fingerprint is that snapshot's weights file)."""
        folder = Path(folder)
        weights = LazyWeights(self.base.folder, self.base.dtype, str(self.base.device), lambda: self.model_at(folder), keep=False)
        return HFGenerator(weights, self.base.tokenizer, adapter=str(folder))
