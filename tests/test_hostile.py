"""Hostile input (issue 14), class by class: nothing outside the corpus is read, no model folder's code runs,
nothing stored is overwritten, no setting is misread, bad text is refused at import, one bad run folder
does not break the listing, damaged caches are rebuilt, every report format escapes. RELIABILITY.md lists them.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import make_tiny_corpus

from workbench.cli.main import build_parser, config_from_args, main
from workbench.config import ConfigError, RunConfig, build_config
from workbench.corpus.check import check_corpus
from workbench.corpus.load import load_corpus, read_questions
from workbench.corpus.loaders import CorpusError, DocumentError, load_documents
from workbench.errors import WorkbenchError
from workbench.pipeline.runstore import UnreadableRunError, check_run_id, list_runs, load_run, prepare_run_folder

SECRET = "TOP-SECRET-OUTSIDE-THE-CORPUS 31337"


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg.strip() and "\n" not in msg, f"not one line: {msg!r}"
    return msg


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.fixture()
def corpus(tmp_path) -> Path:
    return make_tiny_corpus(tmp_path / "c")


def cli(argv: list[str], capsys) -> tuple[int, str]:
    """Run the CLI in-process: (exit code, stderr); a traceback fails the test."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


# ------------------------------------------------------------------------------------------------ corpus paths


def test_symlinks_in_docs_are_never_followed(tmp_path, corpus):
    outside = tmp_path / "secret.txt"
    outside.write_text(SECRET)
    (tmp_path / "secretdir").mkdir()
    (tmp_path / "secretdir" / "s.md").write_text(SECRET)
    docs = corpus / "docs"
    (docs / "leak.txt").symlink_to(outside)
    (docs / "leakdir").symlink_to(tmp_path / "secretdir", target_is_directory=True)
    (docs / "again.md").symlink_to(docs / "products" / "vantor.md")  # inside docs/: would be a second copy
    (docs / "dangling.txt").symlink_to(tmp_path / "missing.txt")
    before = snapshot(corpus)

    loaded = load_corpus(corpus, progress=lambda m, f: None)
    assert sorted(d.doc_id for d in loaded.documents) == ["company/history.md", "policies/returns.txt", "products/vantor.md"]
    assert not any(SECRET in d.text for d in loaded.documents)
    _, problems = load_documents(docs)
    assert sum("symbolic link" in p for p in problems) == 4

    report = check_corpus(corpus)
    assert report.ok and report.counts["documents"] == 3
    warned = {p.file: p.message for p in report.warnings if "symbolic link" in p.message}
    assert set(warned) == {"docs/leak.txt", "docs/leakdir", "docs/again.md", "docs/dangling.txt"}
    assert "outside the corpus docs/ folder" in warned["docs/leak.txt"] and "docs/products/vantor.md" in warned["docs/again.md"]
    assert snapshot(corpus) == before


def test_questions_file_or_docs_folder_linked_outside_are_errors(tmp_path, corpus):
    elsewhere = tmp_path / "elsewhere.jsonl"
    shutil.move(corpus / "questions.jsonl", elsewhere)
    (corpus / "questions.jsonl").symlink_to(elsewhere)
    with pytest.raises(CorpusError) as exc:
        read_questions(corpus)
    assert "outside the corpus folder" in one_line(exc)
    shutil.move(corpus / "docs", tmp_path / "realdocs")
    (corpus / "docs").symlink_to(tmp_path / "realdocs", target_is_directory=True)
    assert any("docs/ is a symbolic link" in str(p) for p in check_corpus(corpus).errors)


def test_duplicate_document_ids_name_both_files(corpus, monkeypatch):
    from workbench.corpus import loaders

    monkeypatch.setattr(loaders, "doc_id_for", lambda path, root: "same.md")  # e.g. two names that normalise alike
    with pytest.raises(DocumentError) as exc:
        load_documents(corpus / "docs")
    msg = one_line(exc)
    assert "same document id 'same.md'" in msg and "history.md" in msg and "returns.txt" in msg


# ------------------------------------------------------------------------------------------------ model folders


