"""The quality floor, cost materiality and consistency of the decision, on metrics aggregated from prediction rows.

Two realistic shapes: the bundled fact corpus (RAG about 67%, closed-book methods 0%) and a SQuAD 2.0 style
set with unanswerable questions (few-shot 0% accuracy but only 34% hallucination because it mostly abstains,
RAG 57%). Weights are swept over a grid that includes cost=1.0 and hallucination=1.0.
"""

from __future__ import annotations

import itertools
import json

import pytest

from workbench.cli.main import main as cli_main
from workbench.decision.criteria import Criteria
from workbench.decision.recommend import FAVOURED, NONE_GOOD_ENOUGH, recommend
from workbench.evaluation.aggregate import aggregate
from workbench.methods.registry import label
from workbench.reports.charts import decision_path_dot
from workbench.storage import atomic_write_json

GRID = [0.0, 0.25, 0.5, 1.0]
WEIGHTS = [dict(zip(("accuracy", "hallucination", "cost", "latency"), w, strict=True)) for w in itertools.product(GRID, repeat=4) if any(w)]
SITUATIONS = [{}, {"needs_citations": True}, {"data_changes": "daily"}, {"knowledge_type": "behaviour", "format_matters": True},
              {"monthly_queries": 5_000_000}, {"budget_usd_month": 1.0}, {"latency_budget_s": 0.5}]


def _rows(method: str, outcomes: list[str], answerable: list[bool], latency: float) -> list[dict]:
    """Prediction rows from outcomes per question: "right", "wrong" (confident) or "idk" (abstained)."""
    rows = []
    for i, (o, ans) in enumerate(zip(outcomes, answerable, strict=True)):
        rows.append({
            "method": method, "question_id": f"q{i}", "answerable": ans, "correct": o == "right", "abstained": o == "idk",
            "hallucinated": o == "wrong", "exact_match": int(o == "right"), "f1": float(o == "right"), "prompt_tokens": 300,
            "output_tokens": 8, "latency_s": latency, "latency_probe_s": latency * 3 * (1 + 0.1 * (i % 4)) if i < 8 else None,
        })  # fmt: skip
    return rows


def _metrics(spec: dict[str, tuple[list[str], float, float]], answerable: list[bool], kind: str = "facts") -> dict:
    rows, costs = [], {}
    for method, (outcomes, latency, build_s) in spec.items():
        rows += _rows(method, outcomes, answerable, latency)
        costs[method] = {"build_seconds": build_s, "peak_rss_mb": 1500.0, "artifact_mb": 1.0}
    metrics = aggregate(rows, costs, usd_per_hour=0.10, bootstrap_samples=300, seed=0)
    metrics["corpus"] = {"name": "x", "kind": kind, "n_docs": 10, "n_questions": 90, "n_train": 60, "n_test_evaluated": len(answerable)}
    metrics["retrieval"] = {"recall@3": 0.7}
    metrics["usd_per_hour"] = 0.10
    return metrics


def fact_corpus() -> dict:
    """kestrel_labs-like: 30 answerable questions, RAG 20/30 right, zero- and few-shot none, LoRA 1/30."""
    n = 30
    answerable = [True] * n
    rag = ["right"] * 20 + ["wrong"] * 6 + ["idk"] * 4
    return _metrics({
        "zero-shot": (["idk"] * 12 + ["wrong"] * 18, 0.6, 0.0),
        "few-shot": (["idk"] * 25 + ["wrong"] * 5, 0.9, 0.0),
        "rag": (rag, 1.9, 30.0),
        "lora": (["right"] + ["wrong"] * 20 + ["idk"] * 9, 0.6, 900.0),
    }, answerable)  # fmt: skip


