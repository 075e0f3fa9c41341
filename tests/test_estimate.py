"""Run-duration estimates: the fallback speed, speeds measured by a finished run, the live ETA, the answering heartbeat."""

from __future__ import annotations

import dataclasses
import time

import pytest

from workbench.config import EvalConfig, build_config
from workbench.pipeline.estimate import (
    FALLBACK,
    estimate_run,
    measured_speed,
    prompt_tokens,
    record_speed,
    remaining_s,
    time_progress,
    training_seconds,
    training_tokens,
)
from workbench.pipeline.examples import copy_example, example_for, example_label, list_examples
from workbench.pipeline.run import Heartbeat
from workbench.storage import atomic_write_json


def _config(tmp_path, preset="demo", methods=("zero-shot", "few-shot", "rag"), questions=None):
    overrides = {"eval": {"max_questions": questions}} if questions else None
    return build_config(str(tmp_path / "corpus"), preset, overrides=overrides, methods=list(methods), model="qwen2.5-0.5b")


def test_estimate_uses_the_fallback_until_a_run_measured_this_machine(tmp_path):
    cfg = _config(tmp_path)
    cold = estimate_run(cfg, n_docs=50, n_train=140, n_test=117)
    assert not cold["measured"] and cold["questions"] == 12
    assert set(cold["stages"]) == {"corpus", "model", "index", "answer", "score"}  # no training without a LoRA method
    assert cold["stages"]["index"] == pytest.approx(50 / FALLBACK["index_docs_per_s"])

    # a finished run that answered 2 methods x 8 questions (4 of them again alone) in 40 s at 100 prompt tokens each
    preds = [{"method": m, "prompt_tokens": 100, "cached": False, "latency_probe_s": 0.5 if i < 4 else None} for m in ("zero-shot", "rag") for i in range(8)]
    metrics = {"methods": {"zero-shot": {"prompt_tokens_mean": 100}, "rag": {"prompt_tokens_mean": 100}}, "corpus": {"n_docs": 50}}
    figures = record_speed(cfg, metrics, {"answer_s": 40.0, "model_s": 3.0}, preds)
    assert figures["prompt_tokens_per_s"] == pytest.approx(2 * 12 * 100 / 40.0)
    speed = measured_speed(cfg.model)
    assert speed["measured"] and speed["model_load_s"] == 3.0 and speed["index_docs_per_s"] == FALLBACK["index_docs_per_s"]
    warm_cfg = _config(tmp_path, methods=("zero-shot", "rag"), questions=8)
    warm = estimate_run(warm_cfg, n_docs=50, n_train=140, n_test=117)
    # the same methods, questions and measured prompt lengths take the measured 40 s; the oracle-passage baseline (not
    # measured in that run) adds its modelled prompt length at the measured rate
    oracle = 12 * prompt_tokens("oracle-passage", warm_cfg) / figures["prompt_tokens_per_s"]
    assert warm["measured"] and warm["stages"]["answer"] == pytest.approx(40.0 + oracle)


def test_cached_answers_do_not_count_as_speed(tmp_path):
    cfg = _config(tmp_path)
    preds = [{"method": "rag", "prompt_tokens": 500, "cached": True} for _ in range(8)]
    assert "prompt_tokens_per_s" not in record_speed(cfg, {"methods": {}}, {"answer_s": 2.0}, preds)


def test_training_is_estimated_only_with_a_lora_method(tmp_path):
    with_lora = estimate_run(_config(tmp_path, "quick", ("zero-shot", "lora")), n_docs=10, n_train=100, n_test=40)
    with_raft = estimate_run(_config(tmp_path, "quick", ("zero-shot", "lora", "rag+lora")), n_docs=10, n_train=100, n_test=40)
    cfg = _config(tmp_path, "quick", ("zero-shot", "lora"))
    work = training_tokens(cfg, 10, 100)
    t = cfg.train  # quick: one pass over the chunks, the Q/A generated from them and the train Q/A; a small RAFT set
    assert work["lora"] > 100 * 54 * t.epochs  # the chunks and generated Q/A add to the train Q/A
    assert work["raft"] == t.raft_examples * t.raft_epochs * 448 and work["pairs_asked"] == pytest.approx(10 * 3.9 * 4.9)  # one question per sentence: ~4.9 a chunk
    assert with_lora["stages"]["train"] == pytest.approx(training_seconds(cfg, 10, 100, FALLBACK, raft=False))
    assert with_lora["stages"]["train"] > work["lora"] / FALLBACK["train_tokens_per_s"] + work["pairs_asked"] * FALLBACK["gen_s_per_pair"]
    assert with_raft["stages"]["train"] > with_lora["stages"]["train"] + work["raft"] / FALLBACK["train_tokens_per_s"]
    assert "train" not in estimate_run(_config(tmp_path, "quick", ("zero-shot", "rag")), n_docs=10, n_train=100, n_test=40)["stages"]


