"""Checks questions.jsonl against docs/: every answerable question has an alias in one of its sources,
every source exists, no plausible answer of an unanswerable question occurs anywhere, no duplicate question.

    PYTHONPATH=. .venv/bin/python corpora/nurisol_energy/check_answers.py   # from the repo root; exit 1 on any problem
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from workbench.corpus.loaders import load_documents
from workbench.textnorm import contains_tokens, normalize_answer

ROOT = Path(__file__).resolve().parent


def main() -> int:
    docs, _ = load_documents(ROOT / "docs")
    texts = {d.doc_id: d.text for d in docs}
    problems, seen = [], {}
    rows = [json.loads(line) for line in (ROOT / "questions.jsonl").read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        norm = normalize_answer(r["question"])
        if norm in seen:
            problems.append(f"{r['id']}: duplicate of {seen[norm]}")
        seen[norm] = r["id"]
        missing = [s for s in r["sources"] if s not in texts]
        if missing:
            problems.append(f"{r['id']}: unknown source {missing[0]}")
        if r["answerable"]:
            if not any(contains_tokens(texts.get(s, ""), a) for a in r["answers"] for s in r["sources"]):
                problems.append(f"{r['id']}: no alias of {r['answers']} in {r['sources']}")
        else:
            where = [d for d, t in texts.items() if contains_tokens(t, r["plausible_answer"])]
            if where:
                problems.append(f"{r['id']}: plausible answer {r['plausible_answer']!r} occurs in {where[0]}")
    for p in problems:
        print(p)
    print(f"{len(rows)} questions, {len(texts)} documents, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
