"""Open a generator by model name: a registered backend's prefix ("lookup:table.json"), else the Hugging Face backend."""

from __future__ import annotations

from .base import Generator, Progress, backend_for
from .hf import HFGenerator


def open_generator(name: str, progress: Progress | None = None, device: str | None = None) -> Generator:
    """The generator for ``name``: ``PREFIX:REST`` through the backend registered for PREFIX, anything else as a HF model."""
    found = backend_for(name)
    if found is not None:
        factory, rest = found
        return factory(rest, progress, device)
    return HFGenerator.from_name(name, progress=progress, device=device)