def test_a_finished_run_records_its_training_speed_and_cached_adapters_do_not(tmp_path):
    cfg = _config(tmp_path, "quick", ("zero-shot", "lora"))
    fresh = {"cache_hit": False, "tokens_per_s": 140.0, "train_seconds": 300.0, "data": {"generation": {"asked": 600, "seconds": 480.0, "cache_hit": False}}}
    metrics = {"methods": {}, "train": {"recipes": {"lora": fresh, "raft": {**fresh, "cache_hit": True, "tokens_per_s": 1.0}}}}
    figures = record_speed(cfg, metrics, {}, [])
    assert figures == {"train_tokens_per_s": 140.0, "gen_s_per_pair": 0.8}
    fresh["data"]["generation"] |= {"written_now": 200, "seconds": 60.0}  # 400 of the 600 came from the cache
    assert record_speed(cfg, metrics, {}, [])["gen_s_per_pair"] == 0.3
    assert measured_speed(cfg.model)["train_tokens_per_s"] == 140.0
    both = {"lora": fresh, "raft": {**fresh, "tokens_per_s": 320.0, "train_seconds": 100.0}}  # the last adapter must not set the speed alone
    assert record_speed(cfg, {"methods": {}, "train": {"recipes": both}}, {}, [])["train_tokens_per_s"] == pytest.approx((140 * 300 + 320 * 100) / 400)


def test_judge_time_is_recorded_per_row_and_not_as_plain_scoring(tmp_path):
    rows = [{"prompt_tokens": 70, "cached": True}] * 100
    judged = dataclasses.replace(_config(tmp_path, "quick", ("zero-shot",)), eval=EvalConfig(groundedness=True))
    assert record_speed(judged, {"methods": {}}, {"score_s": 50.0}, rows) == {"judge_s_per_row": 0.5}
    plain = _config(tmp_path, "quick", ("zero-shot",))
    assert record_speed(plain, {"methods": {}}, {"score_s": 3.0}, rows) == {"score_s": 3.0}
    quick = estimate_run(plain, n_docs=10, n_train=10, n_test=20)["stages"]["score"]
    standard = estimate_run(judged, n_docs=10, n_train=10, n_test=20)["stages"]["score"]
    assert quick == 3.0 and standard == pytest.approx(3.0 + 0.5 * 20)


def test_eta_blends_estimate_and_pace():
    stages = {"corpus": 1.0, "model": 9.0, "answer": 90.0}
    assert time_progress(stages, "answer", 0.5) == pytest.approx(0.55)
    assert time_progress(stages, "unknown", 0.5) is None
    assert remaining_s(100.0, 10.0, 0.05) == pytest.approx(90.0)  # early: the estimate minus the time spent
    assert remaining_s(100.0, 100.0, 0.5) == pytest.approx(0.5 * 100 + 0.5 * 0)  # late and slow: the pace says 100 s more
    assert remaining_s(None, 10.0, 0.5) is None


def test_heartbeat_ticks_while_a_batch_runs():
    ticks = []
    with Heartbeat(lambda f, s: ticks.append((f, s)), expected_s=1.0, every_s=0.05):
        time.sleep(0.3)
    assert len(ticks) >= 2 and all(0 < f <= 0.95 for f, _ in ticks)
    assert [f for f, _ in ticks] == sorted(f for f, _ in ticks)  # progress only moves forward