def squad_style() -> dict:
    """SQuAD 2.0-like: 30 answerable + 20 unanswerable; few-shot 0% accuracy, 34% hallucination (mostly abstains); RAG 57%."""
    answerable = [True] * 30 + [False] * 20
    few = ["idk"] * 23 + ["wrong"] * 7 + ["wrong"] * 10 + ["idk"] * 10  # 17/50 = 34% hallucinated, 0 right
    rag = ["right"] * 17 + ["wrong"] * 9 + ["idk"] * 4 + ["idk"] * 12 + ["wrong"] * 8  # 17/30 = 57%
    zero = ["right"] * 2 + ["wrong"] * 20 + ["idk"] * 8 + ["wrong"] * 15 + ["idk"] * 5
    # $0.08 vs $0.27 a month at 10,000 queries: 0.288 s vs 0.972 s of compute per answer at $0.10/h
    return _metrics({"zero-shot": (zero, 0.25, 0.0), "few-shot": (few, 0.288, 0.0), "rag": (rag, 0.972, 20.0)}, answerable)


def nothing_works() -> dict:
    answerable = [True] * 30
    return _metrics({"zero-shot": (["idk"] * 28 + ["wrong"] * 2, 0.5, 0.0), "few-shot": (["right"] * 2 + ["idk"] * 28, 0.7, 0.0),
                     "rag": (["right"] * 3 + ["wrong"] * 17 + ["idk"] * 10, 1.5, 30.0)}, answerable)


def _violates_floor(metrics: dict, best: str, tolerance: float = 0.05, significance: float = 0.05) -> bool:
    """Independent check: is ``best`` significantly less accurate than the most accurate method by more than the tolerance?"""
    methods = {m: v for m, v in metrics["methods"].items() if not v.get("baseline")}
    top = max(methods, key=lambda m: methods[m]["accuracy"] or 0.0)
    if best == top:
        return False
    gap = methods[top]["accuracy"] - methods[best]["accuracy"]
    table = metrics["comparisons"]["mcnemar"]
    p = (table.get(f"{best}|{top}") or table.get(f"{top}|{best}"))["p_value"]
    return gap > tolerance + 1e-9 and p < significance


@pytest.mark.parametrize("make", [fact_corpus, squad_style], ids=["fact-corpus", "squad-style"])
def test_no_weights_recommend_a_method_significantly_less_accurate_than_the_best(make):
    metrics = make()
    seen = set()
    for situation in SITUATIONS:
        for w in WEIGHTS:
            rec = recommend(metrics, situation, w)
            assert rec["best"] is not None
            assert not _violates_floor(metrics, rec["best"]), (situation, w, rec["best"])
            seen.add(rec["best"])
    assert seen == {"rag"}  # everything else is far below RAG: zero-shot 0%, few-shot 0%, LoRA 3%


def test_squad_style_abstaining_is_not_a_free_win_and_cents_do_not_swing_it():
    metrics = squad_style()
    few, rag = metrics["methods"]["few-shot"], metrics["methods"]["rag"]
    assert few["accuracy"] == 0 and few["hallucination_rate"] == pytest.approx(0.34) and rag["accuracy"] == pytest.approx(17 / 30)
    rec = recommend(metrics)
    assert rec["best"] == "rag" and rec["summary"].startswith("Use RAG")
    assert any("below the 20% minimum" in x for x in rec["ineligible"]["few-shot"])
    assert any("significantly less accurate than RAG" in x for x in rec["ineligible"]["few-shot"])
    costs = rec["costs"]
    assert costs["few-shot"]["total"] == pytest.approx(0.08, abs=0.005) and costs["rag"]["total"] == pytest.approx(0.27, abs=0.01)
    entries = {r["method"]: r for r in rec["ranked"]}
    assert entries["few-shot"]["breakdown"]["cost"] == entries["rag"]["breakdown"]["cost"]  # $0.19 a month is no lead
    # the hallucination weight scores net useful answers: abstaining on answerable questions earns nothing
    only_h = {r["method"]: r for r in recommend(metrics, weights={"accuracy": 0, "hallucination": 1, "cost": 0, "latency": 0})["ranked"]}
    assert only_h["rag"]["breakdown"]["hallucination"] > only_h["few-shot"]["breakdown"]["hallucination"]
    # no reason claims a significance that points the other way
    assert not any("Few-shot is significantly more accurate" in x for x in rec["reasons"])


