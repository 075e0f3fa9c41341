"""Baselines: the prior's exact rule, oracle-passage's choice of gold chunks, the flag, and never recommending one."""

from __future__ import annotations

import pytest

from workbench.config import ABSTAIN_REPLY, RetrievalConfig
from workbench.decision.recommend import recommend
from workbench.evaluation.scoring import score_answer
from workbench.methods.baselines import (
    OraclePassage,
    Prior,
    baselines_for,
    mark_baselines,
    no_better_than_prior,
    prior_flag_text,
    prior_reply,
)
from workbench.methods.prompt_strategy import StrategyError
from workbench.types import Chunk, Question, Retrieved


def _q(i, answers, split="train", sources=()):
    return Question(f"q{i}", f"What is the religion of person {i}?", list(answers), bool(answers), split, list(sources))


def test_prior_is_the_most_frequent_train_reply_first_seen_wins_ties():
    train = [_q(1, ["Catholic Church"]), _q(2, ["Islam"]), _q(3, ["catholic church."]), _q(4, ["Islam"]), _q(5, [])]
    assert prior_reply(train) == "Catholic Church"  # 2 vs 2 (normalised): seen first
    train += [_q(6, []), _q(7, [])]
    assert prior_reply(train) == ABSTAIN_REPLY  # unanswerable questions are now the largest group
    assert prior_reply([]) == ABSTAIN_REPLY


def test_prior_strategy_answers_every_question_without_a_model():
    prior = Prior([_q(1, ["Catholic Church"]), _q(2, ["Catholic Church"]), _q(3, ["Islam"])])
    answers = prior.answer([_q(10, ["Islam"], "test"), _q(11, [], "test")])
    assert [a.text for a in answers] == ["Catholic Church", "Catholic Church"]
    assert answers[0].meta["prior_support"] == 2 and answers[0].prompt_tokens == 0 and answers[0].latency_s == 0.0
    with pytest.raises(StrategyError, match="train split"):
        Prior([_q(1, ["x"], "test")])


class _Index:
    def __init__(self, chunks):
        self.chunks = chunks

    def search_batch(self, queries, cfg, embedder):
        return [[Retrieved(99, "other.txt", "retrieved text", 0.5, 1)] for _ in queries]


def test_oracle_passage_uses_the_gold_documents_best_chunks():
    chunks = [
        Chunk(0, "a.txt", "Paul lived in Montreal.", 0, 10),
        Chunk(1, "a.txt", "Paul was ordained a Catholic Church priest.", 10, 20),
        Chunk(2, "b.txt", "Islam is practised by many.", 0, 10),
        Chunk(3, "a.txt", "Religion of person 1 is discussed here.", 20, 30),
    ]
    oracle = OraclePassage(None, _Index(chunks), RetrievalConfig(top_k=2))
    hits = oracle._hits([_q(1, ["Catholic Church"], "test", ["a.txt"]), _q(2, [], "test")])
    assert [h.chunk_id for h in hits[0]] == [1, 3]  # the chunk with the answer, then the most question words; only a.txt
    assert [h.chunk_id for h in hits[1]] == [99]  # no gold source: the ordinary retrieval


def test_baselines_for_adds_oracle_only_with_retrieval_and_sources():
    held = [_q(1, ["x"], "test", ["a.txt"])]
    assert baselines_for(["zero-shot", "rag"], held) == (["prior", "oracle-passage"], [])
    added, notes = baselines_for(["zero-shot"], held)
    assert added == ["prior"] and "no retrieval method" in notes[0]
    added, notes = baselines_for(["rag"], [_q(1, ["x"], "test")])
    assert added == ["prior"] and "no gold sources" in notes[0]


def _metrics():
    m = {
        "prior": {"accuracy": 0.41, "accuracy_ci": [0.24, 0.59]},
        "lora": {"accuracy": 0.45, "accuracy_ci": [0.28, 0.62]},
        "rag": {"accuracy": 0.70, "accuracy_ci": [0.52, 0.86]},
    }
    for v in m.values():
        v.update({"hallucination_rate": 1 - v["accuracy"], "latency_p95_s": 0.1, "usd_per_1k_queries": 0.01, "build_seconds": 0.0, "n_answerable": 29})
    return {"methods": m, "comparisons": {"mcnemar": {}, "break_even": {}}, "corpus": {"kind": "facts", "n_train": 100}}


