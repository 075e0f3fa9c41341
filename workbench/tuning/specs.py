"""Tuning methods behind one interface: a ``TuningSpec`` names a tuned adapter's training-data recipe and its peft type.

A method answers with the adapter of its spec (``MethodSpec.adapter_recipe`` is a spec's name): ``lora`` is the
closed-book recipe, ``raft`` the passages-in-the-prompt one, ``ia3`` and ``prompt-tuning`` the closed-book data with
their own peft type. The peft type (``train.tuner``: LoRA, IA3 or prompt tuning) is built here and nowhere else, so a
new tuner is one builder and a new recipe is one registration.
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
from ..methods.registry import (
    IA3_RECIPE,
    IA3_TUNER,
    LORA_RECIPE,
    LORA_TUNER,
    P_TUNER,
    P_TUNING_RECIPE,
    PROMPT_RECIPE,
    PROMPT_TUNER,
    RAFT_RECIPE,
    REGISTRY,
    SOFT_PROMPT_TUNERS,
    method_spec,
)


class TuningError(WorkbenchError, ValueError):
    """An unknown tuning recipe or tuner; the message lists the known ones."""


@dataclass(frozen=True)
class TuningSpec:
    """One tuned adapter a run can train: its recipe name and how its settings follow from the run's train section."""

    name: str  # the key in metrics["train"]["recipes"] and a method's adapter_recipe
    help: str
    settings: Callable[[TrainConfig], TrainConfig]  # this recipe's settings (data parts, epochs, rate, tuner) from the run's
    not_for_kinds: tuple[str, ...] = ()  # corpus kinds it is not trained for (its methods use the fallback adapter)
    label: str = ""  # its name in messages ("RAFT")
    fallback: str | None = None  # the adapter its methods answer with when it is not trained (trained beside it); None: it must train
    enabled: Callable[[TrainConfig], bool] | None = None  # trained only when the run's settings ask for it (RAFT: raft_examples > 0)
    needs_index: bool = False  # its data draws on the retrieval index (RAFT's distractors)
    skip_reason: str = ""  # why it is not trained for not_for_kinds, in a few words

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


# IA3 learns scaling vectors that start at 1 and multiply activations: a LoRA-sized step barely moves them. T-Few
# (Liu et al. 2022) trained IA3 at 3e-3; ten times the run's LoRA rate gives 5e-3 at the default 5e-4.
IA3_LR_SCALE = 10.0
# Prompt tuning learns ~20 input embeddings through the whole frozen model: Lester et al. (2021) used 0.3 with Adafactor,
# peft's causal-LM prompt-tuning example 3e-2 with AdamW; sixty times the run's LoRA rate gives that 3e-2 at 5e-4.
PROMPT_LR_SCALE = 60.0
# P-tuning trains an ordinary two-layer MLP that writes the virtual tokens: an ordinary Adam rate, four times the run's
# LoRA rate (2e-3 at the default 5e-4), between LoRA's and prompt tuning's. A default reasoned, not tuned.
P_TUNING_LR_SCALE = 4.0
P_TUNING_HIDDEN = 128  # the encoder's hidden width (peft's default is the model width: 1.6M parameters at 896)


def ia3_settings(cfg: TrainConfig) -> TrainConfig:
    """The closed-book data and budget of the run, trained as IA3 scaling vectors at IA3_LR_SCALE times the LoRA rate."""
    return dataclasses.replace(cfg, tuner=IA3_TUNER, learning_rate=cfg.learning_rate * IA3_LR_SCALE)


def prompt_settings(cfg: TrainConfig) -> TrainConfig:
    """The closed-book data and budget of the run, trained as a soft prompt; gradients reach the input, so no top_layers."""
    return dataclasses.replace(cfg, tuner=PROMPT_TUNER, learning_rate=cfg.learning_rate * PROMPT_LR_SCALE, top_layers=0)


def p_tuning_settings(cfg: TrainConfig) -> TrainConfig:
    """The closed-book data and budget of the run, trained as a p-tuning prompt encoder; like prompt tuning, no top_layers."""
    return dataclasses.replace(cfg, tuner=P_TUNER, learning_rate=cfg.learning_rate * P_TUNING_LR_SCALE, top_layers=0)


register_tuning(TuningSpec(LORA_RECIPE, "closed book: document text, Q/A generated from every chunk, the train Q/A", lambda cfg: cfg, label="closed-book"))
# RAFT targets are a passage's answer or "I don't know", never a label: on a behaviour corpus it taught abstention
register_tuning(TuningSpec(RAFT_RECIPE, "a generated question with its gold chunk among distractors, answered from the passages", raft_settings, ("behaviour",),
                           label="RAFT", fallback=LORA_RECIPE, enabled=lambda cfg: cfg.raft_examples > 0, needs_index=True,
                           skip_reason="its targets come from passages, a label never does"))
register_tuning(TuningSpec(IA3_RECIPE, "the closed-book data of lora, learned as IA3 scaling vectors", ia3_settings, label="IA3"))
register_tuning(TuningSpec(PROMPT_RECIPE, "the closed-book data of lora, learned as virtual tokens before the prompt", prompt_settings, label="soft-prompt"))
register_tuning(TuningSpec(P_TUNING_RECIPE, "the closed-book data of lora, learned as an encoder that writes the virtual tokens", p_tuning_settings, label="P-tuning"))


def recipe_methods(recipe: str, methods: list[str] | tuple[str, ...] | None = None) -> list[str]:
    """The methods (of ``methods``, else every registered one) that answer with the adapter of ``recipe``."""
    return [m for m in (REGISTRY if methods is None else methods) if method_spec(m).adapter_recipe == recipe]


