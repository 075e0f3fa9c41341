"""A whole run on a tiny model records what makes the comparison fair: twins, what each method saw, the learning curve, RAFT."""

from __future__ import annotations

import json

from conftest import TINY_OVERRIDES

from workbench.config import build_config
from workbench.pipeline.run import run
from workbench.reports.export import render_markdown
from workbench.reports.html import render_html


def fake_pairs(generator, chunks, per_chunk, seed=0, progress=None, batch_size=16):
    """Stands in for the base model writing Q/A: one extractive pair per chunk (its first two words)."""
    pairs = [{"question": f"Which words open passage {i} of {doc_id}?", "answer": " ".join(text.split()[:2]), "doc_id": doc_id, "chunk": i, "synthetic": True}
             for i, (doc_id, text) in enumerate(chunks)]
    return {"key": "fake", "pairs": pairs, "stats": {"chunks": len(chunks), "asked": len(chunks) * per_chunk, "kept": len(pairs), "seconds": 1.5}, "cache_hit": False}


def test_run_records_twins_seen_learning_curve_and_uses_a_raft_adapter(tiny_corpus, tiny_lm_dir, tmp_path, monkeypatch):
    import workbench.tuning.fact_qa as fact_qa

    monkeypatch.setattr(fact_qa, "generate_fact_pairs", fake_pairs)
    lines = (tiny_corpus / "questions.jsonl").read_text().splitlines()
    twin = json.loads(lines[5]) | {"id": "t6-twin", "split": "train"}  # the file puts a held-out question's twin in train
    (tiny_corpus / "questions.jsonl").write_text("\n".join(lines + [json.dumps(twin)]) + "\n")
    overrides = {**TINY_OVERRIDES, "train": {**TINY_OVERRIDES["train"], "generated_qa": 2, "raft_examples": 4, "raft_epochs": 4.0, "curve_points": 2, "dev_fraction": 0.0}}
    config = build_config(str(tiny_corpus), "quick", {"chunk_size": 120, "chunk_overlap": 20, "top_k": 2}, overrides, model=str(tiny_lm_dir))
    run_dir = run(config, out_dir=tmp_path / "runs", run_id="fair")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["splits"]["withheld"] == 1 and metrics["splits"]["withheld_ids"] == ["t6-twin"]
    seen = metrics["seen"]
    assert seen["few-shot"]["few_shot_pool"] == 5 and seen["few-shot"]["withheld_twins"] == 1  # t1-t5, not the twin
    assert seen["rag"]["documents_indexed"] == 3
    lora = seen["lora"]["train_data"]
    assert lora["documents"] == 3 and lora["train_qa"] == 5 and lora["generated_qa"] >= 3 and lora["chunks"] >= 3
    assert seen["rag+lora"]["train_data"]["raft_examples"] == 4
    assert metrics["train"]["recipes"]["raft"]["recipe"] == "raft"
    assert metrics["few_shot"]["leakage"]["ok"] and metrics["train"]["leakage"]["ok"]
    for method in ("lora", "rag+lora"):
        curve = metrics["learning_curve"][method]
        assert len(curve) == 3, (method, curve, metrics["train"]["recipes"])
        assert curve[0]["step"] == 0 and curve[0]["base"] and not curve[0]["picked"]  # the base model, a reference only
        assert 0 < curve[1]["step"] < curve[2]["step"] and sum(p["picked"] for p in curve) == 1
        assert all(p["held_out_accuracy"] is not None for p in curve)
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert not any(r["question_id"] == "t6-twin" for r in rows)
    html, md = render_html(run_dir), render_markdown(run_dir)
    for text in (html, md):
        assert "What each method saw" in text and "Learning curve" in text and "RAFT examples 4" in text
    assert html.count("<svg") >= 6  # the learning-curve chart is drawn


def test_a_behaviour_corpus_gets_no_raft_adapter_and_rag_lora_answers_with_the_closed_book_one(tiny_corpus, tiny_lm_dir, tmp_path, monkeypatch):
    import workbench.tuning.fact_qa as fact_qa

    monkeypatch.setattr(fact_qa, "generate_fact_pairs", fake_pairs)
    toml = tiny_corpus / "corpus.toml"
    toml.write_text(toml.read_text().replace('kind = "facts"', 'kind = "behaviour"'))
    overrides = {**TINY_OVERRIDES, "train": {**TINY_OVERRIDES["train"], "generated_qa": 2, "raft_examples": 4, "curve_points": 2, "dev_fraction": 0.0}}
    config = build_config(str(tiny_corpus), "quick", {"chunk_size": 120, "chunk_overlap": 20, "top_k": 2}, overrides, model=str(tiny_lm_dir), methods=["rag", "lora", "rag+lora"])
    metrics = json.loads((run(config, out_dir=tmp_path / "runs", run_id="behaviour") / "metrics.json").read_text())
    assert metrics["corpus"]["kind"] == "behaviour"
    assert "raft" not in metrics["train"]["recipes"] and "behaviour corpus" in metrics["train"]["raft_skipped"]
    assert metrics["seen"]["rag+lora"]["train_data"]["raft_examples"] == 0 and metrics["seen"]["rag+lora"]["train_data"]["train_qa"] == 5
