"""Tuning methods behind one interface: a ``TuningSpec`` names a tuned adapter's training-data recipe and its peft type.

A method answers with the adapter of its spec (``MethodSpec.adapter_recipe`` is a spec's name): ``lora`` is the
closed-book recipe, ``raft`` the passages-in-the-prompt one. The peft type (``train.tuner``: LoRA or IA3) is
built here and nowhere else, so a new tuner is one builder and a new recipe is one registration.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import TrainConfig
from ..errors import WorkbenchError
from ..methods.registry import IA3_TUNER, LORA_RECIPE, LORA_TUNER, RAFT_RECIPE


class TuningError(WorkbenchError, ValueError):
    """An unknown tuning recipe or tuner; the message lists the known ones."""


@dataclass(frozen=True)
class TuningSpec:
    """One tuned adapter a run can train: its recipe name and how its settings follow from the run's train section."""

    name: str  # the key in metrics["train"]["recipes"] and a method's adapter_recipe
    help: str
    settings: Callable[[TrainConfig], TrainConfig]  # this recipe's settings (data parts, epochs, rate) from the run's
    not_for_kinds: tuple[str, ...] = ()  # corpus kinds it is not trained for (its methods use the closed-book adapter)

    def applies_to(self, kind: str) -> bool:
        return kind not in self.not_for_kinds


def raft_settings(cfg: TrainConfig) -> TrainConfig:
    """The RAFT recipe derived from a run's train settings: its own examples and epochs, no chunks or closed-book Q/A."""
    seq_len = 64 * math.ceil((1.25 * (cfg.raft_distractors + 1) * cfg.raft_passage_tokens + 112) / 64)  # one example a block
    # a fifth of the closed-book learning rate: at 1e-3 a 32-example RAFT adapter unlearned reading (rag+lora 38% vs rag 73%)
    return dataclasses.replace(cfg, recipe="raft", generated_qa=cfg.generated_qa or 1, learning_rate=cfg.learning_rate / 5, use_chunks=False, use_qa=False, synthetic_qa=0, paraphrases=0, epochs=cfg.raft_epochs, max_steps=0, seq_len=seq_len)


TUNINGS: dict[str, TuningSpec] = {}


def register_tuning(spec: TuningSpec) -> TuningSpec:
    if spec.name in TUNINGS:
        raise TuningError(f"tuning recipe {spec.name!r} is already registered")
    TUNINGS[spec.name] = spec
    return spec


def tuning_spec(name: str) -> TuningSpec:
    try:
        return TUNINGS[name]
    except KeyError:
        raise TuningError(f"unknown tuning recipe {name!r}; choose from {', '.join(TUNINGS)}") from None


register_tuning(TuningSpec(LORA_RECIPE, "closed book: document text, Q/A generated from every chunk, the train Q/A", lambda cfg: cfg))
# RAFT targets are a passage's answer or "I don't know", never a label: on a behaviour corpus it taught abstention
register_tuning(TuningSpec(RAFT_RECIPE, "a generated question with its gold chunk among distractors, answered from the passages", raft_settings, ("behaviour",)))


# ---------------------------------------------------------------- tuners: the peft config of each train.tuner


def _lora(cfg: TrainConfig, layers: list[int] | None) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules), layers_to_transform=layers, task_type="CAUSAL_LM")


IA3_FEEDFORWARD = ("down_proj", "fc2", "mlp.c_proj")  # IA3 scales these modules' inputs, the others' outputs


def _ia3(cfg: TrainConfig, layers: list[int] | None) -> Any:
    from peft import IA3Config

    targets = list(cfg.target_modules)
    feedforward = [m for m in targets if m in IA3_FEEDFORWARD]
    where: list[str] | str = targets
    if layers is not None:  # IA3Config has no layers_to_transform: the same restriction as a full-match regex
        where = rf".*\.layers\.({'|'.join(map(str, layers))})\.(.*\.)?({'|'.join(re.escape(t) for t in targets)})"
    return IA3Config(target_modules=where, feedforward_modules=feedforward, task_type="CAUSAL_LM")


TUNERS: dict[str, Callable[[TrainConfig, list[int] | None], Any]] = {LORA_TUNER: _lora, IA3_TUNER: _ia3}


def peft_config(cfg: TrainConfig, layers: list[int] | None = None) -> Any:
    """The peft config of ``cfg.tuner`` for the given layers (None = every layer)."""
    try:
        build = TUNERS[cfg.tuner]
    except KeyError:
        raise TuningError(f"train.tuner {cfg.tuner!r} is unknown; use {', '.join(TUNERS)}") from None
    return build(cfg, layers)
