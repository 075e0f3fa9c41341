"""The quality floor a method must pass before any trade-off with cost or latency is allowed.

A method is eligible when (1) its accuracy is at least the team's minimum, (2) it is not
significantly less accurate (paired McNemar, p < significance) than the most accurate method by
more than the team's tolerance, and (3) where a ``prior`` baseline row exists, it is significantly
more accurate than the prior (answering the most frequent train answer). Baseline rows
(``metrics["methods"][m]["baseline"]``) are references, never candidates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench import fmt
from workbench.methods.registry import PRIOR, compared_methods, label, method_spec

EPS = 1e-9


@dataclass
class Floor:
    """Who passed the floor and why the others did not."""

    top: str | None  # the most accurate candidate
    eligible: list[str]
    why_not: dict[str, list[str]] = field(default_factory=dict)  # method -> reasons it is ineligible
    notes: dict[str, list[str]] = field(default_factory=dict)  # method -> how it passed (quoted in reasons)


def is_baseline(metrics: dict, method: str) -> bool:
    """A reference row (prior, oracle-passage) rather than a method a team could deploy."""
    return bool((metrics.get("methods") or {}).get(method, {}).get("baseline"))


def mcnemar_between(metrics: dict, a: str, b: str) -> dict | None:
    """The stored paired test of a and b (either order), or None."""
    table = (metrics.get("comparisons") or {}).get("mcnemar") or {}
    return table.get(f"{a}|{b}") or table.get(f"{b}|{a}")


def _p(metrics: dict, a: str, b: str) -> float | None:
    test = mcnemar_between(metrics, a, b)
    return None if not test or test.get("p_value") is None else float(test["p_value"])


def most_accurate(metrics: dict, candidates: list[str]) -> str | None:
    """The candidate with the highest accuracy (ties keep the given order), or None when none is measured."""
    measured = [m for m in candidates if metrics["methods"][m].get("accuracy") is not None]
    return max(measured, key=lambda m: metrics["methods"][m]["accuracy"]) if measured else None


def quality_floor(metrics: dict, candidates: list[str], min_accuracy: float, tolerance: float, significance: float) -> Floor:
    """Apply the floor to ``candidates`` (in display order) and say why each one fails or passes."""

    methods = metrics["methods"]
    top = most_accurate(metrics, candidates)
    top_acc = methods[top]["accuracy"] if top else None
    prior = PRIOR if PRIOR in methods and methods[PRIOR].get("accuracy") is not None else None
    why: dict[str, list[str]] = {}
    notes: dict[str, list[str]] = {}
    for m in candidates:
        acc = methods[m].get("accuracy")
        bad, ok = [], []
        if acc is None:
            why[m] = ["accuracy was not measured (no answerable held-out questions)"]
            continue
        if acc + EPS < min_accuracy:
            bad.append(f"accuracy {fmt.pct(acc)} is below the {fmt.pct(min_accuracy)} minimum")
        else:
            ok.append(f"accuracy {fmt.pct(acc)} is at least the {fmt.pct(min_accuracy)} minimum")
        if m == top:
            ok.append("the most accurate method measured")
        else:
            gap = top_acc - acc
            p = _p(metrics, m, top)
            vs = f"{fmt.pct(acc)} vs {label(top)} {fmt.pct(top_acc)}, {fmt.points(gap)} behind"
            if gap <= tolerance + EPS:
                ok.append(f"within the tolerance of {fmt.points(tolerance)} of the most accurate ({vs})")
            elif p is None:
                bad.append(f"less accurate than {label(top)} by more than the tolerance of {fmt.points(tolerance)} ({vs}; no paired test stored)")
            elif p < significance:
                bad.append(f"significantly less accurate than {label(top)} ({vs}, {fmt.p_value(p)}, McNemar), more than the tolerance of {fmt.points(tolerance)}")
            else:
                ok.append(f"behind {label(top)} but not significantly ({vs}, {fmt.p_value(p)}, McNemar)")
        if prior is not None:
            prior_acc = methods[prior]["accuracy"]
            p = _p(metrics, m, prior)
            vs = f"{fmt.pct(acc)} vs {fmt.pct(prior_acc)}"
            if p is None:
                better = acc - prior_acc > tolerance + EPS
                detail = f"{vs}; no paired test stored, judged on the tolerance of {fmt.points(tolerance)}"
            else:
                better = acc > prior_acc and p < significance
                detail = f"{vs}, {fmt.p_value(p)}, McNemar"
            if better:
                ok.append(f"significantly better than the prior baseline ({detail})")
            else:
                bad.append(f"not significantly better than the prior baseline, which always gives the most frequent train answer ({detail})")
        if bad:
            why[m] = bad
        notes[m] = ok
    eligible = [m for m in candidates if m not in why]
    return Floor(top, eligible, why, notes)


def advice(metrics: dict, candidates: list[str], min_accuracy: float) -> list[str]:
    """What would help when no method passes the floor, from what was and was not measured."""
    methods = metrics["methods"]
    out = []
    retrieval = metrics.get("retrieval") or {}
    recall = next((retrieval[k] for k in ("recall@3", "recall@5", "recall@1") if retrieval.get(k) is not None), None)
    if recall is not None and recall < 0.8:
        out.append(f"retrieval finds the passage holding the answer for only {fmt.pct(recall)} of questions: try other chunk sizes, "
                   "hybrid retrieval or a larger top_k before judging RAG")
    built = [m for m in compared_methods() if method_spec(m).needs_index or method_spec(m).needs_adapter]  # methods with an artefact to build
    missing = [m for m in built if m not in methods]
    if missing:
        out.append(f"measure the methods not run yet ({', '.join(missing)})")
    best = most_accurate(metrics, candidates)
    if best is not None and (methods[best].get("accuracy") or 0) < min_accuracy:
        out.append("a larger generator model (the default 0.5B model is small) or a fine-tune on more question/answer pairs")
    n = max((methods[m].get("n_answerable") or 0 for m in candidates), default=0)
    if n < 50:
        out.append(f"evaluate more held-out questions ({n} answerable now): the intervals are wide")
    out.append(f"or lower the quality floor (min_accuracy {fmt.pct(min_accuracy)}) if a weaker answerer is acceptable for your use")
    return out


def baseline_rows(metrics: dict) -> dict[str, dict[str, Any]]:
    """The baseline rows' headline figures, for display beside the candidates."""
    return {m: {k: v.get(k) for k in ("accuracy", "accuracy_ci", "hallucination_rate")} for m, v in (metrics.get("methods") or {}).items() if v.get("baseline")}