def test_examples_are_listed_copied_and_labelled(tmp_path):
    run_dir = tmp_path / "runs" / "example-x"
    run_dir.mkdir(parents=True)
    for name, data in {
        "status.json": {"state": "done", "started": "2026-11-30T10:00:00+00:00"},
        "config.json": {"corpus": "/somewhere/kestrel_labs", "preset": "quick", "run_id": "example-x"},
        "metrics.json": {"methods": {"rag": {"accuracy": 0.5}}},
        "meta.json": {"git_revision": "abc1234", "written": "2026-11-30T10:20:00+00:00"},
        "job.json": {"pid": 1},
    }.items():
        atomic_write_json(run_dir / name, data)
    (run_dir / "predictions.jsonl").write_text('{"method": "rag"}\n')
    (run_dir / "job.log").write_text("log")
    copied = copy_example(run_dir, tmp_path / "examples")
    assert copied == tmp_path / "examples" / "kestrel_labs" / "example-x"
    assert sorted(p.name for p in copied.iterdir()) == ["config.json", "meta.json", "metrics.json", "predictions.jsonl", "status.json"]
    rows = list_examples(tmp_path / "examples")
    assert [r["corpus"] for r in rows] == ["kestrel_labs"]
    assert example_for("ticket_triage", tmp_path / "examples")["run_id"] == "example-x"  # the fact corpus's example stands in
    assert example_label(rows[0]) == "Example run (made on 2026-11-30, revision abc1234)"
    assert example_for("x", tmp_path / "nowhere") is None
    atomic_write_json(run_dir / "status.json", {"state": "running"})
    with pytest.raises(SystemExit, match="not a finished run"):
        copy_example(run_dir, tmp_path / "examples")


def test_answer_rate_is_kept_per_corpus_and_answer_length(tmp_path):
    rows = [{"prompt_tokens": 500, "cached": False}] * 10
    rag_heavy = _config(tmp_path, "demo")
    record_speed(rag_heavy, {"methods": {}}, {"answer_s": 10.0}, rows)  # 500 tokens/s on this corpus
    other = dataclasses.replace(rag_heavy, corpus=str(tmp_path / "tickets"))
    record_speed(other, {"methods": {}}, {"answer_s": 50.0}, rows)  # 100 tokens/s elsewhere, recorded last
    assert measured_speed(rag_heavy.model)["prompt_tokens_per_s"] == 100.0
    fast = estimate_run(rag_heavy, n_docs=5, n_train=10, n_test=12)["stages"]["answer"]
    slow = estimate_run(other, n_docs=5, n_train=10, n_test=12)["stages"]["answer"]
    assert slow / fast == pytest.approx(5.0, rel=0.01)


def test_measured_seconds_per_question_drive_the_answering_estimate(tmp_path):
    cfg = _config(tmp_path, "demo", ("zero-shot", "rag"))
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, baselines=False))  # no oracle row to model
    rows = [{"method": "zero-shot", "prompt_tokens": 70, "latency_s": 0.25, "latency_probe_s": 1.0 if i < 4 else None} for i in range(12)]
    rows += [{"method": "rag", "prompt_tokens": 600, "latency_s": 1.0, "latency_probe_s": 3.0 if i < 4 else None} for i in range(12)]
    record_speed(cfg, {"methods": {}}, {"answer_s": 31.0}, rows)
    est = estimate_run(cfg, n_docs=5, n_train=10, n_test=12)
    assert est["stages"]["answer"] == pytest.approx(12 * 0.25 + 4 * 1.0 + 12 * 1.0 + 4 * 3.0)  # demo probes 4 questions


def test_a_behaviour_corpus_is_estimated_without_the_raft_adapter_it_does_not_train(tmp_path):
    cfg = _config(tmp_path, "quick", ("lora", "rag+lora"))
    facts = estimate_run(cfg, n_docs=10, n_train=100, n_test=40)["stages"]["train"]
    behaviour = estimate_run(cfg, n_docs=10, n_train=100, n_test=40, kind="behaviour")["stages"]["train"]
    assert behaviour == pytest.approx(training_seconds(cfg, 10, 100, FALLBACK, raft=False)) and behaviour < facts
