"""The recommendation: a quality floor first, then the team's weights among the methods that pass it.

1. Floor (``eligibility``): a method is eligible only if its accuracy reaches the team's minimum,
   it is not significantly (paired McNemar) less accurate than the most accurate method by more
   than the team's tolerance, and it beats a ``prior`` baseline where one was measured. Baseline
   rows are never candidates. If none passes, there is no winner: the recommendation says so and
   what would help.
2. Score, out of ~100 points: weighted accuracy; net useful answers (right answers and correct
   "I don't know"s minus confident wrong answers, so abstaining on answerable questions earns
   nothing); monthly cost and p95 per-query latency, where differences below what matters to the
   team (``cost_materiality_usd`` / ``_share``, ``latency_materiality_s``) score the same; then
   fixed, named adjustments for the team's situation (facts vs behaviour, data changes, citations,
   format, labelled data, budgets).

Every reason quotes measured numbers from ``metrics.json`` through ``workbench.fmt``. Optional
``metrics["freshness"]`` = ``{"<method>": {"retrain_seconds", "stale_accuracy"}}`` feeds refresh
costs and the retraining need (else ``build_seconds``, and 1.0 for lora, 0.5 for rag+lora).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from workbench import fmt
from workbench.decision.eligibility import Floor, advice, baseline_rows, is_baseline, mcnemar_between, quality_floor
from workbench.errors import WorkbenchError
from workbench.evaluation.cost import materiality_scores, monthly_break_even
from workbench.methods.registry import PRIOR, REGISTRY, compared_methods, label, method_order, method_spec, methods_where

FAMILY = {"facts": "the RAG family", "behaviour": "fine-tuning (LoRA) or few-shot", "both": "RAG + LoRA"}
UPDATES_PER_MONTH = {"static": 0.0, "monthly": 1.0, "weekly": 4.33, "daily": 30.0}
CHANGE_PENALTY = {"static": 0.0, "monthly": 3.0, "weekly": 8.0, "daily": 15.0}  # points at full retraining need
KIND_BONUS = 5.0
CITATION_BONUS = 8.0
FORMAT_BONUS = 6.0
FEW_LABELS_PENALTY = 8.0
MIN_LABELS = 50


def rag_methods() -> tuple[str, ...]:
    """Compared methods that answer from retrieved passages (citations, re-index instead of retraining)."""
    return methods_where(needs_index=True, baseline=False)


def adapter_methods() -> tuple[str, ...]:
    """Compared methods that answer with a tuned adapter (retraining, labelled examples)."""
    return methods_where(needs_adapter=True, baseline=False)


def favoured(kind: str) -> tuple[str, ...]:
    """Methods the decision favours for a knowledge kind ("facts", "behaviour", "both"), read from their specs."""
    return tuple(n for n, s in REGISTRY.items() if kind in s.favoured_for)


def format_methods() -> tuple[str, ...]:
    """Methods that learn the reply format from examples or weights (those favoured when behaviour matters)."""
    return favoured("behaviour")


class _Favoured(Mapping[str, tuple[str, ...]]):
    """``FAVOURED[kind]``: the registry's favoured methods per knowledge kind, read when asked."""

    def __getitem__(self, kind: str) -> tuple[str, ...]:
        return favoured(kind)

    def __iter__(self) -> Iterator[str]:
        return iter(FAMILY)

    def __len__(self) -> int:
        return len(FAMILY)


FAVOURED = _Favoured()
BUDGET_PENALTY = 15.0
AMORTISE_MONTHS = 12
SIGNIFICANCE = 0.05
BREAKDOWN_ORDER = ("accuracy", "hallucination", "cost", "latency", "knowledge_type", "data_changes", "citations", "format",
                   "labelled_examples", "latency_budget", "cost_budget")
BREAKDOWN_LABELS = {"hallucination": "Net useful answers"}  # the hallucination weight scores net useful answers
NONE_GOOD_ENOUGH = "none of the measured methods is good enough"

