"""The generation backend protocol: what strategies, scoring and the pipeline may ask of a generator, and the backend registry.

A backend renders a chat in its model's own format, counts and truncates tokens, generates a batch
(optionally through the answer cache), scores yes/no for the groundedness judge, names its weights
by a fingerprint, and gives the same generator with a tuned adapter attached. ``hf.py`` (Hugging
Face transformers + peft) is today's implementation; a second backend is one file that implements
``Generator`` and calls ``register_backend``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import WorkbenchError
from .models import Progress


class GenerationError(WorkbenchError, RuntimeError):
    """A prompt cannot be generated (too long for the model, empty); the message says what to do."""


@dataclass
class GenResult:
    text: str
    prompt_tokens: int
    output_tokens: int  # generated tokens up to EOS (excluded) or up to the token completing a stop string
    latency_s: float  # batch wall time / batch size: amortised compute per answer
    batch_wall_s: float  # wall time of the batch (what a user of that batch waits)
    cached: bool = False  # served from the AnswerCache; the timings are those measured originally

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of the fields (for JSON rows)."""
        return asdict(self)


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """The text before the earliest stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class AnswerStore(Protocol):
    """Where generated replies are kept by key (answer_cache.AnswerCache is the one in use)."""

    def get_many(self, keys: Sequence[str]) -> list[GenResult | None]: ...

    def put_many(self, items: Any) -> None: ...


@runtime_checkable
class Generator(Protocol):
    """A text generator as the workbench uses it; every method, the judge and the pipeline go through these calls only."""

    name: str
    adapter: str  # folder of the tuned adapter it carries, "" for the base model
    judge_cache: AnswerStore | None  # when set, score_yes serves unchanged prompts from it

    @property
    def fingerprint(self) -> str:
        """Identity of the weights (base model and adapter) for caches."""
        ...

    def render(self, messages: list[dict[str, str]], answer: str | None = None) -> str:
        """A chat as the model's prompt text (its chat template, or a plain transcript for a base model)."""
        ...

    def stop_strings(self) -> list[str]:
        """Strings that end a reply for this model (turn markers of its template)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Length of a rendered prompt in tokens."""
        ...

    def text_tokens(self, text: str) -> int:
        """Tokens of plain text placed inside a prompt (no special tokens)."""
        ...

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to at most ``max_tokens`` of the model's tokens."""
        ...

    def generate(self, prompts: Sequence[str], max_new_tokens: int, temperature: float = 0.0, seed: int = 0, stop: Sequence[str] | None = None,
                 batch_size: int = 16, progress: Progress | None = None, cache: AnswerStore | None = None) -> list[GenResult]:
        """Replies to rendered prompts, in input order; cached replies are served without running the model."""
        ...

    def score_yes(self, prompts: Sequence[str], batch_size: int = 8) -> list[float]:
        """P("Yes") / (P("Yes") + P("No")) as the next token of each rendered prompt (a yes/no judge)."""
        ...

    def with_adapter(self, adapter_dir: str | Path) -> Generator:
        """The same base model carrying the tuned adapter in ``adapter_dir``; this generator keeps answering without it."""
        ...


BackendFactory = Callable[[str, "Progress | None", "str | None"], Generator]  # (rest of the name, progress, device) -> generator
BACKENDS: dict[str, BackendFactory] = {}  # model-name prefix ("lookup" in "lookup:table.json") -> factory


def register_backend(prefix: str, factory: BackendFactory) -> None:
    """Make a model name ``PREFIX:REST`` load through ``factory`` (a second backend, or a test stand-in)."""
    BACKENDS[prefix] = factory


def backend_for(name: str) -> tuple[BackendFactory, str] | None:
    """The registered factory for a model name with a known prefix and the rest of the name, or None (the default backend)."""
    prefix, sep, rest = name.partition(":")
    return (BACKENDS[prefix], rest) if sep and prefix in BACKENDS else None