def test_model_folder_with_custom_code_is_refused_without_running_it(tmp_path, tiny_lm_dir):
    from workbench.backends.models import ModelError, load_generator

    folder = tmp_path / "evil"
    shutil.copytree(tiny_lm_dir, folder)
    marker = tmp_path / "PWNED"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "evil", "auto_map": {"AutoModelForCausalLM": "evil.Evil"}}))
    with pytest.raises(ModelError) as exc:
        load_generator(str(folder))
    assert "needs custom code" in one_line(exc) and "never runs" in str(exc.value)
    assert not marker.exists()

    tok_only = tmp_path / "evil_tok"
    shutil.copytree(tiny_lm_dir, tok_only)
    tcfg = json.loads((tok_only / "tokenizer_config.json").read_text())
    (tok_only / "tokenizer_config.json").write_text(json.dumps({**tcfg, "auto_map": {"AutoTokenizer": ["evil.Tok", None]}}))
    with pytest.raises(ModelError, match="needs custom code"):
        load_generator(str(tok_only))


def test_model_folder_with_only_pickled_weights_is_refused(tmp_path, tiny_lm_dir):
    from workbench.backends.models import ModelError, load_generator

    folder = tmp_path / "pickled"
    shutil.copytree(tiny_lm_dir, folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ModelError) as exc:
        load_generator(str(folder))
    assert "no .safetensors weights" in one_line(exc) and "pytorch_model.bin" in str(exc.value)


def test_embedder_folder_with_custom_modules_is_refused(tmp_path, tiny_embedder_dir):
    from workbench.backends.models import ModelError, embedder_path

    folder = tmp_path / "emb"
    shutil.copytree(tiny_embedder_dir, folder)
    (folder / "modules.json").write_text(json.dumps([{"idx": 0, "name": "0", "path": "", "type": "evil_module.Evil"}]))
    with pytest.raises(ModelError, match="needs custom code"):
        embedder_path(str(folder))


# ------------------------------------------------------------------------------------------------ run folders and reports


@pytest.mark.parametrize("run_id", ["../../x", "a/b", ".", "..", ".hidden", "", "-rf", "x" * 200, "a\x00b", "a b", "/abs"])
def test_unsafe_run_ids_are_refused(tmp_path, run_id):
    with pytest.raises(ConfigError) as exc:
        prepare_run_folder(tmp_path / "runs", run_id)
    assert "not a safe folder name" in one_line(exc)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "x").exists()


def test_run_only_writes_into_a_new_folder_or_one_of_its_runs(tmp_path):
    runs = tmp_path / "runs"
    foreign = runs / "mine"
    foreign.mkdir(parents=True)
    (foreign / "config.json").write_text('{"my": "own settings"}')
    with pytest.raises(ConfigError, match="not a workbench run folder"):
        prepare_run_folder(runs, "mine")
    assert (foreign / "config.json").read_text() == '{"my": "own settings"}'
    (runs / "link").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(ConfigError, match="symbolic link"):
        prepare_run_folder(runs, "link")
    (runs / "afile").write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        prepare_run_folder(runs, "afile")
    failed = runs / "failed-run"
    failed.mkdir()
    (failed / "config.json").write_text('{"run_id": "failed-run"}')
    (failed / "status.json").write_text('{"state": "failed", "error": "x"}')
    (failed / "error.log").write_text("trace")
    assert prepare_run_folder(runs, "failed-run") == failed
    assert prepare_run_folder(runs, "fresh").is_dir() and check_run_id("2026-01-01_run.v2+x") == "2026-01-01_run.v2+x"
    (failed / "status.json").write_text('{"state": "done"}')
    (failed / "metrics.json").write_text('{"methods": {}}')
    before = snapshot(failed)
    with pytest.raises(ConfigError, match="a finished run is already there"):  # and its status is not turned into 'failed'
        prepare_run_folder(runs, "failed-run")
    assert snapshot(failed) == before