pct, ci_text = fmt.pct, fmt.pct_ci  # kept for callers that import them from here


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


def price_factor(criteria: Criteria, metrics: dict) -> float:
    """Multiplier from the run's machine price to the team's (1.0 when the team kept the run's price)."""
    run_price = float(metrics.get("usd_per_hour") or 0.0)
    return criteria.usd_per_hour / run_price if criteria.usd_per_hour and run_price > 0 else 1.0


def monthly_cost(m: dict, method: str, criteria: Criteria, metrics: dict) -> dict[str, float | None]:
    """USD: per 1k queries, per month (queries + build amortised over 12 months + refreshes), per correct answer."""
    k = price_factor(criteria, metrics)
    per_1k = float(m.get("usd_per_1k_queries") or 0.0) * k
    build = float(m.get("usd_build") or 0.0) * k
    fresh = (metrics.get("freshness") or {}).get(method) or {}
    refresh = build
    if fresh.get("retrain_seconds") is not None:
        price = criteria.usd_per_hour or float(metrics.get("usd_per_hour") or 0.0)
        refresh = float(fresh["retrain_seconds"]) * price / 3600
    queries = per_1k * criteria.monthly_queries / 1000
    amortised = build / AMORTISE_MONTHS
    refreshes = UPDATES_PER_MONTH[criteria.data_changes] * refresh
    total = queries + amortised + refreshes
    acc = m.get("accuracy")
    correct_per_month = criteria.monthly_queries * acc if acc else 0.0
    return {"per_1k": per_1k, "queries": queries, "build": amortised, "refresh": refreshes, "total": total,
            "fixed": amortised + refreshes, "per_correct": total / correct_per_month if correct_per_month else None}


def _versus(metrics: dict, a: str, b: str) -> str:
    ma, mb = metrics["methods"][a], metrics["methods"][b]
    n = ma.get("n_answerable") or ma.get("n")
    return (
        f"{label(a)}: {fmt.pct(ma.get('accuracy'))} {fmt.pct_ci(ma.get('accuracy_ci'))} vs {label(b)} {fmt.pct(mb.get('accuracy'))} "
        f"{fmt.pct_ci(mb.get('accuracy_ci'))} accuracy on {n} held-out questions; hallucination "
        f"{fmt.pct(ma.get('hallucination_rate'))} vs {fmt.pct(mb.get('hallucination_rate'))}"
    )


def net_useful(m: dict) -> float | None:
    """(right answers + correct abstentions - confident wrong answers) / questions, clipped to 0..1."""
    hall = m.get("hallucination_rate")
    useful = m.get("useful_rate")
    if useful is None:  # older metrics: correct answers, plus abstentions the hallucinations leave possible on unanswerable ones
        acc, n, n_ans = m.get("accuracy"), m.get("n") or 0, m.get("n_answerable") or 0
        if acc is None or hall is None or not n:
            return None
        useful = (acc * n_ans + max(0.0, (n - n_ans) - hall * n)) / n
    if hall is None:
        return None
    return max(0.0, min(1.0, float(useful) - float(hall)))


def _retrain_need(metrics: dict, method: str) -> tuple[float, str]:
    fresh = (metrics.get("freshness") or {}).get(method) or {}
    acc = metrics["methods"][method].get("accuracy")
    stale = fresh.get("stale_accuracy")
    if stale is not None and acc:
        need = min(1.0, max(0.0, (acc - stale) / acc))
        return need, f"measured accuracy on changed facts before retraining {fmt.pct(stale)} vs {fmt.pct(acc)}"
    need = method_spec(method).retrain_need if method in REGISTRY else 0.0
    return need, "knowledge lives in the adapter weights" if method not in rag_methods() else "the adapter may drift from updated documents"