def test_material_cost_differences_still_count():
    metrics = squad_style()
    opened = {"min_accuracy": 0.0, "accuracy_tolerance": 1.0}  # let few-shot compete, to see the cost term alone
    big = {r["method"]: r for r in recommend(metrics, {**opened, "monthly_queries": 50_000_000})["ranked"]}  # $400 vs $1,350 a month
    small = {r["method"]: r for r in recommend(metrics, opened)["ranked"]}  # $0.08 vs $0.27
    assert big["few-shot"]["breakdown"]["cost"] > big["rag"]["breakdown"]["cost"]
    assert small["few-shot"]["breakdown"]["cost"] == small["rag"]["breakdown"]["cost"]
    assert recommend(metrics, {"monthly_queries": 50_000_000})["best"] == "rag"  # with the floor few-shot loses whatever it costs


def test_none_good_enough_names_no_winner_and_says_what_would_help():
    metrics = nothing_works()
    for w in WEIGHTS[::7]:
        rec = recommend(metrics, None, w)
        assert rec["best"] is None and rec["eligible"] == []
        assert rec["summary"].startswith("No recommendation:") and NONE_GOOD_ENOUGH in rec["summary"] and "Use " not in rec["summary"]
        assert rec["advice"] and any("retrieval finds the passage" in a for a in rec["advice"])
        assert rec["decision_path"][-1]["leads_to"] == "no recommendation"
        assert all(not r["eligible"] and r["ineligible_because"] for r in rec["ranked"])
    # lowering the floor is the team's call, and then there is a winner
    lowered = recommend(metrics, {"min_accuracy": 0.05, "accuracy_tolerance": 0.1})
    assert lowered["best"] in ("few-shot", "rag") and lowered["summary"].startswith("Use ")


def test_prior_baseline_is_never_a_candidate_and_must_be_beaten():
    metrics = fact_corpus()
    n = 30
    prior_rows = _rows("prior", ["right"] * 19 + ["wrong"] * 11, [True] * n, 0.0)
    rag_rows = _rows("rag", ["right"] * 20 + ["wrong"] * 6 + ["idk"] * 4, [True] * n, 1.9)
    from workbench.evaluation.aggregate import paired_mcnemar

    metrics["methods"]["prior"] = {**aggregate(prior_rows, {"prior": {"build_seconds": 0}}, 0.1)["methods"]["prior"], "baseline": True}
    metrics["comparisons"]["mcnemar"]["rag|prior"] = paired_mcnemar(rag_rows, prior_rows)
    rec = recommend(metrics)
    assert "prior" not in [r["method"] for r in rec["ranked"]] and "prior" in rec["baselines"]
    assert rec["best"] is None  # RAG 67% is not significantly better than always answering the prior (63%)
    assert any("not significantly better than the prior baseline" in x for x in rec["ineligible"]["rag"])


