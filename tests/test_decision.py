"""Decision rules: one test per rule, each showing the ranking or the reasons move as the rule says."""

from __future__ import annotations

import copy
import json

import pytest

from workbench.decision.criteria import Criteria, DecisionError, Weights
from workbench.decision.recommend import recommend


def _method(acc, ci, hall, hci, *, per_1k=0.01, build=0.0, p95=1.0, em=None, n=40, unsupported=None):
    return {
        "n": n + 5, "n_answerable": n, "accuracy": acc, "accuracy_ci": list(ci), "hallucination_rate": hall, "hallucination_ci": list(hci),
        "abstention_rate": 0.1, "exact_match": acc if em is None else em, "f1": acc, "semantic_sim_mean": None,
        "unsupported_rate": unsupported, "groundedness_mean": None, "build_seconds": build * 36000, "latency_p50_s": p95 * 0.8,
        "latency_p95_s": p95, "prompt_tokens_mean": 300, "output_tokens_mean": 12, "peak_rss_mb": 1500, "artifact_mb": 5,
        "usd_per_1k_queries": per_1k, "usd_build": build,
    }


def make_metrics(kind="facts", n_train=120):
    """A plausible fact-corpus run: RAG clearly best, LoRA close to few-shot."""
    methods = {
        "zero-shot": _method(0.15, (0.05, 0.25), 0.55, (0.42, 0.68), per_1k=0.008, p95=0.9),
        "few-shot": _method(0.30, (0.18, 0.43), 0.45, (0.32, 0.58), per_1k=0.012, p95=1.2),
        "rag": _method(0.71, (0.64, 0.78), 0.09, (0.04, 0.15), per_1k=0.020, build=0.002, p95=1.8, unsupported=0.05),
        "lora": _method(0.22, (0.16, 0.29), 0.48, (0.35, 0.60), per_1k=0.008, build=0.02, p95=0.9),
        "rag+lora": _method(0.66, (0.58, 0.74), 0.12, (0.06, 0.19), per_1k=0.020, build=0.022, p95=1.8),
    }
    return {
        "methods": methods,
        "comparisons": {"mcnemar": {"rag|rag+lora": {"p_value": 0.31, "b": 6, "c": 4}, "rag|lora": {"p_value": 0.0001, "b": 20, "c": 1}}},
        "corpus": {"name": "kestrel_labs", "kind": kind, "n_docs": 30, "n_questions": 160, "n_train": n_train, "n_test_evaluated": 40},
        "usd_per_hour": 0.10,
    }


def _lora_slightly_ahead(metrics):
    """LoRA a little ahead of RAG overall (76 vs 74 points), same cost and latency."""
    metrics["methods"]["lora"].update(
        accuracy=0.85, accuracy_ci=[0.78, 0.91], hallucination_rate=0.05, latency_p95_s=1.8, usd_per_1k_queries=0.02, usd_build=0.002
    )


# The situational rules below are tested with the quality floor and the materiality thresholds opened up,
# so every method competes and a cent still counts; the floor has its own tests in test_decision_floor.py.
OPEN = {"min_accuracy": 0.0, "accuracy_tolerance": 1.0, "cost_materiality_usd": 0.0, "latency_materiality_s": 0.0}


def _open(**kw):
    return Criteria(**{**OPEN, **kw})


def _rank(rec):
    return [r["method"] for r in rec["ranked"]]


def _entry(rec, method):
    return next(r for r in rec["ranked"] if r["method"] == method)


