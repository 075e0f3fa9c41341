"""Freshness experiment: seeded fact edits on a corpus copy, patch files, and the re-index/retrain measurement."""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

import pytest
from conftest import TINY_OVERRIDES

from workbench.cli.freshness import main
from workbench.config import build_config
from workbench.corpus.load import load_corpus
from workbench.experiments.fact_edits import EDITS_FILE, FactEdit, FreshnessError, apply_edits, generate_edits, load_patch, new_value
from workbench.experiments.freshness import classify


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _questions(root: Path) -> dict[str, dict]:
    return {r["id"]: r for r in map(json.loads, (root / "questions.jsonl").read_text().splitlines())}


def test_generate_edits_is_deterministic_prefers_train_and_changes_values(fact_corpus_copy):
    corpus = load_corpus(fact_corpus_copy)
    edits = generate_edits(corpus, 10, seed=0)
    assert edits == generate_edits(corpus, 10, seed=0)
    assert edits != generate_edits(corpus, 10, seed=1)
    assert len(edits) == 10 and len({e.question_id for e in edits}) == 10
    assert all(e.split == "train" for e in edits)  # the corpus has enough editable train questions
    docs = {d.doc_id: d.text for d in corpus.documents}
    by_id = {q.id: q for q in corpus.questions}
    for e in edits:
        assert Path(e.doc_id).suffix in (".md", ".txt")
        assert e.old == by_id[e.question_id].answers[0] and e.old in docs[e.doc_id]
        assert e.new != e.old and e.new not in docs[e.doc_id]


def test_many_generated_edits_apply_cleanly_to_the_fact_corpus(fact_corpus_copy, tmp_path):
    before = _snapshot(fact_corpus_copy)
    corpus = load_corpus(fact_corpus_copy)
    edits = generate_edits(corpus, 40, seed=3)
    assert len(edits) >= 30
    edited = load_corpus(apply_edits(fact_corpus_copy, edits, tmp_path / "edited"))
    assert _snapshot(fact_corpus_copy) == before
    docs = {d.doc_id: d.text for d in edited.documents}
    answers = {q.id: q.answers for q in edited.questions}
    for e in edits:
        assert e.new in docs[e.doc_id] and answers[e.question_id] == [e.new]


@pytest.mark.parametrize(
    ("old", "qtype", "shape", "kind"),
    [
        ("5,120", "numeric", r"^\d,\d{3}$", "number"),
        ("14 hours", "numeric", r"^\d+ hours$", "number"),
        ("$1,299", "numeric", r"^\$\d,\d{3}$", "number"),
        ("99.95 percent", "numeric", r"^\d{2}\.\d{2} percent$", "number"),
        ("March 4, 2014", "date", r"^March 4, 20(1[1-7])$", "date"),
        ("July 1", "date", r"^July \d{1,2}$", "date"),
        ("2019-06-04", "date", r"^20(1\d|2[0-2])-06-04$", "date"),
        ("7.3.0", "single", r"^7\.\d\.0$", "number"),
        ("IP67", "single", r"^[A-Z][A-Z0-9]{3}$", "code"),
        ("seven", "numeric", r"^[a-z]+$", "number"),
        ("Rafael Oyelaran-Stone", "single", r"^[A-Z][a-z]+ [A-Z][a-z]+-[A-Z][a-z]+$", "name"),
        ("moose", "single", r"^[a-z]+$", "word"),
    ],
)
def test_new_value_keeps_the_kind_and_format(old, qtype, shape, kind):
    for seed in range(5):
        new, got_kind = new_value(old, qtype, random.Random(seed))
        assert new != old and re.match(shape, new), (old, new)
        assert got_kind == kind


