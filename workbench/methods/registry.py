"""The method registry: one ``MethodSpec`` per method, read by config, run, decision, charts, reports, freshness and the app.

A method is known everywhere once ``register_method(MethodSpec(...))`` has run, as peft's
``register_peft_method`` makes a tuner known. This module is a leaf (no workbench imports beyond
errors), so config can read method names from it; a spec's ``factory`` is either a callable or, for
the built-in methods, the import path of one ("module:function"), loaded the first time a strategy
of that method is built. Nothing outside this module spells a method's name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import WorkbenchError

ZERO_SHOT, FEW_SHOT, RAG, LORA, RAG_LORA = "zero-shot", "few-shot", "rag", "lora", "rag+lora"
IA3, PROMPT_TUNING, P_TUNING = "ia3", "prompt-tuning", "p-tuning"  # the rest of the customization ladder (opt-in: chosen by name)
PRIOR, ORACLE = "prior", "oracle-passage"
# the tuned adapters a run trains (keys of metrics["train"]["recipes"], workbench.tuning.specs registers each)
LORA_RECIPE, RAFT_RECIPE, IA3_RECIPE, PROMPT_RECIPE, P_TUNING_RECIPE = "lora", "raft", "ia3", "prompt-tuning", "p-tuning"
# train.tuner: the peft type of an adapter (workbench.tuning.specs builds each); the ia3 and prompt-tuning recipes set their own
LORA_TUNER, IA3_TUNER, PROMPT_TUNER, P_TUNER = "lora", "ia3", "prompt-tuning", "p-tuning"
TUNER_NAMES = (LORA_TUNER, IA3_TUNER, PROMPT_TUNER, P_TUNER)
SOFT_PROMPT_TUNERS = (PROMPT_TUNER, P_TUNER)  # virtual tokens before the prompt (peft prompt learning), the model untouched
# reduced precisions every method can also be measured at, as its own row "<method>@<precision>" (workbench.backends.quantize)
INT8 = "int8"
PRECISIONS = (INT8,)
PRECISION_MARK = "@"


class MethodError(WorkbenchError, ValueError):
    """An unknown method name, or a method registered twice; the message lists the known ones."""


@dataclass
class MethodContext:
    """What a strategy factory may draw on: generators, index, embedder, train pool, the run's config and shared options."""

    generator: Any
    adapter_generator: Any = None
    index: Any = None
    embedder: Any = None
    pool: list[Any] = field(default_factory=list)
    cfg: Any = None
    common: dict[str, Any] = field(default_factory=dict)  # instruction, gen_cfg, seed, cache: every generating strategy takes them


@dataclass(frozen=True)
class MethodSpec:
    """Everything the workbench knows about a method besides its strategy code."""

    name: str
    label: str  # display name in tables, charts and the app
    colour: str  # chart colour (colour-blind-safe palette)
    help: str  # one line for the app and the CLI
    factory: Callable[[MethodContext], Any] | str  # builds the Strategy; "module:function" is imported when first used
    needs_index: bool = False  # retrieves passages from the corpus index
    needs_adapter: bool = False  # answers with a tuned adapter
    needs_examples: bool = False  # draws solved examples from the train split
    adapter_recipe: str | None = None  # which tuned adapter it answers with (LORA_RECIPE, RAFT_RECIPE)
    base_method: str | None = None  # the same method without the adapter (the learning curve's step 0)
    favoured_for: tuple[str, ...] = ()  # knowledge kinds the decision favours it for: "facts", "behaviour", "both"
    retrain_need: float = 0.0  # share of the corpus's changes that need retraining (0 = re-index or nothing)
    baseline: bool = False  # a reference row: measured, never recommended
    needs_sources: bool = False  # (baselines) only offered when held-out questions name their gold documents
    opt_in: bool = False  # not in the default method list: measured only when asked for by name (--methods, the app's method list)
    precision: str = ""  # "" (the model as loaded) or one of PRECISIONS: the same method on a quantized copy of the base model
    full_precision: str | None = None  # (precision rows) the method this row quantizes

    def build(self, ctx: MethodContext) -> Any:
        """The method's Strategy for this context."""
        factory = self.factory
        if isinstance(factory, str):
            module, _, attr = factory.partition(":")
            factory = getattr(importlib.import_module(module), attr)
        return factory(ctx)


REGISTRY: dict[str, MethodSpec] = {}


def register_method(spec: MethodSpec, replace: bool = False) -> MethodSpec:
    """Make a method known to every part of the workbench; returns the spec."""
    if spec.name in REGISTRY and not replace:
        raise MethodError(f"method {spec.name!r} is already registered; pass replace=True to redefine it")
    REGISTRY[spec.name] = spec
    return spec


def unregister_method(name: str) -> None:
    """Forget a method (a test's throwaway method)."""
    REGISTRY.pop(name, None)


