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

from workbench import fmt
from workbench.decision.eligibility import Floor, advice, baseline_rows, is_baseline, mcnemar_between, quality_floor
from workbench.evaluation.cost import materiality_scores, monthly_break_even
from workbench.methods.registry import PRIOR, REGISTRY, compared_methods, label, method_order, method_spec, methods_where

from .criteria import UPDATES_PER_MONTH, Criteria, DecisionError, Weights, coerce_inputs

FAMILY = {"facts": "the RAG family", "behaviour": "fine-tuning (LoRA) or few-shot", "both": "RAG + LoRA"}
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
    c = coerce_inputs(criteria, Criteria).resolved(metrics)
    w = coerce_inputs(weights, Weights).normalised()
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