def _cost_line(m: dict, cost: dict, c: Criteria) -> str:
    p50, p95, n = m.get("latency_p50_s"), m.get("latency_p95_s"), m.get("latency_probe_n")
    line = (
        f"{fmt.money(cost['total'], cents=True)}/month at {fmt.count(c.monthly_queries)} queries ({fmt.money(cost['per_1k'])} per 1,000 queries"
        f" + {fmt.money(cost['build'], cents=True)} build amortised over {AMORTISE_MONTHS} months"
        + (f" + {fmt.money(cost['refresh'], cents=True)} refreshes" if cost["refresh"] else "")
        + ")"
    )
    line += f"; {fmt.money(cost['per_correct'])} per correct answer" if cost["per_correct"] is not None else "; no correct answer to price"
    if p95 is not None:
        line += f"; per-query latency p50 {fmt.seconds(p50)} / p95 {fmt.seconds(p95)}" + (f" (probe: {n} questions answered alone)" if n else "")
    return line


def _score_method(method: str, metrics: dict, c: Criteria, w: Weights, rel_cost: dict, rel_lat: dict, costs: dict) -> dict:
    m = metrics["methods"][method]
    acc, hall, useful = m.get("accuracy"), m.get("hallucination_rate"), net_useful(m)
    bd: dict[str, float] = {
        "accuracy": 100 * w.accuracy * (acc or 0.0),
        "hallucination": 100 * w.hallucination * (useful or 0.0),
        "cost": 100 * w.cost * rel_cost[method],
        "latency": 100 * w.latency * rel_lat[method],
    }
    reasons: list[str] = []
    caveats: list[str] = []
    cost = costs[method]
    p95 = m.get("latency_p95_s")
    reasons.append(_cost_line(m, cost, c))
    if useful is not None:
        reasons.append(f"net useful answers {fmt.pct(useful)} (right answers and correct \"I don't know\"s minus confident wrong answers; "
                       f"abstained on {fmt.pct(m.get('abstention_answerable_rate', m.get('abstention_rate')))} of answerable questions)")
    for name, value in (("accuracy", acc), ("hallucination rate", hall), ("p95 latency", p95)):
        if value is None:
            caveats.append(f"{name} was not measured for {label(method)}; it scores 0 on that criterion")

    kind = c.knowledge_type
    if method in FAVOURED[kind]:
        bd["knowledge_type"] = KIND_BONUS
        reasons.append(f"suits {kind} knowledge (+{KIND_BONUS:.0f})")

    if method in adapter_methods() and c.data_changes != "static":
        need, why = _retrain_need(metrics, method)
        penalty = CHANGE_PENALTY[c.data_changes] * need
        if penalty:
            bd["data_changes"] = -penalty
            reasons.append(f"data changes {c.data_changes}: needs retraining after each change ({why}) (-{penalty:.1f})")

    if c.needs_citations:
        if method in rag_methods():
            bd["citations"] = CITATION_BONUS
            unsupported = m.get("unsupported_rate")
            extra = f"; {fmt.pct(unsupported)} of answers had unsupported claims" if unsupported is not None else ""
            reasons.append(f"can cite the retrieved source passages (+{CITATION_BONUS:.0f}){extra}")
        else:
            caveats.append(f"{label(method)} cannot point to sources; citations are required")

    if c.format_matters and method in format_methods():
        others = [v.get("exact_match") for o, v in metrics["methods"].items() if o not in format_methods() and not v.get("baseline")]
        others = [x for x in others if x is not None]
        em = m.get("exact_match")
        ref = max(others) if others else None
        if em is not None and (ref is None or em > ref):
            bd["format"] = FORMAT_BONUS
            reasons.append(f"format matters and {label(method)} matches the expected format better: exact match {fmt.pct(em)} vs {fmt.pct(ref)} (+{FORMAT_BONUS:.0f})")
        elif em is not None:
            reasons.append(f"format matters, but {label(method)} measured no better on exact match ({fmt.pct(em)} vs {fmt.pct(ref)})")

    if method in adapter_methods() and c.labelled_examples < MIN_LABELS:
        bd["labelled_examples"] = -FEW_LABELS_PENALTY
        reasons.append(f"only {c.labelled_examples} labelled examples (< {MIN_LABELS}): an adapter trained on so few tends to overfit (-{FEW_LABELS_PENALTY:.0f})")

    if c.latency_budget_s is not None and p95 is not None and p95 > c.latency_budget_s:
        bd["latency_budget"] = -BUDGET_PENALTY
        reasons.append(f"p95 latency {fmt.seconds(p95)} exceeds the {fmt.seconds(c.latency_budget_s)} budget (-{BUDGET_PENALTY:.0f})")
    if c.budget_usd_month is not None and cost["total"] > c.budget_usd_month:
        bd["cost_budget"] = -BUDGET_PENALTY
        reasons.append(f"{fmt.money(cost['total'], cents=True)}/month exceeds the {fmt.money(c.budget_usd_month, cents=True)} budget (-{BUDGET_PENALTY:.0f})")

    n = m.get("n_answerable")
    if n is not None and n < 30:
        caveats.append(f"only {n} answerable held-out questions: intervals are wide")
    bd = {k: round(v, 2) for k, v in bd.items()}
    return {"method": method, "score": round(sum(bd.values()), 2), "breakdown": bd, "reasons": reasons, "caveats": caveats}