def test_methods_within_the_priors_interval_are_flagged():
    metrics = _metrics()
    mark_baselines(metrics, ["oracle-passage skipped: x"])
    assert metrics["methods"]["prior"]["baseline"] is True and metrics["methods"]["lora"]["baseline"] is False
    assert metrics["methods"]["lora"]["no_better_than_prior"] is True
    assert metrics["methods"]["rag"]["no_better_than_prior"] is False
    assert not no_better_than_prior(metrics, "prior")
    assert prior_flag_text(metrics, "lora") == "no better than the prior (its 95% CI 24%-59%)"
    assert metrics["baselines"] == {"methods": ["prior"], "notes": ["oracle-passage skipped: x"]}


def test_a_baseline_is_never_recommended():
    metrics = _metrics()
    metrics["methods"]["prior"].update({"accuracy": 0.99, "hallucination_rate": 0.0, "latency_p95_s": 0.0, "usd_per_1k_queries": 0.0})
    mark_baselines(metrics, [])
    rec = recommend(metrics)
    assert rec["best"] != "prior" and "prior" not in [r["method"] for r in rec["ranked"]]


def _run_folder(tmp_path):
    from workbench.evaluation.aggregate import aggregate
    from workbench.storage import atomic_write_json, atomic_write_jsonl

    rows = []
    for i in range(30):
        gold = ["Catholic Church", "Church"] if i < 12 else [f"Faith {i}"]
        for method, answer in (("prior", "Catholic Church"), ("lora", "Catholic Church" if i < 14 else "Islam"), ("rag", gold[0] if i < 27 else "x")):
            s = score_answer(answer, gold, True, f"What is the religion of person {i}?")
            rows.append({"method": method, "question_id": f"q{i}", "question": f"What is the religion of person {i}?", "gold": gold,
                         "answerable": True, "answer": answer, "contexts": [], "latency_s": 0.1, "prompt_tokens": 10, "output_tokens": 2, **s})
    metrics = aggregate(rows, {m: {"build_seconds": 0.0} for m in ("prior", "lora", "rag")}, 0.1, 200, 0)
    mark_baselines(metrics, ["oracle-passage skipped: the held-out questions name no gold sources"])
    metrics["recommendation"] = recommend(metrics)
    metrics["usd_per_hour"] = 0.1
    atomic_write_json(tmp_path / "metrics.json", metrics)
    atomic_write_jsonl(tmp_path / "predictions.jsonl", rows)
    return tmp_path, metrics


def test_reports_flag_methods_within_the_prior_and_explain_the_figures(tmp_path):
    from workbench.reports.export import render_csv, render_markdown
    from workbench.reports.html import render_html

    run_dir, metrics = _run_folder(tmp_path)
    assert metrics["methods"]["lora"]["no_better_than_prior"] and not metrics["methods"]["rag"]["no_better_than_prior"]
    assert metrics["recommendation"]["best"] == "rag"
    md = render_markdown(run_dir)
    board = md.split("## Scoreboard", 1)[1].split("\n## ", 1)[0].splitlines()
    lora_row = next(line for line in board if line.startswith("| LoRA |"))
    assert "no better than the prior" in lora_row
    assert "no better than the prior" not in next(line for line in board if line.startswith("| RAG |"))
    assert "| baseline |" in next(line for line in board if line.startswith("| Prior (baseline) |"))
    assert "SQuAD v2 convention" in md and "oracle-passage skipped" in md
    assert '(correct: equals "Catholic Church")' in md  # the why of each judgement beside the answer
    html = render_html(run_dir)
    assert "no better than the prior" in html and "SQuAD v2 convention" in html and "equals &quot;Catholic Church&quot;" in html
    header = render_csv(run_dir).splitlines()[0].split(",")
    assert "match" in header and "why" in header