def test_run_cli_refuses_bad_run_ids_and_unwritable_out_in_one_line(tmp_path, corpus, capsys):
    rc, err = cli(["run", "--corpus", str(corpus), "--methods", "zero-shot", "--out", str(tmp_path / "runs"), "--run-id", "../escape"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "not a safe folder name" in err
    assert not (tmp_path / "escape").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, err = cli(["run", "--corpus", str(corpus), "--methods", "zero-shot", "--out", str(blocker / "runs")], capsys)
    assert rc != 0 and err.count("\n") == 1 and str(blocker) in err and blocker.read_text() == "x"


@pytest.fixture()
def finished_run(tmp_path) -> Path:
    from test_report import make_run

    return make_run(tmp_path / "runs" / "20250501-kestrel")


def test_report_out_never_overwrites_a_runs_files(finished_run, tmp_path, capsys):
    before = snapshot(finished_run)
    for name, fmt in (("metrics.json", "json"), ("config.json", "json"), ("predictions.jsonl", "json"), ("status.json", "json"), ("meta.json", "md")):
        rc, err = cli(["report", str(finished_run), "--format", fmt, "--out", str(finished_run / name)], capsys)
        assert rc == 1 and err.count("\n") == 1 and name in err
    assert snapshot(finished_run) == before
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    rc, err = cli(["report", str(finished_run), "--format", "md", "--out", str(notes)], capsys)
    assert rc == 1 and "not a .md file" in err and notes.read_text() == "mine"
    folder = tmp_path / "exports"
    folder.mkdir()
    rc, _ = cli(["report", str(finished_run), "--format", "csv", "--out", str(folder)], capsys)
    assert rc == 0 and (folder / "report.csv").is_file()
    rc, err = cli(["report", str(finished_run), "--format", "html", "--out", str(notes / "x.html")], capsys)
    assert rc == 1 and err.count("\n") == 1 and "cannot write the report" in err and str(notes) in err


def test_os_errors_reaching_the_cli_are_one_line_naming_the_path(tmp_path, capsys, monkeypatch):
    from workbench.pipeline import runstore

    def boom(runs_dir):
        raise PermissionError(13, "Permission denied", str(tmp_path / "runs"))

    monkeypatch.setattr(runstore, "list_runs", boom)
    rc, err = cli(["runs", "--out", str(tmp_path / "runs")], capsys)
    assert rc == 1 and err == f"error: {tmp_path / 'runs'}: Permission denied; check the path and its permissions\n"


def test_every_library_error_class_has_the_one_base():
    import inspect
    import pkgutil

    import workbench

    errors = []
    for info in pkgutil.walk_packages(workbench.__path__, "workbench."):
        if info.name.endswith("__main__"):
            continue
        module = __import__(info.name, fromlist=["x"])
        errors += [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__ and issubclass(c, Exception)]
    assert len(errors) >= 18 and all(issubclass(c, WorkbenchError) for c in errors), [c for c in errors if not issubclass(c, WorkbenchError)]


# ------------------------------------------------------------------------------------------------ settings


def _args(corpus: Path, *sets: str):
    return build_parser().parse_args(["run", "--corpus", str(corpus), *[a for s in sets for a in ("--set", s)]])


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("eval.groundedness=nope", "eval.groundedness = 'nope' is not a yes/no value"),
        ("generation.max_prompt_tokens=-5", "generation.max_prompt_tokens -5 must be at least 64"),
        ("retrieval.rrf_k=abc", "retrieval.rrf_k = 'abc' is not a whole number"),
        ("retrieval.rrf_k=0", "retrieval.rrf_k 0 must be at least 1"),
        ("eval.max_questions=2.5", "eval.max_questions = 2.5 is not a whole number"),
        ("eval.max_questions=-1", "max_questions and usd_per_hour must be >= 0"),
        ("eval.usd_per_hour=NaN", "eval.usd_per_hour = nan is not a finite number"),
        ("train.learning_rate=1e999", "is not a finite number"),
        ("retrieval.mode=sparse", "retrieval.mode = 'sparse' is unknown; use one of dense, bm25, hybrid"),
        ("split.chunk_sise=300", "unknown setting 'split.chunk_sise' (did you mean 'split.chunk_size'?); valid: split.mode"),
        ("splt.chunk_size=300", "unknown section 'splt' (did you mean 'split'?)"),
        ("train.rank=true", "train.rank = True is not a whole number"),
        ("eval.bootstrap_samples=0", "bootstrap_samples 0 must be between 1 and 1000000"),
    ],
)
def test_bad_settings_are_refused_before_any_work(corpus, setting, expected):
    with pytest.raises(ConfigError) as exc:
        config_from_args(_args(corpus, setting))
    assert expected in one_line(exc)


def test_settings_are_coerced_to_their_types(corpus):
    cfg = config_from_args(_args(corpus, "eval.groundedness=no", "train.use_qa=YES", "eval.max_questions=3", "retrieval.rrf_k=7",
                                 "train.target_modules=q_proj,v_proj", "index.embedder=123", "eval.test_fraction=0.5"))  # fmt: skip
    assert cfg.eval.groundedness is False and cfg.train.use_qa is True and cfg.eval.max_questions == 3 and cfg.retrieval.rrf_k == 7
    assert cfg.train.target_modules == ["q_proj", "v_proj"] and cfg.index.embedder == "123" and cfg.eval.test_fraction == 0.5
    for word, value in (("true", True), ("False", False), ("1", True), ("0", False), ("yes", True), ("NO", False)):
        assert build_config("c", overrides={"eval": {"groundedness": word}}).eval.groundedness is value
    for word in ("y", "on", "off", "2", ""):
        with pytest.raises(ConfigError):
            build_config("c", overrides={"eval": {"groundedness": word}})
    # the app passes widget values and config.json round-trips through the same coercion
    assert RunConfig.from_dict({**cfg.to_dict(), "eval": {**cfg.to_dict()["eval"], "max_questions": "4"}}).eval.max_questions == 4


