"""The whole pipeline on a tiny corpus with a tiny model: run folder contract, determinism, caching."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import TINY_OVERRIDES

from workbench.cli.main import main as cli_main
from workbench.config import BASELINES, METHODS, build_config
from workbench.evaluation.aggregate import aggregate
from workbench.pipeline.run import run
from workbench.pipeline.runstore import list_runs, load_run
from workbench.pipeline.stages import RunError


def _config(corpus, model, **kw):
    return build_config(str(corpus), "quick", {"chunk_size": 120, "chunk_overlap": 20, "top_k": 2}, TINY_OVERRIDES, model=str(model), **kw)


def test_run_writes_the_contract_and_aggregates_recompute(tiny_corpus, tiny_lm_dir, tmp_path):
    run_dir = run(_config(tiny_corpus, tiny_lm_dir), out_dir=tmp_path / "runs", run_id="r1")
    for name in ("config.json", "meta.json", "status.json", "predictions.jsonl", "metrics.json"):
        assert (run_dir / name).is_file(), name
    data = load_run(run_dir)
    assert data["status"]["state"] == "done"
    held_out = 5
    measured = METHODS + BASELINES  # the tiny corpus names gold sources, so oracle-passage runs too
    assert len(data["predictions"]) == len(measured) * held_out
    assert set(data["metrics"]["methods"]) == set(measured)
    assert all(data["metrics"]["methods"][b]["baseline"] for b in BASELINES)
    assert not any(data["metrics"]["methods"][m]["baseline"] for m in METHODS)
    rec = data["metrics"]["recommendation"]  # the random tiny model may pass no quality floor: then no winner is named
    assert rec["best"] in METHODS or (rec["best"] is None and rec["summary"].startswith("No recommendation"))
    for row in data["predictions"]:
        for key in ("correct", "abstained", "hallucinated", "prompt_tokens", "latency_s", "answer", "contexts"):
            assert key in row
        if row["method"] in ("rag", "rag+lora"):
            assert row["contexts"] and all("chunk_id" in c for c in row["contexts"])
    costs = {m: {k: v[k] for k in ("build_seconds", "peak_rss_mb", "artifact_mb", "model_mb", "quantize_seconds")} for m, v in data["metrics"]["methods"].items()}
    assert all(v["model_mb"] > 0 for m, v in data["metrics"]["methods"].items() if m not in BASELINES)  # the weights each method answers with
    again = aggregate(data["predictions"], costs, data["metrics"]["usd_per_hour"], data["config"]["eval"]["bootstrap_samples"], data["config"]["seed"])
    marks = ("baseline", "no_better_than_prior", "latency_probe_reused", "latency_probe_retimed")  # added after aggregation (baselines; probe timings reused)
    assert again["methods"] == {m: {k: v for k, v in d.items() if k not in marks} for m, d in data["metrics"]["methods"].items()}
    assert data["config"]["seed"] == 0 and data["config"]["corpus_fingerprint"]
    assert data["meta"]["versions"]["torch"]


def test_same_seed_same_predictions_and_second_run_is_cached(tiny_corpus, tiny_lm_dir, tmp_path):
    first = load_run(run(_config(tiny_corpus, tiny_lm_dir), out_dir=tmp_path / "runs", run_id="a"))
    second = load_run(run(_config(tiny_corpus, tiny_lm_dir), out_dir=tmp_path / "runs", run_id="b"))
    key = lambda r: (r["method"], r["question_id"])  # noqa: E731
    strip = lambda rows: [{k: v for k, v in r.items() if k in ("method", "question_id", "answer", "correct", "contexts")} for r in sorted(rows, key=key)]  # noqa: E731
    assert strip(first["predictions"]) == strip(second["predictions"])
    assert second["metrics"]["index"]["cache_hit"] is True
    assert second["metrics"]["train"]["cache_hit"] is True
    assert all(r["cached"] for r in second["predictions"] if r["method"] != "prior")  # the prior generates nothing to cache


def test_failed_run_says_why_and_leaves_earlier_runs(tiny_corpus, tiny_lm_dir, tmp_path):
    good = run(_config(tiny_corpus, tiny_lm_dir, methods=["zero-shot"]), out_dir=tmp_path / "runs", run_id="good")
    (tiny_corpus / "questions.jsonl").write_text('{"id": "x", "question": "q", "answers": ["a"], "split": "train"}\n{broken\n')
    with pytest.raises(RunError, match="questions.jsonl"):
        run(_config(tiny_corpus, tiny_lm_dir, methods=["zero-shot"]), out_dir=tmp_path / "runs", run_id="bad")
    bad = load_run(tmp_path / "runs" / "bad")
    assert bad["status"]["state"] == "failed" and "questions.jsonl" in bad["status"]["error"]
    assert load_run(good)["status"]["state"] == "done"
    states = {r["run_id"]: r["state"] for r in list_runs(tmp_path / "runs")}
    assert states == {"good": "done", "bad": "failed"}


def test_cli_run_prints_folder_last_and_bad_input_is_one_line(tiny_corpus, tiny_lm_dir, tmp_path, capsys):
    code = cli_main(["run", "--corpus", str(tiny_corpus), "--methods", "zero-shot,rag", "--model", str(tiny_lm_dir), "--out", str(tmp_path / "r"),
                     "--set", "generation.max_new_tokens=4", "--set", "eval.bootstrap_samples=100"])
    out = capsys.readouterr()
    assert code == 0
    run_dir = out.out.strip().splitlines()[-1]
    assert json.loads((tmp_path / "r" / run_dir.split("/")[-1] / "metrics.json").read_text())["methods"].keys() == {"zero-shot", "rag", *BASELINES}
    assert cli_main(["run", "--corpus", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "corpus folder not found" in err and "\n" not in err
    assert cli_main(["run", "--corpus", str(tiny_corpus), "--methods", "rag,telepathy"]) == 2
    assert "unknown method" in capsys.readouterr().err


LATENCY_FIELDS = ("latency_s", "batch_wall_s", "latency_probe_s")


def test_two_identical_uncached_runs_give_identical_predictions(tiny_corpus, tiny_lm_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_NO_ANSWER_CACHE", "1")  # both runs generate every answer; none is served from the first
    methods = ["zero-shot", "few-shot", "rag"]
    cfg = lambda: _config(tiny_corpus, tiny_lm_dir, methods=methods)  # noqa: E731
    a = run(cfg(), out_dir=tmp_path / "runs", run_id="rep-a")
    b = run(cfg(), out_dir=tmp_path / "runs", run_id="rep-b")
    rows_a = [json.loads(x) for x in (a / "predictions.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (b / "predictions.jsonl").read_text().splitlines()]
    assert rows_a and not any(r["cached"] for r in rows_a + rows_b)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in LATENCY_FIELDS} for r in rows]  # noqa: E731
    assert strip(rows_a) == strip(rows_b)  # same order, same answers, contexts, scores and tokens
    # the probe: per-query seconds for the same seeded sample in both runs, recorded in metrics.json
    probed = lambda rows: sorted((r["method"], r["question_id"]) for r in rows if r["latency_probe_s"] is not None)  # noqa: E731
    assert probed(rows_a) == probed(rows_b) and len(probed(rows_a)) == len(methods) * 5  # 5 held-out questions, probe_n 8
    metrics = json.loads((a / "metrics.json").read_text())
    for m in metrics["methods"].values():
        if m.get("baseline"):  # reference rows are not served: no probe
            assert m["latency_probe_n"] == 0 and m["latency_p50_s"] is None
            continue
        assert m["latency_probe_n"] == 5 and m["latency_p50_s"] <= m["latency_p95_s"] and m["throughput_qps"] > 0
    meta = json.loads((a / "meta.json").read_text())
    assert {"seed", "batch_size", "dtype", "torch_threads", "may_vary"} <= set(meta["reproducibility"])
    assert meta["reproducibility"]["answer_cache"] == "off" and "cpu_flags" in meta["machine"]


def test_latency_probe_bypasses_the_answer_cache(tiny_corpus, tiny_lm_dir, tmp_path):
    from workbench.backends.answer_cache import AnswerCache
    from workbench.backends.hf import HFGenerator as Generator
    from workbench.corpus.load import load_corpus
    from workbench.evaluation.latency import ProbeTimings, latency_probe, probe_sample
    from workbench.methods.strategies import make_strategy

    class CountingCache(AnswerCache):
        reads = 0

        def get_many(self, keys):
            CountingCache.reads += 1
            return super().get_many(keys)

    corpus = load_corpus(tiny_corpus)
    cache = CountingCache(tmp_path / "answers.sqlite")
    gen = Generator.from_name(str(tiny_lm_dir))
    strategy = make_strategy("zero-shot", generator=gen, cfg=_config(tiny_corpus, tiny_lm_dir), cache=cache)
    strategy.answer(corpus.test)  # fills the cache
    stored, reads = len(cache), CountingCache.reads
    sample = probe_sample(corpus.test, 3, seed=0)
    assert sample == probe_sample(corpus.test, 3, seed=0) and len(sample) == 3
    seconds, reused, _ = latency_probe(strategy, sample)
    assert set(seconds) == {q.id for q in sample} and all(s > 0 for s in seconds.values()) and reused == 0
    assert CountingCache.reads == reads and len(cache) == stored  # the probe neither read nor wrote the cache
    assert strategy.cache is cache
    batched = {a.question_id: a for a in strategy.answer(sample)}
    assert all(a.meta["cached"] for a in batched.values())  # while the batched path still uses it
    # an unchanged rerun reuses what this machine timed; a changed answer (other weights, prompt or settings) is timed again
    timings = ProbeTimings(tmp_path / "probe.json")
    first, reused, _ = latency_probe(strategy, sample, answers=batched, timings=timings)
    assert reused == 0 and len(json.loads((tmp_path / "probe.json").read_text())) == 3
    again, reused, _ = latency_probe(strategy, sample, answers=batched, timings=ProbeTimings(tmp_path / "probe.json"))
    assert reused == 3 and again == first
    changed = {k: dataclasses.replace(a, text=a.text + " (other weights)") for k, a in batched.items()}
    _, reused, _ = latency_probe(strategy, sample, answers=changed, timings=ProbeTimings(tmp_path / "probe.json"))
    assert reused == 0
    fresh = {k: dataclasses.replace(a, meta={**a.meta, "cached": False}) for k, a in batched.items()}
    assert latency_probe(strategy, sample, answers=fresh, timings=ProbeTimings(tmp_path / "probe.json"))[1] == 0


def test_a_probe_timing_slowed_by_another_process_is_taken_again_and_a_slow_question_stays_slow():
    import time as _time

    from workbench.evaluation.latency import latency_probe
    from workbench.types import Question

    class Sleeper:
        name, cache = "sleeper", None
        calls: dict[str, int] = {}

        def answer(self, qs):
            q = qs[0]
            Sleeper.calls[q.id] = Sleeper.calls.get(q.id, 0) + 1
            slow = q.id == "always-slow" or (q.id == "contended" and Sleeper.calls[q.id] == 1)
            _time.sleep(0.7 if slow else 0.01)
            return []

    qs = [Question(i, f"q {i}?", ["a"]) for i in ("a", "b", "c", "contended", "always-slow")]
    seconds, reused, retimed = latency_probe(Sleeper(), qs)
    assert retimed == ["contended", "always-slow"] and reused == 0
    assert seconds["contended"] < 0.3 and seconds["always-slow"] >= 0.7  # the lower of two timings is kept
    assert Sleeper.calls == {"a": 1, "b": 1, "c": 1, "contended": 2, "always-slow": 2}
