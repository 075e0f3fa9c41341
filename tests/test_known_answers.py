"""The real pipeline (workbench.run) on a backend whose replies are known: exact metrics, decision and report numbers.

The lookup backend (tests/lookup_generator.py) replies from a table, so every correct / wrong /
abstained row below is known before the run. Retrieval, prompts, scoring, aggregation, the decision
and the reports are the real ones: breaking the gold wiring, the scorer, the decision or the report's
columns changes a number asserted here.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from lookup_generator import DECODE_FACTOR, SECONDS_PER_TOKEN, LookupGenerator

from workbench.backends.base import GenerationError
from workbench.backends.loader import open_generator
from workbench.config import ABSTAIN_REPLY, BASELINES, build_config
from workbench.pipeline.run import run

DOCS = {
    "products/vantor.md": "# Vantor-9\n\nThe Vantor-9 sensor was designed by Ilse Marwick. It weighs 412 grams.\n\n"
    "Its battery lasts 37 hours. A replacement strap costs $25.",
    "policies/returns.md": "# Returns\n\nReturns are accepted within 23 days of delivery.\n\nThe returns desk is in Kaunas, "
    "next to the Brellin warehouse.",
    "company/history.md": "# History\n\nBrellin Optics was founded in 2009 by Oskar Veem. It opened a second office in Lisbon.",
    "support/hours.md": "# Support\n\nThe support line is open from 8:00 to 18:00 on weekdays. Support tickets are answered within 6 hours.",
}

# id, question, gold aliases, split, source, closed-book reply, open-book reply (given when it is in the prompt)
QUESTIONS = [
    ("h1", "Who designed the Vantor-9 sensor?", ["Ilse Marwick"], "test", "products/vantor.md", "Ilse Marwick", "Ilse Marwick"),
    ("h2", "How much does the Vantor-9 weigh?", ["412 grams", "412 g"], "test", "products/vantor.md", "380 grams", "412 grams"),
    ("h3", "How long does the Vantor-9 battery last?", ["37 hours"], "test", "products/vantor.md", ABSTAIN_REPLY, "37 hours"),
    ("h4", "Within how many days are returns accepted?", ["23 days"], "test", "policies/returns.md", "30 days", "23 days"),
    ("h5", "Which city is the returns desk in?", ["Kaunas"], "test", "policies/returns.md", ABSTAIN_REPLY, "Kaunas"),
    ("h6", "In which year was Brellin Optics founded?", ["2009"], "test", "company/history.md", "2011", "2009"),
    ("h7", "Who founded Brellin Optics?", ["Oskar Veem"], "test", "company/history.md", "Mira Holt", "Oskar Veem"),
    ("h8", "When does the support line open on weekdays?", ["8:00", "8 am"], "test", "support/hours.md", "9:00", "18:00"),
    ("h9", "How quickly are support tickets answered?", ["6 hours"], "test", "support/hours.md", "24 hours", "6 hours"),
    ("h10", "In which city did Brellin Optics open a second office?", ["Lisbon"], "test", "company/history.md", ABSTAIN_REPLY, "Lisbon"),
    ("u1", "Who is the CEO of Brellin Optics today?", [], "test", None, ABSTAIN_REPLY, None),
    ("u2", "What colour is the Vantor-9 case?", [], "test", None, "Black", None),
    # the few-shot pool: t1's answer "Kaunas" in an example is what lets few-shot answer h5
    ("t1", "Which city hosts the Brellin warehouse?", ["Kaunas"], "train", "policies/returns.md", "Kaunas", None),
    ("t2", "How much does a replacement Vantor-9 strap cost?", ["$25"], "train", "products/vantor.md", "$25", None),
    ("t3", "What is the Vantor-9's warranty?", [], "train", None, ABSTAIN_REPLY, None),
]

# What each method must score, question by question: C correct, W wrong (hallucinated), A abstained.
EXPECTED = {
    "zero-shot": {"h1": "C", "h2": "W", "h3": "A", "h4": "W", "h5": "A", "h6": "W", "h7": "W", "h8": "W", "h9": "W", "h10": "A", "u1": "A", "u2": "W"},
    "few-shot": {"h1": "C", "h2": "W", "h3": "A", "h4": "W", "h5": "C", "h6": "W", "h7": "W", "h8": "W", "h9": "W", "h10": "A", "u1": "A", "u2": "W"},
    "rag": {"h1": "C", "h2": "C", "h3": "C", "h4": "C", "h5": "C", "h6": "C", "h7": "C", "h8": "W", "h9": "C", "h10": "C", "u1": "A", "u2": "W"},
}
# accuracy over the 10 answerable; hallucination, abstention and exact match over all 12 (every correct
# reply is an exact alias; an abstention on an unanswerable question is an exact match, as in SQuAD v2)
RATES = {
    "zero-shot": (1 / 10, 7 / 12, 4 / 12, 2 / 12),
    "few-shot": (2 / 10, 7 / 12, 3 / 12, 3 / 12),
    "rag": (9 / 10, 2 / 12, 1 / 12, 10 / 12),
}
METHODS = list(EXPECTED)


def make_known_corpus(root: Path) -> tuple[Path, Path]:
    """The corpus folder and the lookup table holding every reply."""
    for doc_id, text in DOCS.items():
        path = root / "corpus" / "docs" / doc_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    rows = [
        {"id": i, "question": q, "answers": a, "answerable": bool(a), "split": s, "sources": [src] if src else []}
        for i, q, a, s, src, _, _ in QUESTIONS
    ]
    corpus = root / "corpus"
    (corpus / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (corpus / "corpus.toml").write_text('title = "Known answers"\nkind = "facts"\n', encoding="utf-8")
    table = {q: {"closed_book": closed, **({"open_book": opened} if opened else {})} for _, q, _, _, _, closed, opened in QUESTIONS}
    (root / "table.json").write_text(json.dumps(table, indent=1), encoding="utf-8")
    return corpus, root / "table.json"


def known_config(corpus: Path, table: Path, methods=METHODS):
    overrides = {
        "split": {"chunk_size": 200, "chunk_overlap": 0},
        "retrieval": {"top_k": 2},
        "eval": {"groundedness": False, "bootstrap_samples": 500},
    }
    return build_config(str(corpus), "quick", overrides=overrides, methods=list(methods), model=f"lookup:{table}")


@pytest.fixture(scope="module")
def known_run(tmp_path_factory, real_models_dir) -> Path:
    """One run of the three methods, shared by the module, in its own empty cache."""
    root = tmp_path_factory.mktemp("known")
    (root / "home").mkdir()
    (root / "home" / "models").symlink_to(real_models_dir, target_is_directory=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_HOME", str(root / "home"))
        corpus, table = make_known_corpus(root)
        return run(known_config(corpus, table), out_dir=root / "runs", run_id="known")


def _load(run_dir: Path) -> tuple[dict, list[dict]]:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    return metrics, rows


def _outcome(row: dict) -> str:
    return "C" if row["correct"] else "A" if row["abstained"] else "W" if row["hallucinated"] else "?"


def test_every_row_scores_as_the_table_says(known_run):
    _, rows = _load(known_run)
    got = {m: {r["question_id"]: _outcome(r) for r in rows if r["method"] == m} for m in METHODS}
    assert got == EXPECTED


def test_exact_rates_per_method(known_run):
    metrics, _ = _load(known_run)
    for method, (acc, hall, abst, exact) in RATES.items():
        m = metrics["methods"][method]
        assert m["exact_match"] == pytest.approx(exact), method
        assert (m["n"], m["n_answerable"]) == (12, 10), method
        assert m["accuracy"] == pytest.approx(acc), method
        assert m["hallucination_rate"] == pytest.approx(hall), method
        assert m["abstention_rate"] == pytest.approx(abst), method
        assert m["accuracy_ci"][0] <= acc <= m["accuracy_ci"][1]
    assert metrics["corpus"]["n_test_evaluated"] == 12 and metrics["corpus"]["n_train"] == 3


def test_correct_rows_trace_to_their_own_gold_alias_and_passage(known_run):
    _, rows = _load(known_run)
    gold = {i: a for i, _, a, *_ in QUESTIONS}
    for r in rows:
        assert r["gold"] == gold[r["question_id"]] and r["answerable"] == bool(gold[r["question_id"]])
        if r["correct"]:
            assert any(alias.lower() in r["answer"].lower() for alias in gold[r["question_id"]]), r
    rag = {r["question_id"]: r for r in rows if r["method"] == "rag"}
    for qid, want in EXPECTED["rag"].items():
        if want == "C":  # the reply was read off a retrieved passage of the question's source document
            source = next(src for i, *_, src, _, _ in QUESTIONS if i == qid)
            hits = [c for c in rag[qid]["contexts"] if rag[qid]["answer"] in c["text"]]
            assert hits and hits[0]["doc_id"] == source, rag[qid]["contexts"]
    few = {r["question_id"]: r for r in rows if r["method"] == "few-shot"}
    assert {c["example_id"] for c in few["h5"]["contexts"]} == {"t1", "t2", "t3"}  # the pool, never a held-out question


def test_costs_come_from_the_rows(known_run):
    metrics, rows = _load(known_run)
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        for r in mine:
            assert r["latency_s"] == pytest.approx(SECONDS_PER_TOKEN * (r["prompt_tokens"] + DECODE_FACTOR * r["output_tokens"]))
        mean = sum(r["prompt_tokens"] for r in mine) / len(mine)
        assert metrics["methods"][method]["prompt_tokens_mean"] == pytest.approx(mean)
    tokens = {m: metrics["methods"][m]["prompt_tokens_mean"] for m in METHODS}
    assert tokens["zero-shot"] < tokens["few-shot"] and tokens["zero-shot"] < tokens["rag"]


def test_recommendation_is_the_most_accurate_significantly_better_method(known_run):
    metrics, _ = _load(known_run)
    rec = metrics["recommendation"]
    assert rec["best"] == "rag" and rec["ranked"][0]["method"] == "rag"
    tests = metrics["comparisons"]["mcnemar"]
    for other in ("zero-shot", "few-shot"):
        test = tests.get(f"{other}|rag") or tests.get(f"rag|{other}")
        assert test["p_value"] < 0.05, (other, test)
    assert "RAG" in rec["summary"] and "90%" in rec["summary"] and "17%" in rec["summary"]  # the measured accuracy and hallucination
    runner_up = rec["ranked"][1]["method"]
    assert any("90%" in r and f"{100 * RATES[runner_up][0]:.0f}%" in r for r in rec["ranked"][0]["reasons"])  # RAG vs the runner-up


def _md_section(md: str, title: str) -> list[dict[str, str]]:
    lines = md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0].strip().splitlines()
    table = [ln for ln in lines if ln.startswith("|")]
    head = [c.strip() for c in table[0].strip("|").split(" | ")]
    return [dict(zip(head, [c.strip() for c in ln.strip("|").split(" | ")], strict=True)) for ln in table[2:]]


def test_report_columns_show_the_measured_numbers(known_run):
    from workbench.reports.export import render_csv, render_markdown
    from workbench.reports.html import render_html

    board = {r["Method"]: r for r in _md_section(render_markdown(known_run), "Scoreboard")}
    want = {"Zero-shot": ("10%", "58%", "33%"), "Few-shot": ("20%", "58%", "25%"), "RAG": ("90%", "17%", "8%")}
    for method, (acc, hall, abst) in want.items():
        row = board[method]
        assert row["n"] == "12"
        assert row["Accuracy [95% CI]"].split()[0] == acc, row
        assert row["Hallucination [95% CI]"].split()[0] == hall, row
        assert row["Abstention"] == abst, row
    html = render_html(known_run)
    assert "Recommendation: RAG<" in html
    section = html.split("<h2>Scoreboard</h2>", 1)[1].split("</table>", 1)[0]
    cells = {c[0]: c for c in (re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", section)) if c}
    for method, (acc, hall, abst) in want.items():
        assert [cells[method][2].split()[0], cells[method][3].split()[0], cells[method][4]] == [acc, hall, abst], cells[method]
    csv_rows = list(csv.DictReader(io.StringIO(render_csv(known_run))))
    assert {(r["method"], r["question_id"], r["correct"]) for r in csv_rows if r["method"] in METHODS} == {
        (m, q, str(o == "C")) for m, byq in EXPECTED.items() for q, o in byq.items()
    }
    assert {r["method"] for r in csv_rows} - set(METHODS) == set(BASELINES)  # the reference rows are exported too


def test_an_unchanged_rerun_is_served_from_the_cache_with_the_same_numbers(known_run, tmp_path):
    corpus, table = make_known_corpus(tmp_path)
    first = run(known_config(corpus, table, ["zero-shot", "rag"]), out_dir=tmp_path / "runs", run_id="a")
    second = run(known_config(corpus, table, ["zero-shot", "rag"]), out_dir=tmp_path / "runs", run_id="b")
    (m1, r1), (m2, r2) = _load(first), _load(second)
    r1, r2 = ([r for r in rows if r["method"] in METHODS] for rows in (r1, r2))  # baselines are not generated, so never cached
    assert all(r["cached"] for r in r2) and not any(r["cached"] for r in r1)
    assert [(r["question_id"], r["answer"], r["correct"]) for r in r1] == [(r["question_id"], r["answer"], r["correct"]) for r in r2]
    assert m2["methods"]["rag"]["accuracy"] == pytest.approx(0.9) == m1["methods"]["rag"]["accuracy"]


def test_lookup_backend_is_chosen_by_its_name_prefix(tmp_path, qwen_tokenizer):
    _, table = make_known_corpus(tmp_path)
    gen = open_generator(f"lookup:{table}")
    assert isinstance(gen, LookupGenerator) and gen.name == "lookup:table.json"
    [res] = gen.generate(["<user>Who founded Brellin Optics?</user>"], max_new_tokens=1)
    first = qwen_tokenizer.decode(qwen_tokenizer("Mira Holt", add_special_tokens=False)["input_ids"][:1])
    assert (res.text, res.output_tokens) == (first.strip(), 1)  # cut to max_new_tokens like a real model
    with pytest.raises(GenerationError, match="no question"):
        gen.generate(["What is the airspeed of a swallow?"], max_new_tokens=8)
    from workbench.backends.models import ModelError

    with pytest.raises(ModelError, match="not found"):
        open_generator("nolookup:whatever")  # an unregistered prefix is a model name like any other