def method_spec(name: str) -> MethodSpec:
    """The spec of ``name``; MethodError naming the known methods if there is none."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise MethodError(f"unknown method {name!r}; choose from {', '.join(REGISTRY)}") from None


def compared_methods() -> tuple[str, ...]:
    """The methods a run compares by default (every registered method that is neither a baseline nor opt-in), in registration order."""
    return tuple(n for n, s in REGISTRY.items() if not s.baseline and not s.opt_in)


def selectable_methods() -> tuple[str, ...]:
    """Every method a user may choose: the default ones and the opt-in ones, in registration order."""
    return tuple(n for n, s in REGISTRY.items() if not s.baseline)


def baseline_methods() -> tuple[str, ...]:
    """The reference rows (never recommended)."""
    return tuple(n for n, s in REGISTRY.items() if s.baseline)


def methods_where(**traits: Any) -> tuple[str, ...]:
    """Registered names whose spec has every given trait value, e.g. ``methods_where(needs_adapter=True)``."""
    return tuple(n for n, s in REGISTRY.items() if all(getattr(s, k) == v for k, v in traits.items()))


def method_order(method: str) -> tuple[int, str]:
    """Sort key for showing methods: the selectable methods in registration order (a precision row right after its method), then any other name alphabetically."""
    spec = REGISTRY.get(method)
    base = spec.full_precision if spec and spec.full_precision else method
    compared = tuple(n for n in selectable_methods() if not REGISTRY[n].precision)
    return (compared.index(base) if base in compared else len(compared), method)


def precision_variant(spec: MethodSpec, precision: str) -> MethodSpec:
    """``spec`` answered by a copy of the base model at ``precision`` (its adapter, if any, quantized with it): an opt-in row."""
    return replace(
        spec,
        name=f"{spec.name}{PRECISION_MARK}{precision}",
        label=f"{spec.label} @{precision}",
        help=f"{spec.help} Weights at {precision} (same base model, quantized at load).",
        opt_in=True,
        precision=precision,
        full_precision=spec.name,
    )


def label(method: str) -> str:
    """Display name of a method (``rag+lora`` -> ``RAG+LoRA``); an unknown name is shown as it is."""
    spec = REGISTRY.get(method)
    return spec.label if spec else method


def colour(method: str, default: str = "#555555") -> str:
    """Chart colour of a method."""
    spec = REGISTRY.get(method)
    return spec.colour if spec else default


_B = "workbench.methods.baselines"
for _spec in (
    MethodSpec(ZERO_SHOT, "Zero-shot", "#8c8c8c", "Closed book: the question alone.", "workbench.methods.zero_shot:make_zero_shot"),
    MethodSpec(FEW_SHOT, "Few-shot", "#e69f00", "k solved examples from the train split in the prompt.", "workbench.methods.few_shot:make_few_shot",
               needs_examples=True, favoured_for=("behaviour",)),
    MethodSpec(RAG, "RAG", "#0072b2", "Top-k retrieved chunks in the prompt; answers cite them.", "workbench.methods.rag:make_rag",
               needs_index=True, favoured_for=("facts",)),
    MethodSpec(LORA, "LoRA", "#d55e00", "A LoRA adapter trained on the corpus, closed book.", "workbench.methods.adapter:make_lora",
               needs_adapter=True, adapter_recipe=LORA_RECIPE, base_method=ZERO_SHOT, favoured_for=("behaviour",), retrain_need=1.0),
    MethodSpec(RAG_LORA, "RAG+LoRA", "#009e73", "The adapter plus retrieval.", "workbench.methods.adapter:make_rag_lora",
               needs_index=True, needs_adapter=True, adapter_recipe=RAFT_RECIPE, base_method=RAG, favoured_for=("facts", "both"), retrain_need=0.5),
    MethodSpec(IA3, "IA3", "#cc79a7", "Learned scaling vectors (IA3, ~100x fewer parameters than LoRA) trained on the corpus, closed book.",
               "workbench.methods.adapter:make_ia3", needs_adapter=True, adapter_recipe=IA3_RECIPE, base_method=ZERO_SHOT, favoured_for=("behaviour",),
               retrain_need=1.0, opt_in=True),
    MethodSpec(PROMPT_TUNING, "Prompt tuning", "#56b4e9", "Soft prompt: learned virtual tokens before every question (the model untouched), closed book.",
               "workbench.methods.adapter:make_prompt_tuning", needs_adapter=True, adapter_recipe=PROMPT_RECIPE, base_method=ZERO_SHOT,
               favoured_for=("behaviour",), retrain_need=1.0, opt_in=True),
    MethodSpec(P_TUNING, "P-tuning", "#f0e442", "Soft prompt written by a small trained encoder (p-tuning: an MLP over the virtual tokens), the model untouched, closed book.",
               "workbench.methods.adapter:make_p_tuning", needs_adapter=True, adapter_recipe=P_TUNING_RECIPE, base_method=ZERO_SHOT,
               favoured_for=("behaviour",), retrain_need=1.0, opt_in=True),
    MethodSpec(PRIOR, "Prior", "#555555", "The train split's most frequent reply to every question, no model.", f"{_B}:make_prior", baseline=True),
    MethodSpec(ORACLE, "Oracle passage", "#555555", "The rag prompt with the gold documents' best chunks as passages.", f"{_B}:make_oracle_passage",
               needs_index=True, baseline=True, needs_sources=True),
):
    register_method(_spec)
for _spec in [s for s in REGISTRY.values() if not s.baseline]:  # after every method, so each adapter's learning curve is drawn for its full-precision method
    for _p in PRECISIONS:
        register_method(precision_variant(_spec, _p))