def _situation_step(question: str, answer: str, favoured: tuple[str, ...] | None, leads: str, best: str | None) -> dict:
    """A situational step: where the answer points, and whether the measurements overruled it."""
    if favoured is not None and best is not None and best not in favoured:
        leads += f"; outweighed by the measurements ({label(best)} scores higher)"
    elif favoured is not None and best is None:
        leads += f"; but {NONE_GOOD_ENOUGH}"
    return {"question": question, "answer": answer, "leads_to": leads}


def _decision_path(c: Criteria, w: Weights, best: str | None, floor: Floor, metrics: dict) -> list[dict]:
    top = floor.top
    top_text = f"{label(top)} {fmt.pct(metrics['methods'][top]['accuracy'])}" if top else "none measured"
    prior = " and significantly better than the prior baseline" if PRIOR in metrics["methods"] else ""
    path = [
        {
            "question": "Which methods answer well enough?",
            "answer": f"accuracy at least {fmt.pct(c.min_accuracy)}, not significantly more than {fmt.points(c.accuracy_tolerance)} below the most accurate ({top_text}){prior}",
            "leads_to": ("eligible: " + ", ".join(label(m) for m in floor.eligible)) if floor.eligible else f"no method eligible: {NONE_GOOD_ENOUGH}",
        },
        _situation_step("Facts or behaviour?", c.knowledge_type, FAVOURED[c.knowledge_type], f"favours {FAMILY[c.knowledge_type]} (+{KIND_BONUS:.0f})", best),
    ]
    if c.data_changes == "static":
        path.append(_situation_step("Does the data change?", "static", None, "any method: a trained adapter stays valid", best))
    else:
        path.append(_situation_step("Does the data change?", c.data_changes, tuple(m for m in compared_methods() if m not in adapter_methods()), "retrieval: re-index instead of retraining", best))
    if c.needs_citations:
        path.append(_situation_step("Are citations / traceability needed?", "yes", rag_methods(), "methods with retrieved sources (RAG, RAG+LoRA)", best))
    else:
        path.append(_situation_step("Are citations / traceability needed?", "no", None, "any method", best))
    if c.labelled_examples >= MIN_LABELS:
        path.append(_situation_step("Labelled examples available?", str(c.labelled_examples), None, "LoRA is an option", best))
    else:
        others = tuple(m for m in compared_methods() if m not in adapter_methods())
        path.append(_situation_step("Labelled examples available?", str(c.labelled_examples), others, f"few-shot rather than LoRA (< {MIN_LABELS} examples)", best))
    weights = ", ".join(f"{k} {v:.2f}" for k, v in dataclasses.asdict(w).items())
    if best is None:
        path.append({"question": "Which eligible method scores highest with your weights?", "answer": weights, "leads_to": "no recommendation"})
    else:
        m = metrics["methods"][best]
        path.append({
            "question": "Which eligible method scores highest with your weights?",
            "answer": f"{weights}; {label(best)}: {fmt.pct(m.get('accuracy'))} {fmt.pct_ci(m.get('accuracy_ci'))} accuracy, "
                      f"{fmt.pct(m.get('hallucination_rate'))} hallucination",
            "leads_to": label(best),
        })
    return path


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise DecisionError(f"{name} must be true or false, not {value!r}")


