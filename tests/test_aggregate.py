"""Aggregation from prediction rows: every metric recomputed by hand, pairing, determinism, bounds."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.evaluation.aggregate import aggregate
from workbench.evaluation.stats import bootstrap_ci, mcnemar


def _row(method, qid, answerable, correct, abstained, latency, *, em=None, f1=None, sim=None, unsup=None, ground=None, pt=100, ot=5, probe=None):
    hallucinated = not abstained and not correct
    return {
        "method": method, "question_id": qid, "question": f"question {qid}", "gold": ["x"] if answerable else [],
        "answerable": answerable, "split": "test", "qtype": "", "answer": "I don't know" if abstained else "x", "contexts": [],
        "correct": correct, "abstained": abstained, "hallucinated": hallucinated,
        "exact_match": int(correct) if em is None else em, "f1": float(correct) if f1 is None else f1,
        "semantic_sim": sim, "unsupported": unsup, "unsupported_items": ["9"] if unsup else [], "groundedness": ground,
        "prompt_tokens": pt, "output_tokens": ot, "latency_s": latency, "batch_wall_s": latency * 4, "cached": False, "latency_probe_s": probe,
    }  # fmt: skip


def _predictions():
    rag = [
        _row("rag", "q1", True, True, False, 0.4, sim=0.9, unsup=False, ground=0.8, pt=400, probe=1.5),
        _row("rag", "q2", True, True, False, 0.5, em=0, f1=0.8, sim=0.7, unsup=False, ground=0.6, pt=420, probe=2.0),
        _row("rag", "q3", True, False, False, 0.6, f1=0.2, sim=0.1, unsup=True, ground=0.2, pt=380),
        _row("rag", "q4", False, False, True, 0.3, em=1, f1=1.0, unsup=False, pt=390, probe=1.0),
        _row("rag", "q5", False, False, False, 1.2, unsup=True, ground=0.4, pt=410, probe=4.0),
    ]
    lora = [
        _row("lora", "q1", True, False, False, 0.1, unsup=False),
        _row("lora", "q2", True, True, False, 0.1, unsup=False),
        _row("lora", "q3", True, False, True, 0.2, unsup=False),
        _row("lora", "q4", False, False, False, 0.1, unsup=True),
        # q5 missing for lora: McNemar pairs only questions both answered
    ]
    return rag + lora


COSTS = {
    "rag": {"build_seconds": 36.0, "peak_rss_mb": 1500.0, "artifact_mb": 2.5},
    "lora": {"build_seconds": 720.0, "peak_rss_mb": 2500.0, "artifact_mb": 35.0},
}


def test_every_aggregate_recomputed_by_hand():
    out = aggregate(_predictions(), COSTS, usd_per_hour=3.6, bootstrap_samples=500, seed=3)
    assert set(out) == {"methods", "comparisons"}
    rag = out["methods"]["rag"]
    assert rag["n"] == 5 and rag["n_answerable"] == 3
    assert rag["accuracy"] == pytest.approx(2 / 3)
    assert rag["accuracy_ci"] == list(bootstrap_ci([1.0, 1.0, 0.0], 500, 3))
    assert rag["hallucination_rate"] == pytest.approx(2 / 5)  # q3 wrong, q5 answered an unanswerable
    assert rag["hallucination_ci"] == list(bootstrap_ci([0, 0, 1, 0, 1], 500, 3))
    assert rag["abstention_rate"] == pytest.approx(1 / 5)
    assert rag["exact_match"] == pytest.approx((1 + 0 + 0 + 1 + 0) / 5)
    assert rag["f1"] == pytest.approx((1 + 0.8 + 0.2 + 1.0 + 0) / 5)
    assert rag["semantic_sim_mean"] == pytest.approx((0.9 + 0.7 + 0.1) / 3)
    assert rag["unsupported_rate"] == pytest.approx(2 / 5)
    assert rag["groundedness_mean"] == pytest.approx((0.8 + 0.6 + 0.2 + 0.4) / 4)
    assert rag["build_seconds"] == 36.0 and rag["peak_rss_mb"] == 1500.0 and rag["artifact_mb"] == 2.5
    # per-query latency comes from the probe rows only (answered one at a time), never from the batch shares
    assert rag["latency_probe_n"] == 4
    assert rag["latency_p50_s"] == pytest.approx(1.75)
    assert rag["latency_p95_s"] == pytest.approx(2.0 + 0.85 * (4.0 - 2.0))  # linear interpolation at rank 2.85 of [1, 1.5, 2, 4]
    assert rag["latency_p50_s"] < rag["latency_p95_s"]
    assert rag["throughput_qps"] == pytest.approx(1 / 0.6)  # batched: mean batch share 0.6 s per answer
    assert rag["useful_rate"] == pytest.approx(3 / 5)  # q1, q2 right; q4 correctly abstained
    assert rag["abstention_answerable_rate"] == pytest.approx(0.0)
    assert rag["cost_per_correct_usd"] == pytest.approx(0.6 / 1000 / (2 / 3))
    assert rag["prompt_tokens_mean"] == pytest.approx(400.0) and rag["output_tokens_mean"] == pytest.approx(5.0)
    # mean latency 0.6 s at $3.60/h = $0.001/s -> $0.60 per 1k; build 36 s -> $0.036
    assert rag["usd_per_1k_queries"] == pytest.approx(0.6)
    assert rag["usd_build"] == pytest.approx(0.036)

    lora = out["methods"]["lora"]
    assert lora["n"] == 4 and lora["n_answerable"] == 3 and lora["accuracy"] == pytest.approx(1 / 3)
    assert lora["hallucination_rate"] == pytest.approx(2 / 4) and lora["abstention_rate"] == pytest.approx(1 / 4)
    assert lora["semantic_sim_mean"] is None and lora["groundedness_mean"] is None and lora["unsupported_rate"] == pytest.approx(1 / 4)
    assert lora["usd_per_1k_queries"] == pytest.approx(0.125 * 1000 / 3600 * 3.6) and lora["usd_build"] == pytest.approx(0.72)
    assert lora["latency_probe_n"] == 0 and lora["latency_p50_s"] is None and lora["latency_p95_s"] is None  # no probe: not measured
    assert lora["abstention_answerable_rate"] == pytest.approx(1 / 3)

    # McNemar over answerable questions both answered (q1..q3): rag right & lora wrong on q1 (b=1), none the other way.
    assert out["comparisons"]["mcnemar"] == {"rag|lora": mcnemar([True, True, False], [False, True, False])}
    assert out["comparisons"]["mcnemar"]["rag|lora"]["b"] == 1 and out["comparisons"]["mcnemar"]["rag|lora"]["c"] == 0
    # Break-even: 0.036 + 0.0006 q = 0.72 + 0.000125 q -> q = 0.684 / 0.000475
    be = out["comparisons"]["break_even"]["rag|lora"]
    assert be["queries"] == pytest.approx(0.684 / 0.000475)
    assert be["cheaper_upfront"] == "rag" and be["cheaper_per_query"] == "lora"
    json.dumps(out, allow_nan=False)  # plain JSON, no numpy types or NaN


def test_deterministic_for_a_seed():
    rows = [_row("rag", f"q{i}", True, i % 3 == 0, False, 0.1 * i) for i in range(40)]
    costs = {"rag": COSTS["rag"]}
    a = aggregate(rows, costs, 0.1, 300, seed=5)
    assert a == aggregate(rows, costs, 0.1, 300, seed=5)
    assert a["methods"]["rag"]["accuracy_ci"] != aggregate(rows, costs, 0.1, 300, seed=6)["methods"]["rag"]["accuracy_ci"]


def test_method_without_answerable_rows_has_no_accuracy():
    rows = [_row("zero-shot", "u1", False, False, True, 0.1), _row("zero-shot", "u2", False, False, False, 0.1)]
    m = aggregate(rows, {"zero-shot": {"build_seconds": 0.0, "peak_rss_mb": 900.0, "artifact_mb": 0.0}}, 0.1)["methods"]["zero-shot"]
    assert m["accuracy"] is None and m["accuracy_ci"] is None and m["hallucination_rate"] == 0.5


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="no prediction rows"):
        aggregate([], COSTS, 0.1)
    with pytest.raises(ValueError, match="no costs for method 'rag'"):
        aggregate(_predictions(), {"lora": COSTS["lora"]}, 0.1)
    rows = _predictions()
    del rows[2]["correct"]
    with pytest.raises(ValueError, match="row 3: missing correct"):
        aggregate(rows, COSTS, 0.1)
    rows = _predictions()
    rows.append(dict(rows[0]))
    with pytest.raises(ValueError, match="appears twice"):
        aggregate(rows, COSTS, 0.1)


_row_strategy = st.tuples(
    st.booleans(), st.booleans(), st.booleans(), st.floats(0, 5), st.floats(0, 1), st.one_of(st.none(), st.booleans())
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["zero-shot", "rag", "lora"]), _row_strategy), min_size=1, max_size=30), st.integers(0, 10))
def test_rates_always_within_unit_interval(spec, seed):
    rows, seen = [], set()
    for i, (method, (answerable, correct, abstained, latency, f1, unsup)) in enumerate(spec):
        correct = correct and answerable and not abstained
        rows.append(_row(method, f"q{i % 7}-{i}", answerable, correct, abstained, latency, f1=f1, unsup=unsup, probe=latency if i % 2 else None))
        seen.add(method)
    costs = {m: {"build_seconds": 10.0, "peak_rss_mb": 100.0, "artifact_mb": 1.0} for m in seen}
    out = aggregate(rows, costs, 0.5, bootstrap_samples=50, seed=seed)
    for m in out["methods"].values():
        for key in ("accuracy", "hallucination_rate", "abstention_rate", "exact_match", "f1", "unsupported_rate"):
            assert m[key] is None or 0.0 <= m[key] <= 1.0, key
        for key in ("accuracy_ci", "hallucination_ci"):
            if m[key] is not None:
                lo, hi = m[key]
                assert 0.0 <= lo <= hi <= 1.0
        if m["latency_probe_n"]:
            assert m["latency_p50_s"] <= m["latency_p95_s"] + 1e-12
        assert m["useful_rate"] is not None and 0.0 <= m["useful_rate"] <= 1.0
    for res in out["comparisons"]["mcnemar"].values():
        assert 0.0 <= res["p_value"] <= 1.0