def test_shape_and_measured_numbers_quoted():
    rec = recommend(make_metrics())
    assert rec["best"] == "rag"
    assert set(_rank(rec)) == {"zero-shot", "few-shot", "rag", "lora", "rag+lora"}
    top = rec["ranked"][0]
    assert top["reasons"][0] == "RAG: 71% [64-78] vs RAG+LoRA 66% [58-74] accuracy on 40 held-out questions; hallucination 9% vs 12%"
    assert abs(top["score"] - sum(top["breakdown"].values())) < 0.05
    assert "71%" in rec["summary"] and rec["summary"].startswith("Use RAG")
    assert [s["question"] for s in rec["decision_path"]] == [
        "Which methods answer well enough?", "Facts or behaviour?", "Does the data change?", "Are citations / traceability needed?",
        "Labelled examples available?", "Which eligible method scores highest with your weights?"]
    assert rec["decision_path"][0]["leads_to"] == "eligible: RAG, RAG+LoRA"
    assert rec["decision_path"][1]["leads_to"] == "favours the RAG family (+5)"
    assert rec["decision_path"][-1]["leads_to"] == "RAG"
    assert rec["eligible"] == ["rag", "rag+lora"] and set(rec["ineligible"]) == {"zero-shot", "few-shot", "lora"}
    assert rec["inputs"]["criteria"]["labelled_examples"] == 120  # default: train split size
    assert rec["inputs"]["criteria"]["knowledge_type"] == "facts"  # default: corpus kind
    json.dumps(rec)  # JSON-able


def test_deterministic_and_input_not_mutated():
    metrics = make_metrics()
    before = copy.deepcopy(metrics)
    a = recommend(metrics, Criteria(needs_citations=True, data_changes="weekly"), Weights(1, 1, 1, 1))
    b = recommend(copy.deepcopy(metrics), {"needs_citations": True, "data_changes": "weekly"}, {"accuracy": 1, "hallucination": 1, "cost": 1, "latency": 1})
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    assert metrics == before


def test_weights_accuracy_vs_cost_change_ranking():
    metrics = make_metrics()
    assert recommend(metrics, weights=Weights(accuracy=1, hallucination=0, cost=0, latency=0))["best"] == "rag"
    cheap = recommend(metrics, _open(), Weights(accuracy=0, hallucination=0, cost=1, latency=0))
    assert cheap["best"] in ("zero-shot", "lora") and _rank(cheap)[0] != "rag"
    floored = recommend(metrics, weights=Weights(accuracy=0, hallucination=0, cost=1, latency=0))  # the floor keeps the cheap ones out
    assert floored["best"] in ("rag", "rag+lora")
    assert abs(sum(recommend(metrics)["inputs"]["weights"].values()) - 1) < 1e-9  # normalised


def test_hallucination_weight_prefers_fewer_confident_errors():
    metrics = make_metrics()
    metrics["methods"]["few-shot"].update(accuracy=0.30, hallucination_rate=0.05)
    metrics["methods"]["zero-shot"].update(accuracy=0.32, hallucination_rate=0.60)
    rec = recommend(metrics, _open(), Weights(accuracy=0.2, hallucination=0.8, cost=0, latency=0))
    assert _rank(rec).index("few-shot") < _rank(rec).index("zero-shot")
    rec = recommend(metrics, _open(), Weights(accuracy=1, hallucination=0, cost=0, latency=0))
    assert _rank(rec).index("zero-shot") < _rank(rec).index("few-shot")


def test_latency_weight_prefers_faster():
    metrics = make_metrics()
    metrics["methods"]["rag"]["latency_p95_s"] = 9.0
    only_latency = recommend(metrics, _open(), Weights(accuracy=0, hallucination=0, cost=0, latency=1))
    assert _entry(only_latency, "rag")["breakdown"]["latency"] == pytest.approx(100 * 0.9 / 9.0)
    assert _rank(only_latency)[-1] == "rag"


def test_rule_knowledge_type_facts_vs_behaviour():
    metrics = make_metrics()
    facts = recommend(metrics, _open(knowledge_type="facts"))
    behaviour = recommend(metrics, _open(knowledge_type="behaviour"))
    assert _entry(facts, "rag")["breakdown"]["knowledge_type"] == 5
    assert "knowledge_type" not in _entry(facts, "lora")["breakdown"]
    assert _entry(behaviour, "lora")["breakdown"]["knowledge_type"] == 5
    assert _entry(behaviour, "few-shot")["score"] > _entry(facts, "few-shot")["score"]
    assert behaviour["decision_path"][1]["leads_to"].startswith("favours fine-tuning (LoRA) or few-shot (+5)")
    # default from the corpus kind
    assert recommend(make_metrics(kind="behaviour"))["inputs"]["criteria"]["knowledge_type"] == "behaviour"