def _coerce(value: Any, cls: type) -> Any:
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


def _ordered(methods: dict) -> list[str]:
    return sorted(methods, key=method_order)


def _compare_reasons(metrics: dict, c: Criteria, best: str, other: str, costs: dict) -> tuple[list[str], list[str]]:
    """Reasons and caveats for ``best`` against ``other``: accuracy direction, significance, break-even volume."""
    reasons, caveats = [_versus(metrics, best, other)], []
    a, b = metrics["methods"][best].get("accuracy"), metrics["methods"][other].get("accuracy")
    test = mcnemar_between(metrics, best, other)
    p = None if not test or test.get("p_value") is None else float(test["p_value"])
    if a is not None and b is not None and p is not None:
        if a > b and p < c.significance:
            reasons.append(f"{label(best)} is significantly more accurate than {label(other)} ({fmt.p_value(p)}, McNemar)")
        elif b > a and p < c.significance:
            caveats.append(f"{label(other)} is significantly more accurate, by {fmt.points(b - a)}, within your tolerance of {fmt.points(c.accuracy_tolerance)} "
                           f"({fmt.p_value(p)}, McNemar); {label(best)} wins on the other criteria")
        elif p >= c.significance:
            caveats.append(f"{label(best)} and {label(other)} are not significantly different in accuracy ({fmt.p_value(p)}, McNemar)")
    ca, cb = metrics["methods"][best].get("accuracy_ci"), metrics["methods"][other].get("accuracy_ci")
    if ca and cb and None not in (*ca, *cb) and ca[0] <= cb[1] and cb[0] <= ca[1]:
        caveats.insert(0, f"accuracy intervals overlap: {label(best)} {fmt.pct_ci(ca)} vs {label(other)} {fmt.pct_ci(cb)}")
    x, y = costs[best], costs[other]
    q = monthly_break_even(x["fixed"], x["per_1k"] / 1000, y["fixed"], y["per_1k"] / 1000)
    if q is not None:
        reasons.append(f"costs the same as {label(other)} at {fmt.count(q)} queries/month (you expect {fmt.count(c.monthly_queries)})")
    return reasons, caveats