def test_apply_edits_replaces_facts_and_answers_in_a_copy_only(tiny_corpus, tmp_path):
    before = _snapshot(tiny_corpus)
    corpus = load_corpus(tiny_corpus)
    edits = generate_edits(corpus, 3, seed=0)
    assert [e.split for e in edits] == ["train"] * 3
    out = apply_edits(tiny_corpus, edits, tmp_path / "edited")
    assert _snapshot(tiny_corpus) == before  # the original corpus is untouched
    questions = _questions(out)
    for e in edits:
        text = (out / "docs" / e.doc_id).read_text()
        assert e.new in text and e.old not in text
        assert questions[e.question_id]["answers"] == [e.new]
    edited = load_corpus(out)
    assert {q.id: q.split for q in edited.questions} == {q.id: q.split for q in corpus.questions}
    untouched = {q.id: q.answers for q in edited.questions if q.id not in {e.question_id for e in edits}}
    assert untouched == {q.id: q.answers for q in corpus.questions if q.id in untouched}
    manifest = json.loads((out / EDITS_FILE).read_text())
    assert len(manifest["applied"]) == 3 and manifest["skipped"] == []


def test_apply_edits_replaces_every_occurrence_and_skips_html(tiny_corpus, tmp_path):
    (tiny_corpus / "docs" / "prices.html").write_text("<html><body><p>The Vantor-9 costs $1,340.</p></body></html>")
    edits = [
        FactEdit("policies/returns.txt", "Kaunas", "Vilnius", "t7"),
        FactEdit("prices.html", "$1,340", "$1,990", "t9"),
    ]
    (tiny_corpus / "docs" / "policies" / "returns.txt").write_text("The returns desk is in Kaunas.\nKaunas opens at nine; not Kaunasville.")
    out = apply_edits(tiny_corpus, edits, tmp_path / "edited")
    assert (
        out / "docs" / "policies" / "returns.txt"
    ).read_text() == "The returns desk is in Vilnius.\nVilnius opens at nine; not Kaunasville."
    assert "$1,340" in (out / "docs" / "prices.html").read_text()
    skipped = json.loads((out / EDITS_FILE).read_text())["skipped"]
    assert [s["question_id"] for s in skipped] == ["t9"] and "only .md/.txt" in skipped[0]["reason"]
    assert _questions(out)["t9"]["answers"] == ["$1,340", "1340"]  # a skipped edit leaves its answers alone
    with pytest.raises(FreshnessError, match="every edit targets a PDF/HTML"):
        apply_edits(tiny_corpus, edits[1:], tmp_path / "edited2")


def test_apply_edits_errors_name_the_edit(tiny_corpus, tmp_path):
    with pytest.raises(FreshnessError, match=r"edit 1 \(t7\): 'Riga' does not occur in policies/returns.txt"):
        apply_edits(
            tiny_corpus,
            [FactEdit("policies/returns.txt", "23 days", "30 days", "t3"), FactEdit("policies/returns.txt", "Riga", "Oslo", "t7")],
            tmp_path / "a",
        )
    with pytest.raises(FreshnessError, match=r"edit 0 \(t7\): document 'nope.md' not found"):
        apply_edits(tiny_corpus, [FactEdit("nope.md", "Kaunas", "Oslo", "t7")], tmp_path / "b")
    with pytest.raises(FreshnessError, match="no question with id zz"):
        apply_edits(tiny_corpus, [FactEdit("policies/returns.txt", "Kaunas", "Oslo", "zz")], tmp_path / "c")
    with pytest.raises(FreshnessError, match="outside the original corpus"):
        apply_edits(tiny_corpus, [FactEdit("policies/returns.txt", "Kaunas", "Oslo", "t7")], tiny_corpus / "copy")