def test_rule_frequent_data_changes_penalise_adapters():
    metrics = make_metrics()
    # make LoRA the winner on a static corpus
    metrics["methods"]["lora"].update(accuracy=0.74, accuracy_ci=[0.66, 0.81], hallucination_rate=0.08)
    static = recommend(metrics, Criteria(data_changes="static"))
    daily = recommend(metrics, Criteria(data_changes="daily"))
    assert static["best"] == "lora"
    assert daily["best"] != "lora"
    assert _entry(daily, "lora")["breakdown"]["data_changes"] == -15.0
    assert _entry(daily, "rag+lora")["breakdown"]["data_changes"] == -7.5  # retrieval still sees new documents
    assert "data_changes" not in _entry(daily, "rag")["breakdown"]
    assert any("needs retraining" in r for r in _entry(daily, "lora")["reasons"])
    # refreshes add to monthly cost: daily retraining of a $0.02 build is $0.60/month
    assert any("+ $0.60 refreshes" in r for r in _entry(daily, "lora")["reasons"])


def test_rule_freshness_measurement_scales_the_penalty():
    metrics = make_metrics()
    metrics["freshness"] = {"lora": {"retrain_seconds": 36.0, "stale_accuracy": 0.11}}  # accuracy halves before retraining
    rec = recommend(metrics, Criteria(data_changes="daily"))
    assert _entry(rec, "lora")["breakdown"]["data_changes"] == -7.5
    assert any("measured accuracy on changed facts before retraining 11% vs 22%" in r for r in _entry(rec, "lora")["reasons"])
    assert any("+ $0.03 refreshes" in r for r in _entry(rec, "lora")["reasons"])  # 30 x 36 s at $0.10/h


def test_rule_citations_favour_retrieval():
    metrics = make_metrics()
    _lora_slightly_ahead(metrics)
    without = recommend(metrics, _open(needs_citations=False))
    with_c = recommend(metrics, _open(needs_citations=True))
    assert without["best"] == "lora"
    assert with_c["best"] == "rag"
    assert _entry(with_c, "rag")["breakdown"]["citations"] == 8
    assert any("cannot point to sources" in c for c in _entry(with_c, "lora")["caveats"])
    assert any("5% of answers had unsupported claims" in r for r in _entry(with_c, "rag")["reasons"])


def test_rule_format_matters_only_when_measured_better():
    metrics = make_metrics(kind="behaviour")
    metrics["methods"]["lora"]["exact_match"] = 0.80  # best format adherence
    metrics["methods"]["few-shot"]["exact_match"] = 0.10  # worse than RAG's 0.71
    off = recommend(metrics, _open(format_matters=False))
    on = recommend(metrics, _open(format_matters=True))
    assert _entry(on, "lora")["breakdown"]["format"] == 6
    assert _entry(on, "lora")["score"] == pytest.approx(_entry(off, "lora")["score"] + 6)
    assert "format" not in _entry(on, "few-shot")["breakdown"]
    assert any("measured no better on exact match (10% vs 71%)" in r for r in _entry(on, "few-shot")["reasons"])
    assert any("exact match 80% vs 71%" in r for r in _entry(on, "lora")["reasons"])


def test_rule_few_labelled_examples_penalise_lora():
    metrics = make_metrics()
    _lora_slightly_ahead(metrics)
    many = recommend(metrics, _open(labelled_examples=200))
    few = recommend(metrics, _open(labelled_examples=20))
    assert many["best"] == "lora" and few["best"] != "lora"
    assert _entry(few, "lora")["breakdown"]["labelled_examples"] == -8
    assert "labelled_examples" not in _entry(few, "rag")["breakdown"]
    assert few["decision_path"][4]["leads_to"].startswith("few-shot rather than LoRA")
    # the default comes from the train split size
    assert "labelled_examples" in _entry(recommend(make_metrics(n_train=30)), "lora")["breakdown"]


