"""Sweeps on the lookup backend (known replies): grid validation, local vs Ray identical cells, resume after a kill,
what was reused between cells, MLflow logging, the summary exports and the Sweeps page."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import wait_for
from test_known_answers import make_known_corpus

from workbench.cli.main import main
from workbench.config import ConfigError
from workbench.experiments.grid import parse_grid
from workbench.experiments.sweep import Sweep, load_sweep, make_spec, plan
from workbench.experiments.sweep_executors import run_sweep
from workbench.reports.sweep_report import points
from workbench.storage import read_json, read_jsonl

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
GRID = ["retrieval.top_k=1,2", "split.chunk_size=60,200"]
BASE = ["eval.groundedness=false", "eval.bootstrap_samples=200", "eval.latency_probe_n=1", "eval.baselines=false", "split.chunk_overlap=0"]
# Timing fields differ between any two runs; everything else in metrics.json must be identical.
TIMING_WORDS = ("latency", "seconds", "_s", "throughput", "qps", "rss", "usd", "cost", "break_even", "cache_hit", "load", "artifact_mb")


def _spec(corpus: Path, table: Path, grid=GRID, **kw):
    from workbench.cli.main import parse_overrides

    return make_spec(str(corpus), parse_grid(grid), methods=["zero-shot", "rag"], model=f"lookup:{table}", base=parse_overrides(BASE), **kw)


def _quality(obj):
    """metrics.json without its timing and cache fields (the recommendation's texts quote timings: its pick is kept)."""
    if isinstance(obj, dict):
        if "recommendation" in obj:
            obj = {**obj, "recommendation": {"best": obj["recommendation"].get("best")}}
        return {k: _quality(v) for k, v in obj.items() if not any(w in k for w in TIMING_WORDS)}
    if isinstance(obj, list):
        return [_quality(v) for v in obj]
    return obj


def _answers(run_dir: Path) -> list[tuple]:
    return sorted((r["method"], r["question_id"], r["answer"], r["correct"]) for r in read_jsonl(run_dir / "predictions.jsonl"))


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    return make_known_corpus(tmp_path_factory.mktemp("sweep_known"))


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory, known, real_models_dir):
    """One local 2x2 sweep in its own empty cache, shared by the module."""
    home = tmp_path_factory.mktemp("sweep_home")
    (home / "models").symlink_to(real_models_dir, target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_HOME", str(home))
        sweep = Sweep(_spec(*known), tmp_path_factory.mktemp("sweeps_local"))
        data = run_sweep(sweep, "local")
    return sweep, data


# ---------------------------------------------------------------- grid parsing and validation


@pytest.mark.parametrize(
    "items, words",
    [
        (["retrieval.topk=2,4"], ["retrieval.topk", "did you mean 'retrieval.top_k'"]),
        (["retrieval.top_k=2,many"], ["retrieval.top_k", "'many'", "whole number"]),
        (["retrieval.top_k"], ["retrieval.top_k", "section.field=v1,v2"]),
        (["retrieval.top_k="], ["retrieval.top_k", "no values"]),
        (["retrieval.top_k=2,2"], ["retrieval.top_k", "given twice"]),
        (["retrieval.top_k=2", "retrieval.top_k=4"], ["retrieval.top_k", "given twice"]),
        (["retrival.top_k=2"], ["retrival", "unknown section"]),
        (["flavour=1,2"], ["flavour", "section.field"]),
        (["retrieval.mode=dense,fuzzy"], ["retrieval.mode", "fuzzy", "dense, bm25, hybrid"]),
    ],
)
def test_bad_grid_is_one_line_naming_the_key(items, words):
    with pytest.raises(ConfigError) as exc:
        parse_grid(items)
    text = str(exc.value)
    assert "\n" not in text
    for word in words:
        assert word in text, text


def test_grid_values_are_coerced_like_set(known):
    grid = parse_grid(["retrieval.top_k=2, 4", "retrieval.mode=dense,bm25", "eval.groundedness=yes,no", 'train.target_modules=[["q_proj"], ["q_proj", "v_proj"]]'])
    assert grid == {"retrieval.top_k": [2, 4], "retrieval.mode": ["dense", "bm25"], "eval.groundedness": [True, False],
                    "train.target_modules": [["q_proj"], ["q_proj", "v_proj"]]}  # fmt: skip
    cells = plan(_spec(*known, grid=["retrieval.top_k=2,4", "split.chunk_size=60,200"]))
    assert [(c.config.retrieval.top_k, c.config.split.chunk_size) for c in cells] == [(2, 60), (2, 200), (4, 60), (4, 200)]
    assert len({c.id for c in cells}) == 4 and cells[0].id == "01-top_k-2_chunk_size-60"


def test_a_cell_whose_settings_clash_is_refused_before_anything_runs(known, tmp_path):
    # chunk_overlap 100 (from --set) is not below chunk_size 60: the cell is named, nothing is written
    spec = make_spec(str(known[0]), parse_grid(["split.chunk_size=60,200"]), base={"split": {"chunk_overlap": 100}})
    with pytest.raises(ConfigError, match=r"grid cell split.chunk_size=60: chunk_overlap 100 must be .* smaller than chunk_size 60"):
        Sweep(spec, tmp_path / "sweeps")
    assert not (tmp_path / "sweeps").exists()


def test_cli_grid_error_exits_2_with_one_line(known, tmp_path, capsys):
    code = main(["sweep", "--corpus", str(known[0]), "--grid", "retrieval.top_k=2,x", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and err.startswith("error: --grid retrieval.top_k = 'x'")


def test_sweep_file_with_nested_grid_and_base_settings(known, tmp_path):
    corpus, table = known
    path = tmp_path / "sweep.toml"
    path.write_text(f'corpus = "{corpus}"\nmethods = ["rag"]\nmodel = "lookup:{table}"\n[grid]\n"split.chunk_size" = [60, 200]\n'
                    '[grid.retrieval]\ntop_k = [1, 2, 3]\n[set]\neval.max_questions = 4\nsplit.chunk_overlap = 0\n', encoding="utf-8")  # fmt: skip
    spec = make_spec(None, {}, path, base={"eval": {"bootstrap_samples": 100}})
    assert spec.grid == {"split.chunk_size": [60, 200], "retrieval.top_k": [1, 2, 3]}
    assert spec.base == {"eval": {"max_questions": 4, "bootstrap_samples": 100}, "split": {"chunk_overlap": 0}} and spec.methods == ["rag"]
    assert len(plan(spec)) == 6 and plan(spec)[0].config.eval.max_questions == 4
    path.write_text('[grid]\n"retrieval.top_k" = [1, "lots"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"sweep.toml \[grid\] retrieval.top_k = 'lots' is not a whole number"):
        make_spec(str(corpus), {}, path)


# ---------------------------------------------------------------- local and Ray: the same cells, the same numbers


def test_local_sweep_folder_states_best_and_reuse(local_sweep):
    sweep, data = local_sweep
    assert [c["state"] for c in data["cells"]] == ["done"] * 4
    for cell in data["cells"]:  # one ordinary run folder per cell
        run_dir = sweep.dir / cell["run_id"]
        assert read_json(run_dir / "status.json")["state"] == "done" and (run_dir / "predictions.jsonl").is_file()
        metrics = read_json(run_dir / "metrics.json")
        assert cell["metrics"]["rag"]["accuracy"] == metrics["methods"]["rag"]["accuracy"]
    saved = read_json(sweep.dir / "sweep.json")
    assert saved["grid"] == {"retrieval.top_k": [1, 2], "split.chunk_size": [60, 200]}
    rag = {c["id"]: c["metrics"]["rag"]["accuracy"] for c in saved["cells"]}
    assert saved["best"]["rag"]["accuracy"] == max(rag.values()) and rag[saved["best"]["rag"]["cell"]] == max(rag.values())
    assert len(set(rag.values())) > 1, "the swept settings should move RAG's accuracy on this corpus"
    # reuse: the index of a chunk size is built once (cells 3 and 4 reuse those of 1 and 2); zero-shot answers
    # do not depend on retrieval, so every cell after the first serves them from the answer cache
    reuse = [c["reuse"] for c in saved["cells"]]
    assert [r["index"]["cache_hit"] for r in reuse] == [False, False, True, True]
    assert reuse[0]["index"]["key"] == reuse[2]["index"]["key"] != reuse[1]["index"]["key"]
    assert [r["answers_cached"]["zero-shot"] for r in reuse] == [0.0, 1.0, 1.0, 1.0]
    assert reuse[0]["answers_cached"]["rag"] == 0.0


def test_ray_sweep_matches_local_cell_by_cell(local_sweep, known, tmp_path, real_models_dir):
    ray = pytest.importorskip("ray")
    home = tmp_path / "ray_home"  # an empty cache of its own: the Ray cells recompute everything
    home.mkdir()
    (home / "models").symlink_to(real_models_dir, target_is_directory=True)
    env = {"PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)]), "WORKBENCH_HOME": str(home)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    try:
        from lookup_generator import register_in_worker

        seen = []
        sweep = Sweep(_spec(*known), tmp_path / "sweeps_ray")
        data = run_sweep(sweep, "ray", progress=lambda *a: seen.append(a), worker_setup=register_in_worker)
    finally:
        ray.shutdown()
    local, local_data = local_sweep
    assert [c["state"] for c in data["cells"]] == ["done"] * 4
    assert {c["executor"] for c in data["cells"]} == {"ray"}
    for cell in data["cells"]:
        ours, theirs = sweep.dir / cell["run_id"], local.dir / cell["run_id"]
        assert _quality(read_json(ours / "metrics.json")) == _quality(read_json(theirs / "metrics.json")), cell["id"]
        assert _answers(ours) == _answers(theirs)
        # progress streamed back from the workers: every cell's own stages reached the driver
        assert {"corpus", "index", "answer"} <= {s for c, s, *_ in seen if c == cell["id"]}
    assert [c["reuse"]["answers_cached"]["rag"] for c in data["cells"]] == [0.0] * 4


def test_a_worker_that_cannot_see_the_sweep_folder_sends_the_run_folder_back(known, tmp_path):
    from workbench.experiments.sweep_executors import run_cell_task

    sweep = Sweep(_spec(*known, grid=["retrieval.top_k=1"]), tmp_path / "sweeps").open()
    cell = sweep.cells[0]
    result = run_cell_task(cell.config.to_dict(), str(sweep.dir), cell.id, "another-sweep-token", None, None)
    assert result["error"] is None and not (sweep.dir / cell.id).exists()  # it ran in a folder of its own
    assert {"config.json", "status.json", "metrics.json", "predictions.jsonl", "meta.json"} <= set(result["files"])
    assert json.loads(result["files"]["status.json"])["state"] == "done"


# ---------------------------------------------------------------- resume after a kill


KILLABLE = """
import sys, time
sys.path[:0] = [{tests!r}, {repo!r}]
import lookup_generator
lookup_generator.register_in_worker()
slow = lookup_generator.LookupGenerator.generate
def generate(self, *a, **k):
    time.sleep(0.4)  # slow enough that the kill lands inside a later cell
    return slow(self, *a, **k)
lookup_generator.LookupGenerator.generate = generate
from workbench.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def test_killed_sweep_reruns_only_the_missing_cells(known, tmp_path, isolated_home):
    corpus, table = known
    out = tmp_path / "sweeps"
    argv = ["sweep", "--corpus", str(corpus), "--methods", "zero-shot,rag", "--model", f"lookup:{table}", "--out", str(out), "--name", "killed"]
    argv += [x for g in GRID for x in ("--grid", g)] + [x for s in BASE for x in ("--set", s)]
    code = KILLABLE.format(tests=str(TESTS), repo=str(REPO))
    log = (tmp_path / "first.log").open("w")
    proc = subprocess.Popen([sys.executable, "-c", code, *argv], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    first = out / "killed" / "01-top_k-1_chunk_size-60"
    try:
        wait_for(lambda: (read_json(first / "status.json", {}) or {}).get("state") == "done" or proc.poll() is not None, "the first cell to finish")
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-2000:]
    before = load_sweep(out / "killed")
    states = [c["state"] for c in before["cells"]]
    assert states[0] == "done" and "done" in states and states.count("done") < 4, states
    assert "interrupted" in states or "pending" in states
    kept = {c["id"]: (first.parent / c["id"] / "metrics.json").stat().st_mtime_ns for c in before["cells"] if c["state"] == "done"}
    from lookup_generator import register_in_worker

    register_in_worker()
    assert main(argv) == 0
    after = read_json(out / "killed" / "sweep.json")
    assert [c["state"] for c in after["cells"]] == ["done"] * 4
    for cell_id, mtime in kept.items():  # finished cells were skipped, not rerun
        assert (first.parent / cell_id / "metrics.json").stat().st_mtime_ns == mtime
    session = after["sessions"][-1]
    assert session["skipped"] == len(kept) and session["cells_run"] == 4 - len(kept)
    interrupted = [c for c, s in zip(after["cells"], states, strict=True) if s == "interrupted"]
    assert all(c["attempts"][-1]["state"] == "interrupted" for c in interrupted)


def test_rerunning_a_finished_sweep_runs_nothing(local_sweep):
    sweep, _ = local_sweep
    data = run_sweep(Sweep(sweep.spec, sweep.dir.parent), "local")
    assert data["sessions"][-1]["cells_run"] == 0 and data["sessions"][-1]["skipped"] == 4


def test_another_sweeps_folder_is_never_overwritten(local_sweep, known):
    sweep, _ = local_sweep
    other = _spec(*known, grid=["retrieval.top_k=1,3"], name=sweep.dir.name)
    with pytest.raises(ConfigError, match="holds a sweep with other settings"):
        run_sweep(Sweep(other, sweep.dir.parent), "local")


# ---------------------------------------------------------------- MLflow, exports


def test_mlflow_logs_each_cell_once(known, tmp_path):
    mlflow = pytest.importorskip("mlflow")
    uri = f"file:{tmp_path / 'mlruns'}"
    spec = _spec(*known, grid=["retrieval.top_k=1,2"])
    sweep = Sweep(spec, tmp_path / "sweeps")
    data = run_sweep(sweep, "local", mlflow_uri=uri)
    run_sweep(Sweep(spec, tmp_path / "sweeps"), "local", mlflow_uri=uri)  # a rerun logs nothing twice
    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(sweep.dir.name)
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert sorted(runs) == [c["id"] for c in data["cells"]]
    for cell in data["cells"]:
        r = runs[cell["id"]]
        metrics = read_json(sweep.dir / cell["id"] / "metrics.json")["methods"]
        assert r.data.params["retrieval.top_k"] == str(cell["settings"]["retrieval.top_k"])
        assert r.data.metrics["rag.accuracy"] == pytest.approx(metrics["rag"]["accuracy"])
        assert r.data.metrics["zero-shot.hallucination_rate"] == pytest.approx(metrics["zero-shot"]["hallucination_rate"])
        assert r.data.tags["workbench.run_dir"] == str(sweep.dir / cell["id"])
        assert {a.path for a in client.list_artifacts(r.info.run_id)} >= {"metrics.json", "config.json"}
        assert cell["mlflow_run_id"] == r.info.run_id


def test_sweep_report_exports_every_format_escaped(local_sweep, tmp_path, capsys):
    sweep, data = local_sweep
    front = [p for p in points(data) if p["pareto"]]
    assert front and all(not (q["accuracy"] >= p["accuracy"] and q["cost"] < p["cost"]) for p in front for q in points(data))
    for name in ("html", "md", "csv", "json"):
        assert main(["report", str(sweep.dir), "--format", name, "--out", str(tmp_path / f"s.{name}")]) == 0
    html = (tmp_path / "s.html").read_text()
    assert "<svg" in html and "Pareto front" in html and "01-top_k-1_chunk_size-60" in html
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["best"]["rag"]["accuracy"] == data["best"]["rag"]["accuracy"] and len(summary["cells"]) == 4
    assert "| 01-top_k-1_chunk_size-60 |" in (tmp_path / "s.md").read_text()
    assert (tmp_path / "s.csv").read_text().splitlines()[0].startswith("cell,retrieval.top_k,split.chunk_size,state,")
    assert main(["report", str(sweep.dir), "--format", "pdf", "--out", str(tmp_path / "s.pdf")]) == 1
    assert "a sweep report is exported as html, md, csv, json" in capsys.readouterr().err
    # text from the sweep (a cell error, here) is escaped, never rendered
    evil = dict(data, cells=[dict(data["cells"][0], id="<script>alert(1)</script>")] + data["cells"][1:])
    from workbench.reports.sweep_report import render_html, render_markdown

    assert "<script>alert" not in render_html(evil) and "&lt;script&gt;" in render_html(evil)
    assert "<script>" not in render_markdown(evil)


# ---------------------------------------------------------------- the Sweeps page


def test_sweeps_page_table_pareto_and_open_in_compare(local_sweep, monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    sweep, data = local_sweep
    monkeypatch.setenv("WORKBENCH_SWEEPS", str(sweep.dir.parent))
    monkeypatch.setenv("WORKBENCH_DEFAULT_CORPUS", str(data["spec"]["corpus"]))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/sweeps.py")
    at.run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Sweeps"
    table = at.dataframe[0].value
    assert list(table["cell"]) == [c["id"] for c in data["cells"]] and list(table["state"]) == ["done"] * 4
    assert list(table["RAG accuracy %"]) == [round(100 * c["metrics"]["rag"]["accuracy"]) for c in data["cells"]]
    assert "index reused" in table["reused"].iloc[2]
    charts = at.get("vega_lite_chart")
    assert len(charts) == 3  # accuracy vs cost with its front, and accuracy vs each of the two swept settings
    assert "Pareto front" in charts[0].proto.spec and "retrieval.top_k" in charts[1].proto.spec
    assert {m.label for m in at.metric} >= {"Best Zero-shot", "Best RAG"}
    at.selectbox(key="sweep-cell").set_value(data["cells"][1]["id"]).run()
    at.button(key="sweep-open").click().run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Compare"
    assert at.selectbox(key="compare-run").value == f"{sweep.dir.name}/{data['cells'][1]['id']}"


def test_sweeps_page_empty_state(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("WORKBENCH_SWEEPS", str(tmp_path / "none"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/sweeps.py")
    at.run()
    assert not at.exception and "python -m workbench sweep" in at.code[0].value