@pytest.mark.parametrize(
    "toml, expected",
    [
        ("[defaults]\nchunk_sise = 300\n", "unknown setting 'chunk_sise' (did you mean 'chunk_size'?)"),
        ("defaults = 5\n", "[defaults] must be a table of settings"),
        ('[defaults]\nchunk_size = "big"\n', "split.chunk_size = 'big' is not a whole number"),
        ("[defaults.train]\nrnak = 8\n", "unknown setting 'train.rnak'"),
        ("[defaults]\nmodel = 'x'\n", "unknown setting 'model'"),
    ],
)
def test_bad_corpus_toml_defaults_are_errors_everywhere(corpus, capsys, toml, expected):
    (corpus / "corpus.toml").write_text('title = "Tiny"\n' + toml)
    assert any(expected in p.message for p in check_corpus(corpus).errors)
    with pytest.raises((ConfigError, CorpusError)) as exc:
        config_from_args(_args(corpus))
    assert expected in one_line(exc)
    with pytest.raises(CorpusError, match="corpus.toml"):
        load_corpus(corpus)


def test_corpus_toml_section_tables_are_applied(corpus):
    (corpus / "corpus.toml").write_text('[defaults]\nchunk_size = 300\n[defaults.train]\nrank = "8"\n')
    cfg = config_from_args(_args(corpus))
    assert cfg.split.chunk_size == 300 and cfg.train.rank == 8


# ------------------------------------------------------------------------------------------------ text that cannot be written


@pytest.mark.parametrize(
    "line, expected",
    [
        ('{"id": "s", "question": "Who?", "answers": ["Ilse \\ud800 Marwick"]}', "\\ud800, a lone UTF-16 surrogate"),
        ('{"id": "s", "question": "Who \\udfff?", "answers": ["x"]}', "lone UTF-16 surrogate"),
        ('{"id": "s", "question": "Who?", "answers": ["x"], "\\ud800": 1}', "lone UTF-16 surrogate"),
        ('{"id": "n", "question": "Who?", "answers": [NaN]}', "NaN is not a number"),
        ('{"id": "n", "question": "Who?", "answers": ["x"], "difficulty": -Infinity}', "-Infinity is not a number"),
        ('{"id": "n", "question": "Who?", "answers": [1e999]}', "1e999 is too large to be a finite number"),
        ('{"id": "d", "question": "Who?", "answers": ["x"], "meta": ' + "[" * 50000 + "]" * 50000 + "}", "nested too deeply"),
    ],
)
def test_unwritable_text_and_non_finite_numbers_are_refused_at_import(corpus, line, expected):
    path = corpus / "questions.jsonl"
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(CorpusError) as exc:
        read_questions(corpus)
    assert one_line(exc).startswith(f"{path}:11: ") and expected in str(exc.value)
    errors = check_corpus(corpus).errors
    assert [(p.file, p.line) for p in errors] == [("questions.jsonl", 11)] and expected in errors[0].message