def test_load_patch_reads_edits_and_names_bad_entries(tmp_path):
    good = tmp_path / "patch.json"
    good.write_text(json.dumps([{"doc_id": "docs/policies/returns.txt", "old": "Kaunas", "new": "Vilnius", "question_id": "t7"}]))
    assert load_patch(good) == [FactEdit("policies/returns.txt", "Kaunas", "Vilnius", "t7", kind="patch")]
    cases = {
        "not json": "not valid JSON",
        json.dumps({"doc_id": "a.md"}): "expected a non-empty JSON list",
        json.dumps(
            [{"doc_id": "a.md", "old": "1", "new": "2", "question_id": "q"}, {"doc_id": "a.md", "old": "x", "question_id": "q"}]
        ): "entry 1 has no 'new'",
        json.dumps([{"doc_id": "a.md", "old": "x", "new": "x", "question_id": "q"}]): "entry 0: 'old' and 'new' are the same",
        json.dumps(["a.md"]): "entry 0 is str, not an object",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(FreshnessError, match=re.escape(message)) as err:
            load_patch(bad)
        assert str(bad) in str(err.value)
    with pytest.raises(FreshnessError, match="patch file not found"):
        load_patch(tmp_path / "missing.json")


def test_classify_tells_new_from_stale():
    assert classify("It is 16 weeks [1]", ["16 weeks"], "22 weeks") == "new"
    assert classify("22 weeks", ["16 weeks"], "22 weeks") == "old"
    assert classify("October 10 and 11, 2025", ["October 10 and 11, 2025"], "October 10 and 11, 2023") == "new"
    assert classify("October 10 and 11, 2023", ["October 10 and 11, 2025"], "October 10 and 11, 2023") == "old"
    assert classify("I don't know", ["16 weeks"], "22 weeks") == "abstained"
    assert classify("three months", ["16 weeks"], "22 weeks") == "other"


def test_freshness_end_to_end_on_tiny_model_stores_into_a_run(tiny_corpus, tiny_lm_dir, tmp_path):
    from workbench.decision.recommend import recommend

    before = _snapshot(tiny_corpus)
    config = build_config(
        str(tiny_corpus), "quick", {"chunk_size": 120, "chunk_overlap": 20, "top_k": 2}, TINY_OVERRIDES, model=str(tiny_lm_dir)
    )
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({**config.to_dict(), "run_id": "run"}))
    method = {
        "n": 5,
        "n_answerable": 4,
        "accuracy": 0.5,
        "hallucination_rate": 0.25,
        "latency_p95_s": 1.0,
        "usd_per_1k_queries": 0.01,
        "usd_build": 0.001,
    }
    metrics = {"methods": {m: dict(method) for m in config.methods}, "usd_per_hour": 0.1, "corpus": {"kind": "facts", "n_train": 5}}
    metrics["recommendation"] = recommend(metrics, {"data_changes": "daily"})
    (run_dir / "metrics.json").write_text(json.dumps(metrics))

    args = argparse.Namespace(corpus=str(tiny_corpus), edits=3, patch=None, model=None, preset="quick", seed=0, out=str(run_dir))
    assert main(args) == 0
    assert _snapshot(tiny_corpus) == before

    result = json.loads((run_dir / "freshness.json").read_text())
    assert result["n_edits"] == 3 and len(result["edits"]) == 3
    rag, lora, both = result["rag"], result["lora"], result["rag+lora"]
    assert rag["reindex_seconds"] > 0 and rag["reindex_cache_hit"] is False
    assert 0 <= rag["accuracy_after_edit"] <= 1 and 0 <= rag["stale_rate"] <= 1
    assert lora["retrain_seconds"] > 0 and lora["retrain_estimated"] is False
    for key in ("accuracy_before_retrain", "stale_rate_before", "accuracy_after_retrain", "stale_rate_after", "stale_accuracy"):
        assert 0 <= lora[key] <= 1 and 0 <= both[key] <= 1
    assert both["retrain_seconds"] == pytest.approx(lora["retrain_seconds"] + rag["reindex_seconds"])
    phases = {(r["method"], r["phase"]) for r in result["per_question"]}
    assert phases == {
        ("rag", "after_reindex"),
        ("lora", "before_retrain"),
        ("lora", "after_retrain"),
        ("rag+lora", "before_retrain"),
        ("rag+lora", "after_retrain"),
    }
    assert len(result["per_question"]) == 15
    assert f"re-indexed in {rag['reindex_seconds']:.1f}s" in result["summary"] and "retraining took" in result["summary"]

    stored = json.loads((run_dir / "metrics.json").read_text())
    assert stored["freshness"]["lora"]["retrain_seconds"] == lora["retrain_seconds"]
    assert "per_question" not in stored["freshness"]
    reasons = " ".join(next(r for r in stored["recommendation"]["ranked"] if r["method"] == "lora")["reasons"])
    assert "measured accuracy on changed facts before retraining" in reasons  # decision.py picked the measurement up