def recommend(metrics: dict, criteria: Criteria | dict | None = None, weights: Weights | dict | None = None) -> dict:
    """Floor, then rank the eligible methods for the criteria and weights; deterministic for the same inputs.

    Returns ``best`` (None when no method is good enough), ``eligible``, ``ranked`` (eligible by
    score, then the ineligible ones with ``ineligible_because``), ``reasons``, ``caveats``,
    ``advice``, ``summary``, ``decision_path``, ``costs``, ``baselines`` and ``inputs``.
    """
    methods = metrics.get("methods") or {}
    if not methods:
        raise DecisionError("metrics.json has no measured methods; run the evaluation first")
    candidates = [m for m in _ordered(methods) if not is_baseline(metrics, m)]
    if not candidates:
        raise DecisionError("metrics.json holds only baseline rows (prior, oracle-passage); run at least one method")
    c = _coerce(criteria, Criteria).resolved(metrics)
    w = _coerce(weights, Weights).normalised()
    floor = quality_floor(metrics, candidates, c.min_accuracy, c.accuracy_tolerance, c.significance)
    costs = {m: monthly_cost(methods[m], m, c, metrics) for m in candidates}
    pool = floor.eligible or candidates  # cost and latency are judged among the methods that can win
    cost_threshold = max(c.cost_materiality_usd, c.cost_materiality_share * (c.budget_usd_month or 0.0))
    rel_cost = materiality_scores({m: costs[m]["total"] for m in candidates}, cost_threshold, c.budget_usd_month, pool)
    rel_lat = materiality_scores({m: methods[m].get("latency_p95_s") for m in candidates}, c.latency_materiality_s, c.latency_budget_s, pool)
    scored = {m: _score_method(m, metrics, c, w, rel_cost, rel_lat, costs) for m in candidates}
    for m, r in scored.items():
        r["eligible"] = m in floor.eligible
        r["ineligible_because"] = floor.why_not.get(m, [])
        r["floor"] = floor.notes.get(m, [])
    by_score = lambda names: sorted((scored[m] for m in names), key=lambda r: -r["score"])  # noqa: E731  (stable: ties keep METHODS order)
    eligible_ranked = by_score(floor.eligible)
    ranked = eligible_ranked + by_score([m for m in candidates if m not in floor.eligible])
    best = eligible_ranked[0]["method"] if eligible_ranked else None

    if best is None:
        why = "; ".join(f"{label(m)}: {floor.why_not[m][0]}" for m in candidates)
        helps = advice(metrics, candidates, c.min_accuracy)
        reasons = [f"{NONE_GOOD_ENOUGH} ({why})"]
        summary = f"No recommendation: {NONE_GOOD_ENOUGH} for your quality floor. What would help: {helps[0]}."
        caveats: list[str] = []
    else:
        top = scored[best]
        others = [r["method"] for r in ranked if r["method"] != best]
        runner = next((r["method"] for r in eligible_ranked[1:]), None) or (others[0] if others else None)
        head: list[str] = []
        extra_caveats: list[str] = []
        if runner:
            head, extra_caveats = _compare_reasons(metrics, c, best, runner, costs)
        else:
            head = [f"{label(best)}: {fmt.pct(methods[best].get('accuracy'))} {fmt.pct_ci(methods[best].get('accuracy_ci'))} accuracy; only method measured"]
        head.append("passes the quality floor: " + "; ".join(floor.notes.get(best, [])))
        if len(floor.eligible) > 1:
            spread = max(costs[m]["total"] for m in floor.eligible) - min(costs[m]["total"] for m in floor.eligible)
            if spread <= cost_threshold:
                head.append(f"the eligible methods' monthly costs differ by {fmt.money(spread, cents=True)}, under the {fmt.money(cost_threshold, cents=True)} "
                            "that matters at your volume, so cost does not separate them")
        top["reasons"] = head + top["reasons"]
        top["caveats"] = extra_caveats + top["caveats"]
        for r in ranked:
            if r["method"] != best:
                r["reasons"].insert(0, _versus(metrics, r["method"], best))
        reasons, caveats, helps = top["reasons"], top["caveats"], []
        m = methods[best]
        close = runner in floor.eligible and any("not significantly different" in x or "overlap" in x for x in extra_caveats)
        summary = (
            f"Use {label(best)} (score {fmt.score(top['score'])}): {fmt.pct(m.get('accuracy'))} accuracy {fmt.pct_ci(m.get('accuracy_ci'))}, "
            f"{fmt.pct(m.get('hallucination_rate'))} hallucination, {fmt.money(costs[best]['total'], cents=True)}/month at {fmt.count(c.monthly_queries)} queries"
            + (f"; a close call with {label(runner)}." if close else ".")
        )
    return {
        "best": best,
        "eligible": list(floor.eligible),
        "ineligible": {m: floor.why_not[m] for m in candidates if m in floor.why_not},
        "ranked": ranked,
        "reasons": reasons,
        "caveats": caveats,
        "advice": helps,
        "summary": summary,
        "decision_path": _decision_path(c, w, best, floor, metrics),
        "costs": costs,
        "baselines": baseline_rows(metrics),
        "inputs": {"criteria": dataclasses.asdict(c), "weights": dataclasses.asdict(w)},
    }