def test_squad_json_with_nan_surrogate_or_deep_nesting_is_refused(corpus):
    (corpus / "questions.jsonl").unlink()
    squad = corpus / "questions.json"
    good = {"data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [{"id": "a", "question": "Q?", "answers": [{"text": "x"}]}]}]}]}
    text = json.dumps(good, indent=1)
    squad.write_text(text.replace('"x"', "NaN"))
    with pytest.raises(CorpusError) as exc:
        read_questions(corpus)
    assert "NaN is not a number" in one_line(exc) and f"{squad}:" in str(exc.value)
    squad.write_text(text.replace('"Q?"', '"Q\\ud800?"'))
    with pytest.raises(CorpusError, match="qas\\[0\\]: text holds .*surrogate"):
        read_questions(corpus)
    squad.write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(CorpusError, match="nested too deeply"):
        read_questions(corpus)


def test_csv_with_encoded_surrogate_bytes_is_not_utf8(corpus):
    (corpus / "questions.jsonl").unlink()
    (corpus / "questions.csv").write_bytes(b"question,answer\nWho?,Ilse \xed\xa0\x80 Marwick\n")
    with pytest.raises(CorpusError, match="questions.csv:2: is not valid UTF-8"):
        read_questions(corpus)


# ------------------------------------------------------------------------------------------------ listing runs


def test_malformed_run_folders_are_listed_as_unreadable(finished_run, capsys):
    runs = finished_run.parent
    bad = {
        "truncated-config": {"config.json": '{"corpus": "x", "pres', "status.json": '{"state": "done"}'},
        "status-list": {"status.json": "[1, 2]"},
        "metric-text": {"status.json": '{"state": "done"}', "metrics.json": '{"methods": {"rag": {"accuracy": "high"}}}'},
        "metric-nan": {"status.json": '{"state": "done"}', "metrics.json": '{"methods": {"rag": {"accuracy": NaN}}}'},
        "methods-list": {"status.json": '{"state": "done"}', "metrics.json": '{"methods": [1]}'},
        "deep": {"status.json": "[" * 100000 + "]" * 100000},
        "bad-pid": {"status.json": '{"state": "running", "pid": "abc"}'},
        "binary": {"status.json": '{"state": "done"}', "config.json": b"\xff\xfe\x00garbage"},
    }
    for name, files in bad.items():
        (runs / name).mkdir()
        for fname, data in files.items():
            (runs / name / fname).write_bytes(data if isinstance(data, bytes) else data.encode())
    rows = {r["run_id"]: r for r in list_runs(runs)}
    assert rows[finished_run.name]["state"] == "done" and rows[finished_run.name]["methods"]["rag"]["accuracy"] is not None
    for name in bad:
        assert rows[name]["state"] == "unreadable" and rows[name]["error"], name
    assert "config.json" in rows["truncated-config"]["error"] and "not a number" in rows["metric-text"]["error"]
    rc = main(["runs", "--out", str(runs)])
    out = capsys.readouterr()
    listed = [line.split()[:2] for line in out.out.splitlines()]
    assert rc == 0 and "Traceback" not in out.err and sorted(n for n, state in listed if state == "unreadable") == sorted(bad)
    with pytest.raises(UnreadableRunError) as exc:
        load_run(runs / "metric-text")
    assert "methods.rag.accuracy" in one_line(exc)


# ------------------------------------------------------------------------------------------------ caches


@pytest.fixture(scope="module")
def embedder():
    from workbench.retrieval.embedding import Embedder

    return Embedder()


def test_edited_index_entry_with_updated_manifest_is_rebuilt(tmp_path, embedder):
    from workbench.config import IndexConfig, SplitConfig
    from workbench.paths import cache_dir
    from workbench.retrieval.index import _sha256, get_or_build_index
    from workbench.types import Document

    docs = [Document("a.md", "Kestrel Labs was founded in 1987 in Tartu. " * 5), Document("b.md", "The returns desk is in Kaunas. " * 5)]
    split, icfg = SplitConfig(chunk_size=120, chunk_overlap=10), IndexConfig()
    index, info = get_or_build_index(docs, split, icfg, embedder)
    entry = cache_dir("indexes") / info["key"]
    chunks = entry / "chunks.jsonl"
    chunks.write_text(chunks.read_text().replace("1987", "1999"))
    manifest = json.loads((entry / "manifest.json").read_text())
    manifest["files"]["chunks.jsonl"] = _sha256(chunks)  # an edit that also updates the manifest
    (entry / "manifest.json").write_text(json.dumps(manifest))
    messages: list[str] = []
    again, info2 = get_or_build_index(docs, split, icfg, embedder, progress=lambda m, f: messages.append(m))
    assert not info2["cache_hit"] and any(m.startswith("warning: cached index") for m in messages)
    assert all("1999" not in c.text for c in again.chunks) and any("1987" in c.text for c in again.chunks)
    _, third = get_or_build_index(docs, split, icfg, embedder)
    assert third["cache_hit"]
    # the seal alone is not enough: chunks that do not match the documents are refused too
    (cache_dir("index_seals") / info["key"]).unlink()
    _, fourth = get_or_build_index(docs, split, icfg, embedder)
    assert not fourth["cache_hit"]


@pytest.mark.parametrize("damage", ["garbage", "truncate", "wrong-schema"])
def test_damaged_answer_cache_is_set_aside_and_rebuilt(tmp_path, damage, caplog):
    from workbench.backends.answer_cache import AnswerCache
    from workbench.backends.base import GenResult

    path = tmp_path / "answers.sqlite"
    with AnswerCache(path) as cache:
        cache.put_many([(f"k{i}", GenResult(f"answer {i}", 3, 2, 0.1, 0.2)) for i in range(200)])
    if damage == "garbage":
        path.write_bytes(b"not a database" * 500)
    elif damage == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[:100] + b"\x00" * 4000 + data[4100:])
    else:
        path.unlink()
        db = sqlite3.connect(path)
        db.execute("CREATE TABLE answers (key TEXT PRIMARY KEY)")
        db.commit()
        db.close()
    with AnswerCache(path) as cache:
        results = cache.get_many([f"k{i}" for i in range(200)])
        assert all(r is None or (r.text.startswith("answer") and r.cached) for r in results)
        cache.put_many([("new", GenResult("fresh", 1, 1, 0.1, 0.1))])
        assert cache.get("new").text == "fresh"
    if damage != "truncate":  # a torn page may still leave readable rows: those must be correct, the rest misses
        assert any(p.name.startswith("answers.sqlite.damaged-") for p in tmp_path.iterdir())
        assert "is damaged" in caplog.text


