"""Per-method metrics and pairwise comparisons for metrics.json, computed only from prediction rows and build costs."""

from __future__ import annotations

from itertools import combinations
from typing import Any

from .cost import break_even, usd_build, usd_per_1k
from .stats import bootstrap_ci, mcnemar, percentile

REQUIRED = (
    "method",
    "question_id",
    "answerable",
    "correct",
    "abstained",
    "hallucinated",
    "exact_match",
    "f1",
    "latency_s",
    "prompt_tokens",
    "output_tokens",
)
COST_KEYS = ("build_seconds", "peak_rss_mb", "artifact_mb")


def _mean(values: list[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None


def _optional_mean(rows: list[dict[str, Any]], key: str) -> float | None:
    """Mean of a secondary signal over rows where it was measured (None = not measured)."""
    return _mean([float(r[key]) for r in rows if r.get(key) is not None])


def _check(predictions: list[dict[str, Any]], costs: dict[str, dict[str, Any]]) -> list[str]:
    """Validate rows and costs; return the methods in order of first appearance."""
    if not predictions:
        raise ValueError("aggregate: there are no prediction rows; the run answered no questions")
    methods: list[str] = []
    seen: set[tuple[str, str]] = set()
    for i, row in enumerate(predictions):
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            raise ValueError(f"predictions row {i + 1}: missing {', '.join(missing)}; rows must follow the predictions.jsonl contract")
        key = (str(row["method"]), str(row["question_id"]))
        if key in seen:
            raise ValueError(
                f"predictions row {i + 1}: question {key[1]!r} appears twice for method {key[0]!r}; keep one row per (method, question)"
            )
        seen.add(key)
        if key[0] not in methods:
            methods.append(key[0])
    for m in methods:
        if m not in costs:
            raise ValueError(f"aggregate: no costs for method {m!r}; pass costs[{m!r}] = {{'build_seconds', 'peak_rss_mb', 'artifact_mb'}}")
    return methods


def method_metrics(
    rows: list[dict[str, Any]], cost: dict[str, Any], usd_per_hour: float, bootstrap_samples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """The metrics.json entry of one method from its prediction rows and its build cost."""
    answerable = [r for r in rows if r["answerable"]]
    correct = [float(bool(r["correct"])) for r in answerable]
    halluc = [float(bool(r["hallucinated"])) for r in rows]
    batched = [float(r["latency_s"]) for r in rows]  # batch wall time / batch size: amortised compute per answer
    probed = [float(r["latency_probe_s"]) for r in rows if r.get("latency_probe_s") is not None]  # one question at a time
    unsupported = [float(bool(r["unsupported"])) for r in rows if r.get("unsupported") is not None]
    build_s = float(cost.get("build_seconds", 0.0) or 0.0)
    batched_mean = sum(batched) / len(batched)
    accuracy = _mean(correct)
    per_1k = usd_per_1k(batched_mean, usd_per_hour)
    useful = [float(bool(r["correct"]) if r["answerable"] else bool(r["abstained"])) for r in rows]
    return {
        "n": len(rows),
        "n_answerable": len(answerable),
        "accuracy": accuracy,
        "accuracy_ci": list(bootstrap_ci(correct, bootstrap_samples, seed)) if correct else None,
        "hallucination_rate": _mean(halluc),
        "hallucination_ci": list(bootstrap_ci(halluc, bootstrap_samples, seed)),
        "abstention_rate": _mean([float(bool(r["abstained"])) for r in rows]),
        "abstention_answerable_rate": _mean([float(bool(r["abstained"])) for r in answerable]),
        "useful_rate": _mean(useful),  # right answer, or "I don't know" where the corpus has no answer, over all questions
        "exact_match": _mean([float(r["exact_match"]) for r in rows]),
        "f1": _mean([float(r["f1"]) for r in rows]),
        "semantic_sim_mean": _optional_mean(rows, "semantic_sim"),
        "unsupported_rate": _mean(unsupported),
        "groundedness_mean": _optional_mean(rows, "groundedness"),
        "build_seconds": build_s,
        "latency_p50_s": percentile(probed, 50) if probed else None,
        "latency_p95_s": percentile(probed, 95) if probed else None,
        "latency_probe_n": len(probed),
        "throughput_qps": 1.0 / batched_mean if batched_mean > 0 else None,
        "prompt_tokens_mean": _mean([float(r["prompt_tokens"]) for r in rows]),
        "output_tokens_mean": _mean([float(r["output_tokens"]) for r in rows]),
        "peak_rss_mb": float(cost["peak_rss_mb"]) if cost.get("peak_rss_mb") is not None else None,
        "artifact_mb": float(cost.get("artifact_mb", 0.0) or 0.0),
        "model_mb": cost.get("model_mb"),  # the answering model's weights as stored (an @int8 row's are int8)
        "quantize_seconds": cost.get("quantize_seconds"),
        "usd_per_1k_queries": per_1k,
        "cost_per_correct_usd": per_1k / 1000.0 / accuracy if accuracy else None,  # compute per query / accuracy; None when nothing is right
        "usd_build": usd_build(build_s, usd_per_hour),
    }


def paired_mcnemar(rows_a: list[dict[str, Any]], rows_b: list[dict[str, Any]]) -> dict[str, Any]:
    """McNemar on correctness over the answerable questions both methods answered, paired by question_id."""
    b_by_id = {r["question_id"]: r for r in rows_b if r["answerable"]}
    pairs = [
        (bool(r["correct"]), bool(b_by_id[r["question_id"]]["correct"])) for r in rows_a if r["answerable"] and r["question_id"] in b_by_id
    ]
    return mcnemar([x for x, _ in pairs], [y for _, y in pairs])


def aggregate(
    predictions: list[dict[str, Any]], costs: dict[str, dict[str, Any]], usd_per_hour: float, bootstrap_samples: int = 1000, seed: int = 0
) -> dict[str, Any]:
    """{"methods": {...}, "comparisons": {"mcnemar", "break_even"}} of metrics.json; deterministic for a seed."""
    methods = _check(predictions, costs)
    by_method = {m: [r for r in predictions if r["method"] == m] for m in methods}
    per_method = {m: method_metrics(by_method[m], costs[m], usd_per_hour, bootstrap_samples, seed) for m in methods}
    tests: dict[str, Any] = {}
    evens: dict[str, Any] = {}
    for a, b in combinations(methods, 2):
        tests[f"{a}|{b}"] = paired_mcnemar(by_method[a], by_method[b])
        evens[f"{a}|{b}"] = break_even(per_method[a], per_method[b], a, b)
    return {"methods": per_method, "comparisons": {"mcnemar": tests, "break_even": evens}}
