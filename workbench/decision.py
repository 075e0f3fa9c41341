"""The recommendation: score each measured method against the team's criteria and explain why.

Scores are points out of ~100: weighted accuracy, (1 - hallucination), relative monthly cost and
relative p95 latency, then fixed, named adjustments for the team's situation (facts vs behaviour,
how often data changes, citations, output format, labelled data, budgets). Every reason quotes the
measured numbers from ``metrics.json``; nothing is recomputed from predictions here.

Optional input ``metrics["freshness"]`` = ``{"<method>": {"retrain_seconds": float, "stale_accuracy":
float}}``: time to refresh the method after a data change and its accuracy on changed facts before
refreshing. When absent, refresh time is the method's ``build_seconds`` and the retraining need is
1.0 for ``lora`` and 0.5 for ``rag+lora`` (retrieval still sees the new documents).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from workbench.config import METHODS

METHOD_LABELS = {"zero-shot": "Zero-shot", "few-shot": "Few-shot", "rag": "RAG", "lora": "LoRA", "rag+lora": "RAG+LoRA"}
RAG_METHODS = ("rag", "rag+lora")
ADAPTER_METHODS = ("lora", "rag+lora")
FORMAT_METHODS = ("lora", "few-shot")
UPDATES_PER_MONTH = {"static": 0.0, "monthly": 1.0, "weekly": 4.33, "daily": 30.0}
CHANGE_PENALTY = {"static": 0.0, "monthly": 3.0, "weekly": 8.0, "daily": 15.0}  # points at full retraining need
DEFAULT_RETRAIN_NEED = {"lora": 1.0, "rag+lora": 0.5}
KIND_BONUS = 5.0
CITATION_BONUS = 8.0
FORMAT_BONUS = 6.0
FEW_LABELS_PENALTY = 8.0
MIN_LABELS = 50
BUDGET_PENALTY = 15.0
AMORTISE_MONTHS = 12
SIGNIFICANCE = 0.05
BREAKDOWN_ORDER = ("accuracy", "hallucination", "cost", "latency", "knowledge_type", "data_changes", "citations", "format",
                   "labelled_examples", "latency_budget", "cost_budget")


class DecisionError(ValueError):
    """The metrics or criteria cannot support a recommendation; the message says what to fix."""


def label(method: str) -> str:
    """Display name of a method (``rag+lora`` -> ``RAG+LoRA``)."""
    return METHOD_LABELS.get(method, method)


def _h(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass
class Criteria:
    """The team's situation; each field's help text feeds the app widgets."""

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
    latency_budget_s: float | None = _h(None, "Highest acceptable p95 latency per answer in seconds (empty = no limit).")
    budget_usd_month: float | None = _h(None, "Highest acceptable monthly cost in USD (empty = no limit).")

    def __post_init__(self) -> None:
        if self.knowledge_type not in (None, "facts", "behaviour", "both"):
            raise DecisionError(f"knowledge_type {self.knowledge_type!r} is unknown; use facts, behaviour or both")
        if self.data_changes not in UPDATES_PER_MONTH:
            raise DecisionError(f"data_changes {self.data_changes!r} is unknown; use static, monthly, weekly or daily")
        if self.labelled_examples is not None and self.labelled_examples < 0:
            raise DecisionError("labelled_examples must be >= 0")
        if self.monthly_queries < 0:
            raise DecisionError("monthly_queries must be >= 0")
        for name in ("latency_budget_s", "budget_usd_month"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise DecisionError(f"{name} must be > 0, or empty for no limit")

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
    hallucination: float = _h(0.3, "Weight of avoiding confident wrong answers (1 - hallucination rate).")
    cost: float = _h(0.15, "Weight of monthly cost (cheaper scores higher).")
    latency: float = _h(0.15, "Weight of p95 latency (faster scores higher).")

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


@dataclass
class Recommendation:
    """Ranked methods with score breakdowns, reasons and caveats, plus the decision path."""

    ranked: list[dict]
    best: str
    summary: str
    decision_path: list[dict]
    inputs: dict

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def pct(x: float | None) -> str:
    """A rate as a whole percentage ("71%"), or "n/a"."""
    return "n/a" if x is None else f"{100 * x:.0f}%"


def ci_text(ci: list | tuple | None) -> str:
    """A 95% interval as "[64-78]" (percent points), or "" when missing."""
    if not ci or ci[0] is None or ci[1] is None:
        return ""
    return f"[{100 * ci[0]:.0f}-{100 * ci[1]:.0f}]"


def monthly_cost(m: dict, method: str, criteria: Criteria, metrics: dict) -> dict[str, float]:
    """USD per month: queries, build amortised over 12 months, and refreshes after data changes."""
    per_1k = float(m.get("usd_per_1k_queries") or 0.0)
    build = float(m.get("usd_build") or 0.0)
    fresh = (metrics.get("freshness") or {}).get(method) or {}
    refresh = build
    if fresh.get("retrain_seconds") is not None:
        refresh = float(fresh["retrain_seconds"]) * float(metrics.get("usd_per_hour") or 0.0) / 3600
    queries = per_1k * criteria.monthly_queries / 1000
    amortised = build / AMORTISE_MONTHS
    refreshes = UPDATES_PER_MONTH[criteria.data_changes] * refresh
    return {"queries": queries, "build": amortised, "refresh": refreshes, "total": queries + amortised + refreshes}


def _relative_lower_is_better(values: dict[str, float | None]) -> dict[str, float]:
    known = [v for v in values.values() if v is not None]
    best = min(known) if known else 0.0
    out = {}
    for k, v in values.items():
        if v is None:
            out[k] = 0.0
        elif v <= 0:
            out[k] = 1.0
        else:
            out[k] = best / v if best > 0 else 0.0
    return out


def _mcnemar(metrics: dict, a: str, b: str) -> dict | None:
    table = (metrics.get("comparisons") or {}).get("mcnemar") or {}
    return table.get(f"{a}|{b}") or table.get(f"{b}|{a}")


def _versus(metrics: dict, a: str, b: str) -> str:
    ma, mb = metrics["methods"][a], metrics["methods"][b]
    n = ma.get("n_answerable") or ma.get("n")
    return (
        f"{label(a)}: {pct(ma.get('accuracy'))} {ci_text(ma.get('accuracy_ci'))} vs {label(b)} {pct(mb.get('accuracy'))} "
        f"{ci_text(mb.get('accuracy_ci'))} accuracy on {n} held-out questions; hallucination "
        f"{pct(ma.get('hallucination_rate'))} vs {pct(mb.get('hallucination_rate'))}"
    )


def _retrain_need(metrics: dict, method: str) -> tuple[float, str]:
    fresh = (metrics.get("freshness") or {}).get(method) or {}
    acc = metrics["methods"][method].get("accuracy")
    stale = fresh.get("stale_accuracy")
    if stale is not None and acc:
        need = min(1.0, max(0.0, (acc - stale) / acc))
        return need, f"measured accuracy on changed facts before retraining {pct(stale)} vs {pct(acc)}"
    need = DEFAULT_RETRAIN_NEED.get(method, 0.0)
    return need, "knowledge lives in the adapter weights" if method == "lora" else "the adapter may drift from updated documents"


def _score_method(method: str, metrics: dict, c: Criteria, w: Weights, rel_cost: dict, rel_lat: dict, costs: dict) -> dict:
    m = metrics["methods"][method]
    acc, hall = m.get("accuracy"), m.get("hallucination_rate")
    bd: dict[str, float] = {
        "accuracy": 100 * w.accuracy * (acc or 0.0),
        "hallucination": 100 * w.hallucination * (1 - hall if hall is not None else 0.0),
        "cost": 100 * w.cost * rel_cost[method],
        "latency": 100 * w.latency * rel_lat[method],
    }
    reasons: list[str] = []
    caveats: list[str] = []
    cost = costs[method]
    p95 = m.get("latency_p95_s")
    reasons.append(
        f"${cost['total']:.2f}/month at {c.monthly_queries:,} queries (${float(m.get('usd_per_1k_queries') or 0):.4f} per 1k queries"
        f" + ${cost['build']:.4f} build amortised over {AMORTISE_MONTHS} months"
        + (f" + ${cost['refresh']:.4f} refreshes" if cost["refresh"] else "")
        + ")"
        + (f"; p95 latency {p95:.2f}s" if p95 is not None else "")
    )
    for name, value in (("accuracy", acc), ("hallucination rate", hall), ("p95 latency", p95)):
        if value is None:
            caveats.append(f"{name} was not measured for {label(method)}; it scores 0 on that criterion")

    kind = c.knowledge_type
    favoured = {"facts": RAG_METHODS, "behaviour": FORMAT_METHODS, "both": ("rag+lora",)}[kind]
    if method in favoured:
        bd["knowledge_type"] = KIND_BONUS
        reasons.append(f"suits {kind} knowledge (+{KIND_BONUS:.0f})")

    if method in ADAPTER_METHODS and c.data_changes != "static":
        need, why = _retrain_need(metrics, method)
        penalty = CHANGE_PENALTY[c.data_changes] * need
        if penalty:
            bd["data_changes"] = -penalty
            reasons.append(f"data changes {c.data_changes}: needs retraining after each change ({why}) (-{penalty:.1f})")

    if c.needs_citations:
        if method in RAG_METHODS:
            bd["citations"] = CITATION_BONUS
            unsupported = m.get("unsupported_rate")
            extra = f"; {pct(unsupported)} of answers had unsupported claims" if unsupported is not None else ""
            reasons.append(f"can cite the retrieved source passages (+{CITATION_BONUS:.0f}){extra}")
        else:
            caveats.append(f"{label(method)} cannot point to sources; citations are required")

    if c.format_matters and method in FORMAT_METHODS:
        others = [metrics["methods"][o].get("exact_match") for o in metrics["methods"] if o not in FORMAT_METHODS]
        others = [x for x in others if x is not None]
        em = m.get("exact_match")
        ref = max(others) if others else None
        if em is not None and (ref is None or em > ref):
            bd["format"] = FORMAT_BONUS
            reasons.append(f"format matters and {label(method)} matches the expected format better: exact match {pct(em)} vs {pct(ref)} (+{FORMAT_BONUS:.0f})")
        elif em is not None:
            reasons.append(f"format matters, but {label(method)} measured no better on exact match ({pct(em)} vs {pct(ref)})")

    if method in ADAPTER_METHODS and c.labelled_examples < MIN_LABELS:
        bd["labelled_examples"] = -FEW_LABELS_PENALTY
        reasons.append(f"only {c.labelled_examples} labelled examples (< {MIN_LABELS}): an adapter trained on so few tends to overfit (-{FEW_LABELS_PENALTY:.0f})")

    if c.latency_budget_s is not None and p95 is not None and p95 > c.latency_budget_s:
        bd["latency_budget"] = -BUDGET_PENALTY
        reasons.append(f"p95 latency {p95:.2f}s exceeds the {c.latency_budget_s:g}s budget (-{BUDGET_PENALTY:.0f})")
    if c.budget_usd_month is not None and cost["total"] > c.budget_usd_month:
        bd["cost_budget"] = -BUDGET_PENALTY
        reasons.append(f"${cost['total']:.2f}/month exceeds the ${c.budget_usd_month:g} budget (-{BUDGET_PENALTY:.0f})")

    n = m.get("n_answerable")
    if n is not None and n < 30:
        caveats.append(f"only {n} answerable held-out questions: intervals are wide")
    bd = {k: round(v, 2) for k, v in bd.items()}
    return {"method": method, "score": round(sum(bd.values()), 2), "breakdown": bd, "reasons": reasons, "caveats": caveats}


def _decision_path(c: Criteria, best: str, metrics: dict) -> list[dict]:
    kind_to = {"facts": "RAG family", "behaviour": "fine-tuning (LoRA) or few-shot", "both": "RAG + LoRA"}
    path = [
        {"question": "Facts or behaviour?", "answer": c.knowledge_type, "leads_to": kind_to[c.knowledge_type]},
        {
            "question": "Does the data change?",
            "answer": c.data_changes,
            "leads_to": "any method: a trained adapter stays valid" if c.data_changes == "static" else "retrieval: re-index instead of retraining",
        },
        {
            "question": "Are citations / traceability needed?",
            "answer": "yes" if c.needs_citations else "no",
            "leads_to": "methods with retrieved sources (RAG, RAG+LoRA)" if c.needs_citations else "any method",
        },
        {
            "question": "Labelled examples available?",
            "answer": str(c.labelled_examples),
            "leads_to": "LoRA is an option" if c.labelled_examples >= MIN_LABELS else f"few-shot rather than LoRA (< {MIN_LABELS} examples)",
        },
    ]
    m = metrics["methods"][best]
    path.append(
        {
            "question": "What did the measurements say?",
            "answer": f"{label(best)}: {pct(m.get('accuracy'))} {ci_text(m.get('accuracy_ci'))} accuracy, {pct(m.get('hallucination_rate'))} hallucination",
            "leads_to": label(best),
        }
    )
    return path


def _coerce(value: Any, cls: type) -> Any:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise DecisionError(f"unknown {cls.__name__.lower()} field(s) {', '.join(unknown)}; use {', '.join(sorted(known))}")
        return cls(**value)
    raise DecisionError(f"{cls.__name__.lower()} must be a {cls.__name__} or a dict, not {type(value).__name__}")


def recommend(metrics: dict, criteria: Criteria | dict | None = None, weights: Weights | dict | None = None) -> dict:
    """Rank the measured methods for the given criteria and weights; deterministic for the same inputs."""
    methods = metrics.get("methods") or {}
    if not methods:
        raise DecisionError("metrics.json has no measured methods; run the evaluation first")
    c = _coerce(criteria, Criteria).resolved(metrics)
    w = _coerce(weights, Weights).normalised()
    order = sorted((m for m in methods if not methods[m].get("baseline")), key=lambda m: (METHODS.index(m) if m in METHODS else len(METHODS), m))
    if not order:
        raise DecisionError("metrics.json measured only baselines (prior, oracle-passage); run at least one real method")
    costs = {m: monthly_cost(methods[m], m, c, metrics) for m in order}
    rel_cost = _relative_lower_is_better({m: costs[m]["total"] for m in order})
    rel_lat = _relative_lower_is_better({m: methods[m].get("latency_p95_s") for m in order})
    scored = [_score_method(m, metrics, c, w, rel_cost, rel_lat, costs) for m in order]
    ranked = sorted(scored, key=lambda r: -r["score"])  # stable: ties keep the METHODS order
    best = ranked[0]["method"]
    if len(ranked) > 1:
        second = ranked[1]["method"]
        ranked[0]["reasons"].insert(0, _versus(metrics, best, second))
        for r in ranked[1:]:
            r["reasons"].insert(0, _versus(metrics, r["method"], best))
        ranked[0]["caveats"] = _close_call(metrics, best, second) + ranked[0]["caveats"]
        test = _mcnemar(metrics, best, second)
        if test and test.get("p_value") is not None and test["p_value"] < SIGNIFICANCE:
            ranked[0]["reasons"].insert(1, f"the accuracy difference to {label(second)} is significant (p={test['p_value']:.3f}, McNemar)")
    else:
        m = methods[best]
        ranked[0]["reasons"].insert(
            0, f"{label(best)}: {pct(m.get('accuracy'))} {ci_text(m.get('accuracy_ci'))} accuracy; only method measured"
        )
    m = methods[best]
    close = bool(len(ranked) > 1 and _close_call(metrics, best, ranked[1]["method"]))
    summary = (
        f"Use {label(best)} (score {ranked[0]['score']:.0f}): {pct(m.get('accuracy'))} accuracy {ci_text(m.get('accuracy_ci'))}, "
        f"{pct(m.get('hallucination_rate'))} hallucination, ${costs[best]['total']:.2f}/month at {c.monthly_queries:,} queries"
        + (f"; a close call with {label(ranked[1]['method'])}." if close else ".")
    )
    inputs = {"criteria": dataclasses.asdict(c), "weights": dataclasses.asdict(w)}
    return Recommendation(ranked, best, summary, _decision_path(c, best, metrics), inputs).to_dict()


def _close_call(metrics: dict, a: str, b: str) -> list[str]:
    """Caveats when the top two cannot be told apart: overlapping intervals or McNemar p >= 0.05."""
    out = []
    ma, mb = metrics["methods"][a], metrics["methods"][b]
    ca, cb = ma.get("accuracy_ci"), mb.get("accuracy_ci")
    if ca and cb and None not in (*ca, *cb) and ca[0] <= cb[1] and cb[0] <= ca[1]:
        out.append(f"accuracy intervals overlap: {label(a)} {ci_text(ca)} vs {label(b)} {ci_text(cb)}")
    test = _mcnemar(metrics, a, b)
    if test and test.get("p_value") is not None and test["p_value"] >= SIGNIFICANCE:
        out.append(f"{label(a)} and {label(b)} are not significantly different (p={test['p_value']:.2f}, McNemar)")
    return out