# ------------------------------------------------------------------------------------------------ escaping in every format


def test_every_report_format_escapes_hostile_labels_and_text(finished_run, tmp_path):
    from workbench.reports.export import render_csv, render_json, render_markdown, write_report
    from workbench.reports.html import render_html

    hostile = "<img src=x onerror=alert(1)>[click](http://evil.example)![](http://evil.example/t.png)"
    metrics = json.loads((finished_run / "metrics.json").read_text())
    metrics["methods"][hostile] = metrics["methods"]["rag"]
    metrics["recommendation"]["best"] = hostile
    metrics["recommendation"]["ranked"][0]["method"] = hostile
    metrics["corpus"]["title"] = hostile
    (finished_run / "metrics.json").write_text(json.dumps(metrics))
    rows = [json.loads(line) for line in (finished_run / "predictions.jsonl").read_text().splitlines()]
    rows[0]["question"] = rows[0]["answer"] = hostile
    (finished_run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    md = render_markdown(finished_run)
    assert "<img" not in md and "](http" not in md and "## Recommendation: &lt;img" in md
    html = render_html(finished_run)
    assert "<img" not in html.split('id="workbench-run">')[0] and "&lt;img src=x" in html
    assert "onerror=alert(1)>" not in html
    assert json.loads(render_json(finished_run))["metrics"]["recommendation"]["best"] == hostile  # data, not markup
    assert "<img" in render_csv(finished_run)  # CSV is data too: only formula prefixes are neutralised (tested elsewhere)
    pdf = write_report(finished_run, "pdf", tmp_path / "r.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")


def test_report_of_a_run_holding_a_lone_surrogate_does_not_crash(finished_run, tmp_path):
    from workbench.reports.export import write_report

    rows = [json.loads(line) for line in (finished_run / "predictions.jsonl").read_text().splitlines()]
    rows[0]["answer"] = "bad \ud800 text"
    (finished_run / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))  # json escapes it as \\ud800
    for fmt in ("html", "md", "csv", "json"):
        out = write_report(finished_run, fmt, tmp_path / f"r.{fmt}")
        out.read_bytes().decode("utf-8")


def test_app_pages_survive_malformed_run_folders(isolated_home, tmp_path, monkeypatch):
    from test_app import app, make_corpus, write_run

    corpus = make_corpus(tmp_path / "tiny")
    monkeypatch.setenv("WORKBENCH_DEFAULT_CORPUS", str(corpus))
    runs = isolated_home / "runs"
    runs.mkdir(exist_ok=True)
    write_run(runs, corpus, "20250101-000000-tiny-good")
    for name, files in {
        "20250102-truncated": {"status.json": '{"state": "done"}', "config.json": '{"corpus": "', "metrics.json": '{"methods": {"rag": {"accuracy": 0.5}}}'},
        "20250103-status-list": {"status.json": "[]"},
        "20250104-metric-text": {"status.json": '{"state": "done"}', "metrics.json": '{"methods": {"rag": {"accuracy": "high"}}}'},
    }.items():
        (runs / name).mkdir()
        for fname, text in files.items():
            (runs / name / fname).write_text(text)
    at = app("runs")
    history = at.dataframe[0].value
    assert list(history["state"]).count("⚠ unreadable") == 3 and "✓ done" in list(history["state"])
    for page in ("compare", "decide"):
        app(page)  # the finished good run is still shown; no exception, no "Unexpected error"
