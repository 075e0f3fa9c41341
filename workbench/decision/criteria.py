"""The team's situation (Criteria) and what it cares about (Weights): typed, with help text for the app, validated early."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from workbench.errors import WorkbenchError

UPDATES_PER_MONTH = {"static": 0.0, "monthly": 1.0, "weekly": 4.33, "daily": 30.0}


class DecisionError(WorkbenchError, ValueError):
    """The metrics or criteria cannot support a recommendation; the message says what to fix."""


def _h(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class Criteria:
    """The team's situation and standards; each field's help text feeds the app widgets and `decide --criteria`."""

    knowledge_type: Literal["facts", "behaviour", "both"] | None = _h(
        None, "What the model must learn: facts from documents, a behaviour/format, or both (default: the corpus kind)."
    )
    data_changes: Literal["static", "monthly", "weekly", "daily"] = _h(
        "static", "How often the underlying documents change; frequent changes favour re-indexing over retraining."
    )
    needs_citations: bool = _h(False, "Answers must point to their source documents (traceability, audits).")
    format_matters: bool = _h(False, "A strict output format or house style matters, not only the content.")
    labelled_examples: int | None = _h(None, "Labelled question/answer pairs available for training (default: the train split size).")
    monthly_queries: int = _h(10_000, "Expected queries per month, for the monthly cost.")
    latency_budget_s: float | None = _h(None, "Highest acceptable p95 latency per query in seconds (empty = no limit).")
    budget_usd_month: float | None = _h(None, "Highest acceptable monthly cost in USD (empty = no limit).")
    min_accuracy: float = _h(
        0.2, "Quality floor: lowest accuracy a method may have to be recommended at all (0.2 = one answerable question in five right)."
    )
    accuracy_tolerance: float = _h(
        0.05, "Quality floor: a method more than this far below the most accurate one (0.05 = 5 points), significantly so, is not eligible."
    )
    significance: float = _h(0.05, "p-value below which a paired (McNemar) accuracy difference counts as real.")
    cost_materiality_usd: float = _h(5.0, "Monthly cost differences smaller than this many USD do not count in the score.")
    cost_materiality_share: float = _h(0.05, "...nor differences smaller than this share of the monthly budget, when a budget is set.")
    latency_materiality_s: float = _h(0.2, "p95 latency differences smaller than this many seconds do not count in the score.")
    usd_per_hour: float | None = _h(None, "Machine price per hour for all costs (empty = the price the run was measured at).")

    def __post_init__(self) -> None:
        if self.knowledge_type not in (None, "facts", "behaviour", "both"):
            raise DecisionError(f"knowledge_type {self.knowledge_type!r} is unknown; use facts, behaviour or both")
        if self.data_changes not in UPDATES_PER_MONTH:
            raise DecisionError(f"data_changes {self.data_changes!r} is unknown; use static, monthly, weekly or daily")
        if self.labelled_examples is not None and self.labelled_examples < 0:
            raise DecisionError("labelled_examples must be >= 0")
        if self.monthly_queries < 0:
            raise DecisionError("monthly_queries must be >= 0")
        for name in ("latency_budget_s", "budget_usd_month", "usd_per_hour"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise DecisionError(f"{name} must be > 0, or empty for no limit")
        for name in ("min_accuracy", "accuracy_tolerance", "cost_materiality_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise DecisionError(f"{name} must be a share between 0 and 1, e.g. 0.05 for 5%")
        if not 0 < self.significance < 1:
            raise DecisionError("significance must be between 0 and 1, e.g. 0.05")
        if self.cost_materiality_usd < 0 or self.latency_materiality_s < 0:
            raise DecisionError("cost_materiality_usd and latency_materiality_s must be >= 0")

    def resolved(self, metrics: dict) -> Criteria:
        """A copy with the metric-derived defaults (knowledge type, labelled examples) filled in."""
        corpus = metrics.get("corpus") or {}
        kind = self.knowledge_type or (corpus.get("kind") if corpus.get("kind") in ("facts", "behaviour", "both") else "facts")
        labels = self.labelled_examples
        if labels is None:
            labels = corpus.get("n_train")
            if labels is None:
                labels = max(0, int(corpus.get("n_questions") or 0) - int(corpus.get("n_test_evaluated") or 0))
        return dataclasses.replace(self, knowledge_type=kind, labelled_examples=int(labels))


@dataclass
class Weights:
    """Relative importance of the four measured criteria; normalised to sum to 1."""

    accuracy: float = _h(0.4, "Weight of accuracy on answerable held-out questions.")
    hallucination: float = _h(
        0.3, "Weight of net useful answers: (right answers + correct \"I don't know\"s - confident wrong answers) / all questions."
    )
    cost: float = _h(0.15, "Weight of monthly cost (cheaper scores higher; differences below the materiality threshold do not count).")
    latency: float = _h(0.15, "Weight of p95 per-query latency (faster scores higher; differences below the threshold do not count).")

    def __post_init__(self) -> None:
        values = dataclasses.asdict(self)
        bad = [k for k, v in values.items() if v is None or v < 0]
        if bad:
            raise DecisionError(f"weight(s) {', '.join(bad)} must be >= 0")
        if sum(values.values()) <= 0:
            raise DecisionError("all weights are 0; give at least one criterion a positive weight")

    def normalised(self) -> Weights:
        """The same weights scaled to sum to 1."""
        total = sum(dataclasses.asdict(self).values())
        return Weights(**{k: v / total for k, v in dataclasses.asdict(self).items()})


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise DecisionError(f"{name} must be true or false, not {value!r}")


def coerce_inputs(value: Any, cls: type) -> Any:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            kind = "criteria" if cls is Criteria else "weights"
            raise DecisionError(f"unknown {kind} field(s) {', '.join(unknown)}; use {', '.join(sorted(known))}")
        flags = {f.name for f in dataclasses.fields(cls) if f.type == "bool"}
        value = {k: _as_bool(k, v) if k in flags else v for k, v in value.items()}
        try:
            return cls(**value)
        except TypeError as exc:
            raise DecisionError(f"{cls.__name__.lower()}: {exc}") from None
    raise DecisionError(f"{cls.__name__.lower()} must be a {cls.__name__} or a dict, not {type(value).__name__}")
