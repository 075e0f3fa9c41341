"""The Streamlit app, page by page, with AppTest: real library calls on a tiny corpus and run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.storage import atomic_write_json, atomic_write_jsonl

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
TIMEOUT = 300  # a ceiling for a hung page on a shared CPU, not a speed requirement

DOCS = {
    "policies/leave.md": "# Leave policy\n\nEmployees get 42 days of paid leave a year. Requests go to the HR portal.\n",
    "products/falcon.md": "# Falcon\n\nThe Falcon drone has a range of 12 km and weighs 900 grams.\n",
    "company/history.txt": "Kestrel was founded in 2011 in Tampere by Aino Virtanen.\n",
}
QUESTIONS = [
    {"id": "q1", "question": "How many days of paid leave?", "answers": ["42 days", "42"], "split": "test"},
    {"id": "q2", "question": "What is the Falcon's range?", "answers": ["12 km"], "split": "test"},
    {"id": "q3", "question": "Who founded Kestrel?", "answers": ["Aino Virtanen"], "split": "train"},
    {"id": "q4", "question": "What does the Falcon weigh?", "answers": ["900 grams"], "split": "train"},
    {"id": "q5", "question": "What is the CEO's shoe size?", "answers": [], "answerable": False, "split": "test"},
    {"id": "q6", "question": "When was Kestrel founded?", "answers": ["2011"], "split": "train"},
]
SNEAKY = "Leave: 42 days a year. <script>alert('x')</script> ![img](http://example.invalid/x.png) :red[boom]"


def make_corpus(root: Path) -> Path:
    """A tiny fact corpus folder: three documents, six questions with explicit splits."""
    for rel, text in DOCS.items():
        path = root / "docs" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    (root / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    return root


def _row(method: str, q: dict, answer: str, correct: bool, abstained: bool, contexts: list[dict]) -> dict:
    return {
        "method": method, "question_id": q["id"], "question": q["question"], "gold": q["answers"], "answerable": q.get("answerable", True),
        "split": "test", "qtype": "", "answer": answer, "contexts": contexts, "correct": correct, "abstained": abstained,
        "hallucinated": not correct and not abstained, "exact_match": int(correct), "f1": 1.0 if correct else 0.0, "semantic_sim": None,
        "unsupported": None, "unsupported_items": [], "groundedness": None, "prompt_tokens": 120, "output_tokens": 6,
        "latency_s": 0.4, "batch_wall_s": 1.2, "cached": False,
    }  # fmt: skip


def write_run(runs: Path, corpus: Path, run_id: str = "20250101-000000-tiny-abcd", acc_shift: float = 0.0) -> Path:
    """A finished run folder written by hand to the run-folder contract (predictions, metrics, config, status)."""
    from workbench.decision.recommend import recommend

    run_dir = runs / run_id
    test = [q for q in QUESTIONS if q["split"] == "test"]
    ctx = [
        {"chunk_id": 0, "doc_id": "policies/leave.md", "text": SNEAKY, "score": 0.91, "rank": 1},
        {"chunk_id": 1, "doc_id": "products/falcon.md", "text": "The Falcon drone has a range of 12 km.", "score": 0.55, "rank": 2},
    ]
    answers = {
        "zero-shot": ["30 days", "5 km", "Size 44"],
        "rag": ["42 days [1]", "12 km [2]", "I don't know"],
        "lora": ["42 days", "I don't know", "Size 42"],
    }
    rows = []
    for method, texts in answers.items():
        for q, text in zip(test, texts, strict=True):
            abstained = text == "I don't know"
            correct = bool(q["answers"]) and any(a.lower() in text.lower() for a in q["answers"])
            rows.append(_row(method, q, text, correct, abstained, ctx if method == "rag" else []))
    methods = {}
    for i, method in enumerate(answers):
        mine = [r for r in rows if r["method"] == method]
        acc = max(0.0, min(1.0, sum(r["correct"] for r in mine) / 2 + acc_shift))
        hall = sum(r["hallucinated"] for r in mine) / 3
        methods[method] = {
            "n": 3, "n_answerable": 2, "accuracy": acc, "accuracy_ci": [max(0, acc - 0.3), min(1, acc + 0.2)],
            "hallucination_rate": hall, "hallucination_ci": [max(0, hall - 0.2), min(1, hall + 0.3)],
            "abstention_rate": sum(r["abstained"] for r in mine) / 3, "exact_match": 0.3, "f1": 0.5, "semantic_sim_mean": None,
            "unsupported_rate": None, "groundedness_mean": None, "build_seconds": [0.0, 4.0, 60.0][i], "latency_p50_s": 0.4 + 0.1 * i,
            "latency_p95_s": 0.6 + 0.1 * i, "prompt_tokens_mean": 120, "output_tokens_mean": 6, "peak_rss_mb": 900, "artifact_mb": [0, 1, 8][i],
            "usd_per_1k_queries": 0.011 + 0.002 * i, "usd_build": [0.0, 0.0001, 0.002][i],
        }  # fmt: skip
    metrics = {
        "methods": methods,
        "comparisons": {
            "mcnemar": {"zero-shot|rag": {"p_value": 0.25, "b": 0, "c": 2}, "rag|lora": {"p_value": 1.0, "b": 1, "c": 0}},
            "break_even": {"rag|lora": {"queries": None, "cheaper_upfront": "rag", "cheaper_per_query": "rag"}},
        },
        "retrieval": {"recall@1": 0.5, "recall@3": 1.0, "recall@5": 1.0, "recall@10": 1.0, "mrr": 0.75, "n_questions": 2},
        "train": {
            "train_seconds": 60.0,
            "tokens_per_s": 800.0,
            "loss_first": 3.2,
            "loss_last": 1.1,
            "steps": 30,
            "leakage": {"overlap": 0},
        },
        "corpus": {
            "name": corpus.name,
            "title": "Tiny",
            "kind": "facts",
            "n_docs": 3,
            "n_questions": 6,
            "n_train": 3,
            "n_test_evaluated": 3,
        },
        "usd_per_hour": 0.1,
    }
    metrics["recommendation"] = recommend(metrics)
    atomic_write_jsonl(run_dir / "predictions.jsonl", rows)
    atomic_write_json(run_dir / "metrics.json", metrics)
    atomic_write_json(
        run_dir / "config.json",
        {"corpus": str(corpus), "preset": "quick", "model": "tiny", "seed": 0, "methods": list(answers), "run_id": run_id},
    )
    atomic_write_json(run_dir / "meta.json", {"versions": {}, "timings_s": {}})
    atomic_write_json(
        run_dir / "status.json",
        {"state": "done", "stage": "done", "progress": 1.0, "error": None, "started": "2025-01-01T00:00:00+00:00", "pid": 1},
    )
    return run_dir


@pytest.fixture()
def tiny_corpus(tmp_path, monkeypatch) -> Path:
    corpus = make_corpus(tmp_path / "tiny")
    monkeypatch.setenv("WORKBENCH_DEFAULT_CORPUS", str(corpus))
    return corpus


@pytest.fixture()
def runs(isolated_home, tiny_corpus) -> Path:
    path = isolated_home / "runs"
    path.mkdir(exist_ok=True)
    return path


def app(page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in state.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(f"app_pages/{page}.py")
        at.run()
        assert not at.exception, at.exception
    unexpected = [e.value for e in at.error if "Unexpected error" in e.value]
    assert not unexpected, unexpected
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [t.value for t in at.title] + [s.value for s in at.subheader]
    parts += [e.value for e in at.error] + [e.value for e in at.info] + [e.value for e in at.success] + [e.value for e in at.warning]
    return "\n".join(map(str, parts))


# ------------------------------------------------------------------------------------------------ Corpus


def test_corpus_page_opens_on_default_corpus_with_quick_run_button(runs, tiny_corpus):
    at = app()
    assert at.title[0].value == "Corpus"
    assert "tiny" in texts(at)
    assert [m.value for m in at.metric][:4] == ["3", "6", "3", "3"]  # documents, questions, train, held-out
    assert any(b.label.startswith("▶") for b in at.button), "no quick-comparison button on an empty run store"
    assert "No comparison of this corpus yet" in texts(at)


def test_corpus_page_shows_latest_run_instead_of_button(runs, tiny_corpus):
    write_run(runs, tiny_corpus)
    at = app()
    body = texts(at)
    assert "Latest comparison" in body
    assert "Use " in body  # the recommendation summary
    assert not any(b.label.startswith("▶") for b in at.button)


def test_upload_valid_and_binary_file_shows_error_next_to_file(runs, tiny_corpus):
    at = app()
    at.radio(key="corpus-source").set_value("Upload your own").run()
    uploads = [u for u in at.get("file_uploader")]
    docs, questions = uploads[0], uploads[1]
    binary = bytes(range(256)) * 20
    docs.set_value([("notes.txt", b"The office opens at 9 am.", "text/plain"), ("photo.txt", binary, "text/plain")])
    at.run()
    assert not at.exception
    assert any("characters" in s.value for s in at.success), [s.value for s in at.success]
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "looks binary" in errors[0], errors
    # the error sits in the row of the bad file: the row's left column names photo.txt
    names = [m.value for m in at.markdown if "photo.txt" in m.value]
    assert names, "bad file not listed"
    questions = at.get("file_uploader")[1]
    questions.set_value(
        (
            "q.jsonl",
            b'{"id": "a", "question": "When does the office open?", "answers": ["9 am"], "split": "test"}\n'
            b'{"id": "b", "question": "Who opens it?", "answers": ["Ann"], "split": "train"}\n',
            "application/json",
        )
    )
    at.run()
    assert not at.exception
    use = next(b for b in at.button if b.label == "Use the uploaded corpus")
    assert not use.disabled
    use.click().run()
    assert not at.exception
    assert "uploads" in at.session_state["corpus_path"]
    assert [m.value for m in at.metric][:2] == ["1", "2"]  # only the readable document is in the corpus
    assert "uploads" in at.session_state["corpus_path"] and at.session_state["session_id"] in at.session_state["corpus_path"]
    assert Path(at.session_state["corpus_path"]).name == "my_corpus"  # named by the user, not "corpus"
    assert any(s.value == "my\\_corpus" or s.value == "my_corpus" for s in at.subheader), [s.value for s in at.subheader]


def test_upload_bad_question_file_names_the_line(runs, tiny_corpus):
    at = app()
    at.radio(key="corpus-source").set_value("Upload your own").run()
    at.get("file_uploader")[1].set_value(("q.jsonl", b'{"id": "a", "question": "x?", "answers": ["y"]}\nnot json\n', "application/json"))
    at.run()
    assert not at.exception
    assert any("line 2" in e.value for e in at.error), [e.value for e in at.error]
    assert next(b for b in at.button if b.label == "Use the uploaded corpus").disabled


# ------------------------------------------------------------------------------------------------ Build / Evaluate


def test_build_page_widgets_come_from_the_dataclasses(runs, tiny_corpus):
    from workbench.config import PRESETS, TrainConfig, help_of

    at = app("build")
    assert at.title[0].value == "Build"
    rank = at.number_input(key="cfg.quick.train.rank")
    assert rank.value == TrainConfig().rank
    assert rank.help == help_of(TrainConfig, "rank")
    quick_epochs = PRESETS["quick"]["train"]["epochs"]
    assert quick_epochs != TrainConfig().epochs
    assert at.number_input(key="cfg.quick.train.epochs").value == quick_epochs  # the preset's value, not the dataclass default
    rank.set_value(8).run()
    assert at.session_state["overrides"] == {"train": {"rank": 8}}
    assert "train.rank=8" in texts(at)
    at.number_input(key="cfg.quick.split.chunk_overlap").set_value(5000).run()
    assert any("chunk_overlap" in e.value.replace("\\", "") for e in at.error)


def test_evaluate_page_starts_a_background_run_and_shows_its_status(runs, tiny_corpus, monkeypatch):
    from workbench.pipeline import jobs

    started = {}

    def fake_start_run(corpus, **kw):
        started.update(kw, corpus=corpus)
        job_dir = Path(kw["out_dir"]) / "20250102-000000-tiny-run1"
        job_dir.mkdir(parents=True)
        atomic_write_json(
            job_dir / "status.json", {"state": "running", "stage": "answer", "progress": 0.5, "message": "rag: question 1-2 of 3", "pid": 0}
        )
        return jobs.Job("run", job_dir, 0, [])

    at = app("evaluate")
    assert at.title[0].value == "Evaluate"
    assert "No comparison started" in texts(at)
    monkeypatch.setattr(jobs, "start_run", fake_start_run)
    at.multiselect(key="eval-methods").set_value(["rag", "lora"])
    at.button(key="start-run").click().run()
    assert not at.exception, at.exception
    assert started["methods"] == ["rag", "lora"] and started["preset"] == "quick"
    # pid 0 is not alive, so the job reads as failed with a clear line instead of hanging as "running"
    assert any("Failed" in e.value for e in at.error), texts(at)


def test_job_panel_shows_stage_progress_for_a_live_process(runs, tiny_corpus):
    import os

    job_dir = runs / "20250103-000000-tiny-live"
    job_dir.mkdir()
    atomic_write_json(
        job_dir / "status.json",
        {"state": "running", "stage": "train", "progress": 0.5, "message": "step 15/30 loss 1.234", "pid": os.getpid()},
    )
    at = app("evaluate", active_run=str(job_dir))
    assert not at.exception, at.exception
    assert any("Train adapter" in m.value for m in at.markdown)
    assert any("step 15/30" in (p.proto.text or "") for p in at.get("progress"))
    at.button(key="cancel-run").click().run()
    assert (job_dir / "CANCEL").exists()


# ------------------------------------------------------------------------------------------------ Compare


def test_compare_scoreboard_and_drilldown_escape_corpus_text(runs, tiny_corpus):
    write_run(runs, tiny_corpus)
    at = app("compare")
    assert at.title[0].value == "Compare"
    board = at.dataframe[0].value
    assert list(board["Method"]) == ["Zero-shot", "RAG", "LoRA"]
    assert board.loc[board["Method"] == "RAG", "Accuracy"].item() == 100.0  # shown in percent
    assert list(at.dataframe[1].value.columns)[:2] == ["Method", "USD / 1k queries"]
    assert any(m.label == "Most accurate" and m.value == "100%" for m in at.metric)
    body = texts(at)
    assert "42 days" in body
    # the retrieved chunk is escaped: no raw HTML or Markdown image, the gold answer highlighted
    chunk = next(m.value for m in at.markdown if "alert" in m.value)
    assert "<script>" not in chunk and "\\<script\\>" in chunk
    assert "![" not in chunk and "\\!\\[img\\]" in chunk
    assert ":green-background[**42 days**]" in chunk
    assert "\\:red\\[boom\\]" in chunk
    assert all(not m.allow_html for m in at.markdown)


def test_compare_flags_methods_no_better_than_the_prior_and_shows_why(runs, tiny_corpus):
    run_dir = write_run(runs, tiny_corpus)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    prior = {**metrics["methods"]["zero-shot"], "accuracy": 0.5, "accuracy_ci": [0.2, 0.8], "baseline": True}
    metrics["methods"]["prior"] = prior
    atomic_write_json(run_dir / "metrics.json", metrics)
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    for r in rows:
        r["why"] = 'contains "42 days"' if r["correct"] else "matches no gold alias"
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    at = app("compare")
    board = at.dataframe[0].value
    assert board.loc[board["Method"] == "Prior (baseline)", "Versus prior"].item() == "baseline"
    assert "no better than the prior" in board.loc[board["Method"] == "LoRA", "Versus prior"].item()
    assert board.loc[board["Method"] == "RAG", "Versus prior"].item() == ""  # 100% lies above the prior's interval
    assert any("LoRA" in w.value and "no better than the prior" in w.value for w in at.warning)
    assert "SQuAD v2 convention" in texts(at)
    assert "Why: contains" in texts(at)


def test_compare_filters(runs, tiny_corpus):
    write_run(runs, tiny_corpus)
    at = app("compare")
    assert "3 of 3 held-out questions" in texts(at)
    at.toggle(key="f-unans").set_value(True).run()
    assert "1 of 3 held-out questions" in texts(at)
    at.toggle(key="f-unans").set_value(False)
    at.toggle(key="f-wrong").set_value(True).run()
    assert "3 of 3 held-out questions" in texts(at)  # zero-shot is wrong on every one
    at.multiselect(key="f-methods").set_value(["rag"]).run()
    assert "0 of 3 held-out questions" in texts(at) and "No question matches" in texts(at)
    at.toggle(key="f-wrong").set_value(False)
    at.toggle(key="f-disagree").set_value(True)
    at.multiselect(key="f-methods").set_value(["rag", "lora"]).run()
    assert "2 of 3 held-out questions" in texts(at)


def test_compare_empty_state(runs, tiny_corpus):
    at = app("compare")
    assert "No finished runs yet" in texts(at)


# ------------------------------------------------------------------------------------------------ Decide


def test_decide_updates_live_with_weights_and_criteria(runs, tiny_corpus):
    write_run(runs, tiny_corpus)
    at = app("decide")
    assert at.title[0].value == "Decide"
    first = at.dataframe[0].value
    assert first.iloc[0]["method"] == "RAG"
    at.slider(key="w.accuracy").set_value(0.0)
    at.slider(key="w.hallucination").set_value(0.0)
    at.slider(key="w.latency").set_value(0.0)
    at.slider(key="w.cost").set_value(1.0).run()
    assert not at.exception
    rec = at.session_state["decision"]["rec"]
    assert rec["best"] != "zero-shot" and "zero-shot" not in rec["eligible"]  # cheapest, but 0% accurate: it fails the floor
    assert any("not eligible" in e.label for e in at.expander)
    at.slider(key="w.cost").set_value(0.0).run()
    assert any("all weights are 0" in e.value for e in at.error)


def test_decide_page_and_cli_decide_agree(runs, tiny_corpus, capsys):
    from workbench.cli.main import main as cli_main

    run_dir = write_run(runs, tiny_corpus)
    at = app("decide")
    for name, value in (("accuracy", 0.2), ("hallucination", 0.5), ("cost", 1.0), ("latency", 0.35)):
        at.slider(key=f"w.{name}").set_value(value)
    at.checkbox(key="crit.needs_citations").check()
    at.number_input(key="crit.monthly_queries").set_value(250000)
    at.selectbox(key="crit.data_changes").set_value("weekly").run()
    assert not at.exception
    page = at.session_state["decision"]["rec"]
    code = cli_main(["decide", str(run_dir), "--weights", "accuracy=0.2,hallucination=0.5,cost=1.0,latency=0.35",
                     "--criteria", "needs_citations=true", "monthly_queries=250000", "data_changes=weekly", "--json"])
    assert code == 0
    cli = json.loads(capsys.readouterr().out)
    assert json.dumps(cli, sort_keys=True) == json.dumps(page, sort_keys=True)
    assert page["inputs"]["criteria"]["data_changes"] == "weekly" and page["best"] == cli["best"]
    assert page["summary"] in texts(at).replace("\\", "")


def test_decide_citations_criterion_changes_reasons(runs, tiny_corpus):
    write_run(runs, tiny_corpus)
    at = app("decide")
    at.checkbox(key="crit.needs_citations").check().run()
    assert "cite the retrieved source passages" in texts(at)
    assert any(step.get("answer") == "yes" for step in at.session_state["decision"]["rec"]["decision_path"])


# ------------------------------------------------------------------------------------------------ Runs & export


def test_runs_page_history_compare_and_downloads(runs, tiny_corpus):
    write_run(runs, tiny_corpus, "20250101-000000-tiny-aaaa")
    write_run(runs, tiny_corpus, "20250102-000000-tiny-bbbb", acc_shift=-0.5)
    at = app("runs")
    assert at.title[0].value == "Runs & export"
    history = at.dataframe[0].value
    assert list(history["run"]) == ["20250102-000000-tiny-bbbb", "20250101-000000-tiny-aaaa"]
    deltas = [m.delta for m in at.metric if m.label == "Accuracy (B)"]
    assert "-50 pts" in deltas
    labels = [d.proto.label for d in at.get("download_button")]
    assert labels == ["HTML report", "PDF report", "Markdown", "CSV predictions", "JSON"]


def test_runs_page_loads_a_report_back(runs, tiny_corpus, tmp_path):
    from workbench.reports.html import render_html

    run_dir = write_run(runs, tiny_corpus)
    html = render_html(run_dir).encode("utf-8")
    at = app("runs")
    at.file_uploader(key="report-upload").set_value(("report.html", html, "text/html")).run()
    assert not at.exception, at.exception
    board = at.dataframe[-1].value
    assert list(board["Method"]) == ["Zero-shot", "RAG", "LoRA"]
    at.file_uploader(key="report-upload").set_value(("other.html", b"<html>no data</html>", "text/html")).run()
    assert any("no embedded run data" in e.value for e in at.error)


def test_runs_page_empty_state(runs, tiny_corpus):
    at = app("runs")
    assert "No runs yet" in texts(at)


# ------------------------------------------------------------------------------------------------ helpers


def test_highlight_is_escaped_and_case_insensitive():
    import sys

    sys.path.insert(0, str(REPO))
    from app_pages.textview import escape_markdown, highlight_markdown

    assert escape_markdown("<b>*x*</b>") == "\\<b\\>\\*x\\*\\</b\\>"
    out = highlight_markdown("Range: 12 KM (max).", ["12 km"])
    assert out == "Range\\: :green-background[**12 KM**] \\(max\\)\\."
    assert highlight_markdown("a 120 km trip", ["12"]) == "a 120 km trip"  # whole words only


# ------------------------------------------------------------------------------------------------ real run and real jobs


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, tiny_lm_dir) -> Path:
    """A real comparison (tiny random model, tiny corpus): zero-shot, RAG and a 2-step LoRA, written by workbench.run."""
    from workbench.config import build_config
    from workbench.pipeline.run import run

    root = tmp_path_factory.mktemp("realrun")
    corpus = make_corpus(root / "tiny")
    overrides = {
        "train": {"max_steps": 2, "checkpoint_every": 100},
        "generation": {"max_new_tokens": 8},
        "eval": {"groundedness": False, "bootstrap_samples": 200},
    }
    config = build_config(str(corpus), "quick", overrides=overrides, methods=["zero-shot", "rag", "lora"], model=str(tiny_lm_dir))
    return run(config, out_dir=root / "runs", run_id="20250105-000000-tiny-real")


def test_real_run_through_every_results_page(real_run, isolated_home, monkeypatch):
    import shutil

    runs = isolated_home / "runs"
    shutil.copytree(real_run, runs / real_run.name)
    monkeypatch.setenv("WORKBENCH_DEFAULT_CORPUS", str(real_run.parent.parent / "tiny"))
    predictions = [json.loads(line) for line in (real_run / "predictions.jsonl").read_text().splitlines()]

    at = app()
    assert f"Latest comparison · `{real_run.name}`" in texts(at)

    at = app("compare")
    shown_methods = list(at.dataframe[0].value["Method"])
    assert shown_methods[:3] == ["Zero-shot", "RAG", "LoRA"] and "Prior (baseline)" in shown_methods[3:]  # baselines follow the methods
    rag = next(p for p in predictions if p["method"] == "rag" and p["question_id"] == "q1")
    from app_pages.textview import escape_markdown

    shown = escape_markdown(rag["answer"]) or "*(empty answer)*"  # a random tiny model may answer nothing
    assert any(shown == m.value for m in at.markdown), "the real RAG answer is not shown"
    assert any("retrieved chunks" in e.label for e in at.expander)
    top = rag["contexts"][0]
    assert any(f"`{top['doc_id']}`" in m.value for m in at.markdown), "the retrieved chunk's document is not shown"

    at = app("decide")
    from workbench.decision.recommend import recommend
    from workbench.methods.registry import label

    metrics = json.loads((real_run / "metrics.json").read_text())
    ranked = recommend(metrics)["ranked"]  # the page's defaults are the library's default criteria and weights
    shown = at.dataframe[0].value
    assert list(shown["method"]) == [label(r["method"]) for r in ranked]
    assert list(shown["score"]) == pytest.approx([r["score"] for r in ranked])

    at = app("runs")
    assert [d.proto.label for d in at.get("download_button")] == ["HTML report", "PDF report", "Markdown", "CSV predictions", "JSON"]
    from app_pages.runs import _report_bytes
    from workbench.reports.html import load_report_html

    path = isolated_home / "report.html"
    path.write_bytes(_report_bytes(str(runs / real_run.name), "html", None)())  # what the page's HTML button serves
    back = load_report_html(path)
    assert back["metrics"]["methods"] == metrics["methods"] and back["predictions"] == predictions


def test_job_that_fails_reads_as_failed_with_the_cli_line(isolated_home, tmp_path):
    from conftest import wait_for

    from workbench.pipeline import jobs

    job = jobs.start_run(tmp_path / "no-such-corpus", methods=["zero-shot"], out_dir=tmp_path / "runs", run_id="r-missing")
    assert job.job_dir == (tmp_path / "runs" / "r-missing").resolve()
    status = wait_for(lambda: (s := jobs.job_status(job.job_dir))["state"] != "running" and s, "the failing job to finish")
    assert status["state"] == "failed"
    assert "corpus folder not found" in status["error"]
    assert not status["alive"]


def test_job_cancel_then_terminate_after_grace(isolated_home, tmp_path):
    import sys

    from conftest import wait_for

    from workbench.pipeline import jobs

    job = jobs._spawn("run", [sys.executable, "-c", "import time; time.sleep(120)"], tmp_path / "sleeper")
    assert jobs.job_status(job.job_dir)["alive"]
    jobs.cancel(job.job_dir)
    assert not jobs.terminate_if_overdue(job.job_dir, grace_s=60)  # still within the grace period
    assert jobs.terminate_if_overdue(job.job_dir, grace_s=0)
    wait_for(lambda: not jobs.is_alive(job.pid), "the terminated job to exit")
    status = jobs.job_status(job.job_dir)
    assert status["state"] == "cancelled" and not status["alive"]


def test_run_command_passes_overrides_as_cli_settings(tmp_path):
    from workbench.cli.main import parse_overrides
    from workbench.pipeline import jobs

    cmd = jobs.run_command(
        "c", methods=["rag"], preset="quick", out_dir=tmp_path, run_id="x", model="m", seed=3,
        overrides={"train": {"target_modules": ["q_proj", "v_proj"], "use_qa": False}, "retrieval": {"mode": "dense"}},
    )  # fmt: skip
    sets = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--set"]
    assert parse_overrides(sets) == {"retrieval": {"mode": "dense"}, "train": {"target_modules": ["q_proj", "v_proj"], "use_qa": False}}
    assert cmd[cmd.index("--seed") + 1] == "3" and cmd[cmd.index("--model") + 1] == "m"


def test_corpus_check_lists_problems(runs, tiny_corpus):
    at = app()
    assert any("Corpus check passed" in s.value for s in at.success)
    (tiny_corpus / "docs" / "broken.txt").write_bytes(b"\x00\x01\x02" * 100)
    at = app()
    assert any("Corpus check: 1 error(s)" in e.value for e in at.error)
    problems = at.dataframe[0].value
    assert "docs/broken.txt" in set(problems["file"])
    assert [m.value for m in at.metric][0] == "3"  # the unreadable file is skipped, the rest still loads


def test_build_page_shows_a_training_job_with_its_loss_curve(runs, tiny_corpus, isolated_home):
    import os

    job_dir = isolated_home / "jobs" / "20250104-000000-adapter-tiny-abcd"
    job_dir.mkdir(parents=True)
    atomic_write_jsonl(job_dir / "train_log.jsonl", [{"step": i, "loss": 3.0 - 0.1 * i} for i in range(1, 11)])
    atomic_write_json(
        job_dir / "status.json",
        {"state": "running", "stage": "train", "progress": 0.33, "message": "step 10/30 loss 2.000", "pid": os.getpid()},
    )
    at = app("build", build_jobs={"adapter": str(job_dir)})
    assert any("Train adapter" in m.value for m in at.markdown)
    charts = at.get("vega_lite_chart")
    assert charts, "no loss curve"
    assert "LoRA training loss" in charts[-1].proto.spec
    atomic_write_json(
        job_dir / "status.json", {"state": "done", "stage": "train", "progress": 1.0, "message": "finished", "pid": os.getpid()}
    )
    at.run()
    assert not at.exception
    assert any("Done" in m.value for m in at.markdown)


def test_build_page_follows_the_real_build_job(runs, tiny_corpus, tiny_lm_dir, isolated_home):
    """jobs.start_build runs `python -m workbench build` in the background; the page shows what that process wrote."""
    from conftest import wait_for

    from workbench.pipeline import jobs
    from workbench.storage import read_json, read_jsonl

    train = {"max_steps": 3, "rank": 2, "alpha": 4, "seq_len": 128, "batch_size": 2, "checkpoint_every": 0}
    job = jobs.start_build(tiny_corpus, "adapter", model=str(tiny_lm_dir), out_dir=isolated_home / "jobs", overrides={"train": train})
    status = wait_for(lambda: (s := jobs.job_status(job.job_dir))["state"] != "running" and s, "the build job to finish", ceiling_s=600)
    assert status["state"] == "done", (status, (job.job_dir / "job.log").read_text()[-2000:] if (job.job_dir / "job.log").exists() else "")
    log = [r for r in read_jsonl(job.job_dir / "train_log.jsonl") if "loss" in r]
    assert [r["step"] for r in log] == [1, 2, 3] and all(r["loss"] > 0 for r in log)
    result = read_json(job.job_dir / "result.json")
    assert result["train"]["steps"] == 3 and result["train"]["final_loss"] == pytest.approx(log[-1]["loss"], abs=1e-5)
    at = app("build", build_jobs={"adapter": str(job.job_dir)})
    assert any("Done" in m.value for m in at.markdown)
    charts = at.get("vega_lite_chart")
    assert charts and "LoRA training loss" in charts[-1].proto.spec


def test_a_run_started_elsewhere_can_be_followed_after_a_reload(runs, tiny_corpus):
    import os

    run_dir = runs / "20250106-000000-tiny-else"
    run_dir.mkdir()
    atomic_write_json(run_dir / "config.json", {"corpus": str(tiny_corpus), "methods": ["zero-shot"], "preset": "quick"})
    atomic_write_json(
        run_dir / "status.json", {"state": "running", "stage": "answer", "progress": 0.2, "message": "zero-shot", "pid": os.getpid()}
    )
    at = app()  # a fresh session: nothing in session state points at the run
    assert any("A comparison of this corpus is running" in m.value for m in at.markdown)
    at.button(key="follow-run").click().run()
    assert at.session_state["active_run"] == str(run_dir)
    at = app("evaluate", active_run=str(run_dir))
    caption = next(m.value for m in at.markdown if "Load corpus" in m.value)
    assert "Build index" not in caption and "Train adapter" not in caption  # stages follow the run's methods


# ------------------------------------------------------------------------------------------------ example runs, state in the URL


@pytest.fixture()
def example(tmp_path, tiny_corpus, monkeypatch) -> Path:
    """A stand-in shipped example: a finished run folder under WORKBENCH_EXAMPLES/<corpus>/ with meta naming date and revision."""
    root = tmp_path / "examples"
    run_dir = write_run(root / tiny_corpus.name, tiny_corpus, run_id="example-tiny-20261130")
    atomic_write_json(run_dir / "meta.json", {"git_revision": "abc1234", "written": "2026-11-30T12:00:00+00:00", "machine": {"cpu_count": 2}})
    monkeypatch.setenv("WORKBENCH_EXAMPLES", str(root))
    return run_dir


def test_first_page_shows_the_example_when_the_user_has_no_run(runs, example):
    from workbench.methods.registry import label

    at = app()
    shown = texts(at)
    assert "Example run (made on 2026-11-30, revision abc1234)" in shown
    from app_pages.textview import escape_markdown

    rec = json.loads((example / "metrics.json").read_text())["recommendation"]
    assert any(escape_markdown(rec["summary"]) in s.value for s in at.success)
    board = next(d.value for d in at.dataframe if "Accuracy 95% CI" in d.value.columns)
    assert list(board["Method"]) == [label(m) for m in ("zero-shot", "rag", "lora")]
    assert list(board["Accuracy"]) == ["0%", "100%", "50%"]  # from the example's metrics.json, not canned


def test_example_fills_compare_decide_and_runs_but_never_the_runs_table(runs, example):
    for page in ("compare", "decide"):
        at = app(page)
        assert "Example run (made on 2026-11-30, revision abc1234)" in texts(at), page
        assert not [i for i in at.info if "No finished runs" in i.value], page
    at = app("runs")
    assert "No runs yet" in texts(at)  # the user's own history stays empty
    assert "Example run (made on 2026-11-30" in texts(at)
    assert [d.proto.label for d in at.get("download_button")][:1] == ["HTML report"]  # the example can be exported
    write_run(runs, example.parent.parent.parent / "tiny")  # once the user has a run of their own, the example steps aside
    import streamlit as st

    st.cache_data.clear()  # the run listing is cached for a few seconds
    at = app("compare")
    assert "Example run (made on" not in texts(at)


def test_no_example_present_is_handled(runs, tiny_corpus, monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_EXAMPLES", str(tmp_path / "nowhere"))
    at = app("compare")
    assert any("No finished runs yet" in i.value for i in at.info)
    at = app()
    assert "Example run" not in texts(at)


def test_decide_weights_and_compare_filters_come_from_the_url(runs, tiny_corpus):
    write_run(runs, tiny_corpus)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("app_pages/decide.py")
    at.query_params["w.accuracy"] = "0.9"
    at.query_params["crit.monthly_queries"] = "50000"
    at.run()
    assert not at.exception, at.exception
    assert at.slider(key="w.accuracy").value == pytest.approx(0.9)
    assert at.number_input(key="crit.monthly_queries").value == 50000
    # that a changed weight is written back to the address (and survives a reload) is checked in the real browser

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    at.switch_page("app_pages/compare.py")
    at.query_params["f-wrong"] = "true"
    at.query_params["tab"] = "Per-question answers"
    at.run()
    assert not at.exception, at.exception
    assert at.toggle(key="f-wrong").value is True


def test_evaluate_finds_a_running_job_after_a_reload_and_asks_before_a_second(runs, tiny_corpus):
    import os
    import sys

    run_dir = runs / "20250107-000000-tiny-live"
    run_dir.mkdir()
    command = [sys.executable, "-m", "workbench", "run", "--corpus", str(tiny_corpus), "--methods", "zero-shot,few-shot", "--preset", "demo"]
    atomic_write_json(run_dir / "job.json", {"kind": "run", "pid": os.getpid(), "command": command, "estimate_s": 120.0,
                                             "estimate_stages": {"corpus": 1.0, "model": 5.0, "answer": 100.0, "score": 14.0}})  # fmt: skip
    atomic_write_json(
        run_dir / "status.json",
        {"state": "running", "stage": "answer", "progress": 0.5, "message": "zero-shot: question 1-8 of 8 · 4 s into this batch",
         "pid": os.getpid(), "started": "2099-01-01T00:00:00+00:00"},
    )  # fmt: skip
    at = app("evaluate")  # a fresh session, as after a reload
    assert at.session_state["active_run"] == str(run_dir)
    assert at.multiselect(key="eval-methods").value == ["zero-shot", "few-shot"]  # the settings it was started with
    assert at.session_state["preset"] == "demo"
    assert any("left (estimated" in m.value for m in at.markdown)  # live ETA from the estimate in job.json
    assert any("Estimated duration" in m.value for m in at.markdown)  # and the estimate of the next run
    start = at.button(key="start-run")
    assert start.disabled  # a second comparison needs a confirmation first
    at.checkbox(key="confirm-second").check().run()
    assert not at.button(key="start-run").disabled


def test_build_page_hides_settings_that_do_nothing_and_says_what_was_reused(runs, tiny_corpus, isolated_home):
    at = app("build")
    keys = {w.key for w in at.number_input}
    assert "cfg.quick.index.hnsw_m" not in keys and "cfg.quick.index.ivf_nlist" not in keys  # flat index: neither applies
    assert "cfg.quick.retrieval.rrf_k" in keys  # hybrid retrieval (the default) fuses with RRF
    at.selectbox(key="cfg.quick.index.index_type").select("hnsw").run()
    at.selectbox(key="cfg.quick.retrieval.mode").select("dense").run()
    keys = {w.key for w in at.number_input}
    assert "cfg.quick.index.hnsw_m" in keys and "cfg.quick.index.ivf_nlist" not in keys and "cfg.quick.retrieval.rrf_k" not in keys

    job_dir = isolated_home / "jobs" / "20250101-000000-index-tiny-abcd"
    job_dir.mkdir(parents=True)
    atomic_write_json(job_dir / "config.json", {"what": "index"})
    atomic_write_json(job_dir / "status.json", {"state": "done", "stage": "index", "progress": 1.0, "pid": 1, "started": "2025-01-01T00:00:00+00:00"})
    atomic_write_json(job_dir / "result.json", {"index": {"cache_hit": True, "n_chunks": 52, "build_seconds": 7.1}, "wall_seconds": 19.2})
    at = app("build", build_jobs={"index": str(job_dir)})
    assert any("Reused the cached index (52 chunks, built earlier in 7.10 s); nothing was rebuilt" in s.value for s in at.success), [s.value for s in at.success]