def plan_adapters(methods: list[str] | tuple[str, ...], cfg: TrainConfig, kind: str, has_index: bool = True) -> tuple[list[str], dict[str, str]]:
    """The adapters a run of ``methods`` trains, in registration order, and why it skips any they would answer with.

    Each tuned method wants its own recipe; a recipe with a fallback brings the fallback along (its methods answer with
    it when the recipe is off, not for this corpus kind, or has no data), so RAFT always comes with the closed-book LoRA.
    """
    wanted = {method_spec(m).adapter_recipe for m in methods if method_spec(m).needs_adapter and method_spec(m).adapter_recipe}
    train: set[str] = set()
    skipped: dict[str, str] = {}
    for name in wanted:
        spec = tuning_spec(name)
        if spec.fallback:
            train.add(spec.fallback)
        if (spec.enabled is not None and not spec.enabled(cfg)) or (spec.needs_index and not has_index):
            continue  # off in these settings: its methods answer with the fallback, as the settings say
        if not spec.applies_to(kind):
            users = ", ".join(recipe_methods(name, methods))
            skipped[name] = f"{kind} corpus: no {spec.label or name} adapter ({spec.skip_reason}); {users} uses the {tuning_spec(spec.fallback).label} one" if spec.fallback else f"{kind} corpus: no {spec.label or name} adapter"
            continue
        train.add(name)
    return [n for n in TUNINGS if n in train], skipped


def adapter_recipe_used(method: str, trained: Any) -> str | None:
    """The adapter ``method`` answers with, given the recipes trained: its own, else its recipe's fallback (RAFT -> LoRA)."""
    recipe = method_spec(method).adapter_recipe
    if recipe is None or recipe in trained:
        return recipe
    fallback = TUNINGS[recipe].fallback if recipe in TUNINGS else None
    return fallback if fallback in trained else recipe


# ---------------------------------------------------------------- tuners: the peft config of each train.tuner


def _lora(cfg: TrainConfig, layers: list[int] | None, **_: Any) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(cfg.target_modules), layers_to_transform=layers, task_type="CAUSAL_LM")


IA3_FEEDFORWARD = ("down_proj", "fc2", "mlp.c_proj")  # IA3 scales these modules' inputs, the others' outputs


def _ia3(cfg: TrainConfig, layers: list[int] | None, **_: Any) -> Any:
    from peft import IA3Config

    targets = list(cfg.target_modules)
    feedforward = [m for m in targets if m in IA3_FEEDFORWARD]
    where: list[str] | str = targets
    if layers is not None:  # IA3Config has no layers_to_transform: the same restriction as a full-match regex
        where = rf".*\.layers\.({'|'.join(map(str, layers))})\.(.*\.)?({'|'.join(re.escape(t) for t in targets)})"
    return IA3Config(target_modules=where, feedforward_modules=feedforward, task_type="CAUSAL_LM")


def _prompt(cfg: TrainConfig, layers: list[int] | None, tokenizer: str = "", init_text: str = "", **_: Any) -> Any:
    """Prompt tuning: ``virtual_tokens`` input embeddings, the words of ``init_text`` (repeated or cut) when given, else random."""
    from peft import PromptTuningConfig

    if init_text and tokenizer:
        return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.virtual_tokens, prompt_tuning_init="TEXT", prompt_tuning_init_text=init_text, tokenizer_name_or_path=tokenizer)
    return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.virtual_tokens, prompt_tuning_init="RANDOM")


def _p_tuning(cfg: TrainConfig, layers: list[int] | None, **_: Any) -> Any:
    """P-tuning: ``virtual_tokens`` written by a two-layer MLP prompt encoder (peft ``PromptEncoderConfig``)."""
    from peft import PromptEncoderConfig

    return PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.virtual_tokens, encoder_reparameterization_type="MLP", encoder_hidden_size=P_TUNING_HIDDEN)


TUNERS: dict[str, Callable[..., Any]] = {LORA_TUNER: _lora, IA3_TUNER: _ia3, PROMPT_TUNER: _prompt, P_TUNER: _p_tuning}
TUNER_LABELS = {LORA_TUNER: "LoRA", IA3_TUNER: "IA3", PROMPT_TUNER: "prompt tuning", P_TUNER: "P-tuning"}  # names in reports
# settings only some tuners read: left out of the other tuners' adapter cache keys (so adding one keeps old keys valid)
TUNER_ONLY_SETTINGS: dict[str, tuple[str, ...]] = {"virtual_tokens": SOFT_PROMPT_TUNERS}


def peft_config(cfg: TrainConfig, layers: list[int] | None = None, tokenizer: str = "", init_text: str = "") -> Any:
    """The peft config of ``cfg.tuner`` for the given layers (None = every layer); prompt tuning starts from the words of
    ``init_text`` read with the tokenizer in folder ``tokenizer``."""
    try:
        build = TUNERS[cfg.tuner]
    except KeyError:
        raise TuningError(f"train.tuner {cfg.tuner!r} is unknown; use {', '.join(TUNERS)}") from None
    return build(cfg, layers, tokenizer=tokenizer, init_text=init_text)


def prompt_init_text(instruction: str, language: str = "en") -> str:
    """What a soft prompt starts as: the corpus's own instruction, else the closed-book system prompt."""
    from ..methods import prompts

    return instruction.strip() or prompts.zero_shot_messages("", "", language)[0]["content"]