def test_rule_latency_budget():
    metrics = make_metrics()
    metrics["methods"]["few-shot"].update(accuracy=0.60, hallucination_rate=0.15)  # a good runner-up
    assert recommend(metrics, _open())["best"] == "rag"
    rec = recommend(metrics, _open(latency_budget_s=1.5))
    assert _entry(rec, "rag")["breakdown"]["latency_budget"] == -15
    assert "latency_budget" not in _entry(rec, "lora")["breakdown"]
    assert any("exceeds the 1.50 s budget" in r for r in _entry(rec, "rag")["reasons"])
    assert rec["best"] == "few-shot"


def test_rule_cost_budget():
    metrics = make_metrics()
    metrics["methods"]["few-shot"].update(accuracy=0.60, hallucination_rate=0.15)
    assert recommend(metrics, _open())["best"] == "rag"
    rec = recommend(metrics, _open(budget_usd_month=0.15, monthly_queries=10_000))  # RAG: $0.20/month
    assert _entry(rec, "rag")["breakdown"]["cost_budget"] == -15
    assert "cost_budget" not in _entry(rec, "zero-shot")["breakdown"]
    assert rec["best"] == "few-shot"


def test_monthly_queries_change_relative_cost():
    metrics = make_metrics()
    # LoRA: expensive build, cheap per query -> relatively cheaper at high volume
    low = _entry(recommend(metrics, _open(monthly_queries=100)), "lora")["breakdown"]["cost"]
    high = _entry(recommend(metrics, _open(monthly_queries=10_000_000)), "lora")["breakdown"]["cost"]
    assert high > low


def test_caveat_on_overlapping_intervals_and_mcnemar():
    rec = recommend(make_metrics())
    caveats = rec["ranked"][0]["caveats"]
    assert "accuracy intervals overlap: RAG [64-78] vs RAG+LoRA [58-74]" in caveats
    assert "RAG and RAG+LoRA are not significantly different in accuracy (p = 0.31, McNemar)" in caveats
    assert "close call with RAG+LoRA" in rec["summary"]


def test_no_caveat_when_clearly_separated():
    metrics = make_metrics()
    for name in ("rag+lora", "few-shot", "zero-shot"):
        del metrics["methods"][name]
    rec = recommend(metrics)
    assert _rank(rec) == ["rag", "lora"]
    assert not any("overlap" in c or "significantly" in c for c in rec["ranked"][0]["caveats"])
    assert "RAG is significantly more accurate than LoRA (p < 0.001, McNemar)" in rec["ranked"][0]["reasons"]
    assert "close call" not in rec["summary"]


def test_small_sample_caveat():
    metrics = make_metrics()
    for m in metrics["methods"].values():
        m["n_answerable"] = 12
    assert any("only 12 answerable" in c for c in recommend(metrics)["ranked"][0]["caveats"])


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(DecisionError, match="no measured methods"):
        recommend({"methods": {}})
    with pytest.raises(DecisionError, match="data_changes 'hourly'"):
        Criteria(data_changes="hourly")
    with pytest.raises(DecisionError, match="all weights are 0"):
        Weights(0, 0, 0, 0)
    with pytest.raises(DecisionError, match="must be >= 0"):
        Weights(accuracy=-1)
    with pytest.raises(DecisionError, match="unknown criteria field"):
        recommend(make_metrics(), {"speed": 1})


def test_missing_measurement_scores_zero_with_caveat():
    metrics = make_metrics()
    metrics["methods"]["lora"]["latency_p95_s"] = None
    entry = _entry(recommend(metrics), "lora")
    assert entry["breakdown"]["latency"] == 0
    assert any("p95 latency was not measured" in c for c in entry["caveats"])