def _contradictions(rec: dict, metrics: dict) -> list[str]:
    out = []
    best, path = rec["best"], rec["decision_path"]
    if best is None:
        if not rec["summary"].startswith("No recommendation") or path[-1]["leads_to"] != "no recommendation":
            out.append("no winner but the headline or path names one")
    else:
        if not rec["summary"].startswith(f"Use {label(best)} "):
            out.append("headline names another method")
        if path[-1]["leads_to"] != label(best) or rec["ranked"][0]["method"] != best or best not in rec["eligible"]:
            out.append("path, ranking or eligibility end elsewhere")
        kind = rec["inputs"]["criteria"]["knowledge_type"]
        if (best in FAVOURED[kind]) == ("outweighed" in path[1]["leads_to"]):
            out.append(f"the facts/behaviour step says {path[1]['leads_to']!r} while {best} wins")
        for x in rec["reasons"]:
            if "significantly less accurate" in x or "not eligible" in x:
                out.append(f"a reason of the winner argues against it: {x}")
            for other in metrics["methods"]:
                if f"{label(best)} is significantly more accurate than {label(other)}" in x:
                    if metrics["methods"][best]["accuracy"] <= metrics["methods"][other]["accuracy"]:
                        out.append(f"claims a significance in the wrong direction: {x}")
        if not any(x.startswith("passes the quality floor") for x in rec["reasons"]):
            out.append("the winner's reasons do not say it passed the floor")
    dot = decision_path_dot(path)
    last = next(line for line in dot.splitlines() if line.startswith(f"n{len(path) - 1} ["))
    if (label(best) if best else "no recommendation") not in last.replace("\\n", " "):
        out.append(f"the diagram ends in {last!r}")
    eligible_text = path[0]["leads_to"]
    if any((label(m) in eligible_text.split(": ", 1)[-1].split(", ")) != (m in rec["eligible"]) for m in metrics["methods"] if not metrics["methods"][m].get("baseline")):
        out.append(f"the floor step {eligible_text!r} disagrees with eligible {rec['eligible']}")
    return out


@pytest.mark.parametrize("make", [fact_corpus, squad_style, nothing_works], ids=["fact-corpus", "squad-style", "none"])
def test_decision_path_reasons_and_headline_never_contradict(make):
    metrics = make()
    for situation in SITUATIONS:
        for w in WEIGHTS[::3]:
            rec = recommend(metrics, situation, w)
            assert not _contradictions(rec, metrics), (situation, w, _contradictions(rec, metrics))


def test_contradiction_check_catches_an_outweighed_family():
    """LoRA wins on a fact corpus: the facts step must say the measurements outweighed it."""
    metrics = fact_corpus()
    metrics["methods"]["lora"].update(accuracy=0.9, accuracy_ci=[0.8, 0.97], hallucination_rate=0.05, useful_rate=0.9)
    rec = recommend(metrics)
    assert rec["best"] == "lora"
    assert "outweighed by the measurements (LoRA scores higher)" in rec["decision_path"][1]["leads_to"]
    assert not _contradictions(rec, metrics)


def _run_dir(tmp_path, metrics):
    run = tmp_path / "run"
    run.mkdir()
    atomic_write_json(run / "metrics.json", metrics)
    return run


def test_cli_decide_prints_json_with_the_contract_keys(tmp_path, capsys):
    metrics = squad_style()
    run = _run_dir(tmp_path, metrics)
    assert cli_main(["decide", str(run), "--weights", "accuracy=0,hallucination=0,cost=1,latency=0", "--criteria", "monthly_queries=20000",
                     "needs_citations=yes", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"best", "eligible", "ranked", "reasons"} <= set(out)
    expected = recommend(metrics, {"monthly_queries": 20000, "needs_citations": True}, {"accuracy": 0, "hallucination": 0, "cost": 1, "latency": 0})
    assert json.dumps(out, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert out["best"] == "rag" and out["inputs"]["criteria"]["needs_citations"] is True


def test_cli_decide_text_and_errors(tmp_path, capsys):
    run = _run_dir(tmp_path, nothing_works())
    assert cli_main(["decide", str(run)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("No recommendation:") and "what would help:" in text and "eligible" in text
    assert cli_main(["decide", str(run), "--criteria", "speed=3"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown criteria field(s) speed") and "\n" not in err
    assert cli_main(["decide", str(run), "--weights", "accuracy"]) == 2
    assert "use key=value" in capsys.readouterr().err
    assert cli_main(["decide", str(tmp_path / "missing")]) == 2
    assert "not a finished run folder" in capsys.readouterr().err


def test_criteria_validation():
    with pytest.raises(ValueError, match="min_accuracy must be a share"):
        Criteria(min_accuracy=20)
    with pytest.raises(ValueError, match="significance"):
        Criteria(significance=0)
