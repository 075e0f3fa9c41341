"""Re-score a finished run's predictions with today's scorer, without generating anything.

Prints, per method, the accuracy stored in the run (by the scorer the run used) beside today's, how many
verdicts changed, and the prior baseline computed from the corpus's train split (no model), with the
methods whose accuracy lies within the prior's 95% interval flagged.

Run: .venv/bin/python bench/rescore.py RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workbench.corpus.load import load_corpus
from workbench.evaluation.aggregate import aggregate
from workbench.evaluation.predictions import rescore_rows
from workbench.evaluation.scoring import score_answer
from workbench.methods.baselines import Prior, mark_baselines, prior_flag_text
from workbench.methods.registry import PRIOR
from workbench.storage import read_jsonl


def rescore(run_dir: Path) -> str:
    config = json.loads((run_dir / "config.json").read_text())
    rows = read_jsonl(run_dir / "predictions.jsonl")
    new_rows = rescore_rows(rows)
    corpus = load_corpus(config["corpus"], test_fraction=config["eval"]["test_fraction"], seed=config["seed"])
    by_id = {q.id: q for q in corpus.questions}
    held = [by_id[q] for q in dict.fromkeys(r["question_id"] for r in rows)]
    prior = Prior(corpus.train)
    for a, q in zip(prior.answer(held) if not any(r["method"] == PRIOR for r in rows) else [], held, strict=False):
        s = score_answer(a.text, q.answers, q.answerable, q.question)
        new_rows.append({"method": PRIOR, "question_id": q.id, "answerable": q.answerable, "answer": a.text, "latency_s": 0.0,
                         "prompt_tokens": 0, "output_tokens": 0, **s})
    methods = list(dict.fromkeys(r["method"] for r in new_rows))
    metrics = aggregate(new_rows, {m: {} for m in methods}, 0.1, 1000, config["seed"])
    mark_baselines(metrics, [])
    out = [f"{run_dir.name} (prior reply: {prior.reply!r}, taught by {prior.support}/{prior.n_train} train questions)", "",
           "| method | accuracy stored in the run | accuracy re-scored [95% CI] | verdicts changed | versus prior |", "| --- | --- | --- | --- | --- |"]
    for m in methods:
        old = [r for r in rows if r["method"] == m and r["answerable"]]
        new = [r for r in new_rows if r["method"] == m and r["answerable"]]
        before = f"{sum(r['correct'] for r in old)}/{len(old)} = {sum(r['correct'] for r in old) / len(old):.1%}" if old else "(not in the run)"
        mm = metrics["methods"][m]
        after = f"{sum(r['correct'] for r in new)}/{len(new)} = {mm['accuracy']:.1%} [{mm['accuracy_ci'][0]:.0%}-{mm['accuracy_ci'][1]:.0%}]"
        changed = sum(a["correct"] != b["correct"] for a, b in zip(old, new, strict=False)) if old else 0
        versus = "baseline" if mm.get("baseline") else prior_flag_text(metrics, m)
        out.append(f"| {m} | {before} | {after} | {changed} | {versus} |")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(rescore(Path(arg)))
