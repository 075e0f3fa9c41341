"""The scorer against a careful human reader: >= 95% agreement on the labelled set, no clear verdict flipped.

tests/data/scoring_agreement.jsonl: one labelled case a line (question, gold aliases, answer, the human
verdict "correct" / "wrong" / "abstained", and whether the verdict is clear or a judgement call). The
cases come from real runs on the bundled corpora, SQuAD v2 dev questions (Normans article), PopQA-style
religion/occupation questions and number/date/abstention replies; the labels were written by reading
each answer, not by running the scorer.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from workbench.evaluation.scoring import score_answer

DATA = Path(__file__).parent / "data" / "scoring_agreement.jsonl"
TARGET = 0.95


def _cases() -> list[dict]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


def scorer_verdict(case: dict) -> tuple[str, dict]:
    s = score_answer(case["answer"], case["gold"], case["answerable"], case["question"])
    return ("abstained" if s["abstained"] else "correct" if s["correct"] else "wrong"), s


def agreement() -> tuple[float, list[tuple[dict, str, dict]]]:
    cases = _cases()
    misses = [(c, v, s) for c in cases for v, s in [scorer_verdict(c)] if v != c["human"]]
    return 1 - len(misses) / len(cases), misses


def test_the_labelled_set_is_big_and_covers_the_hard_kinds():
    cases = _cases()
    assert len(cases) >= 200
    assert len({c["id"] for c in cases}) == len(cases)
    verdicts = Counter(c["human"] for c in cases)
    assert min(verdicts.values()) >= 30, verdicts  # correct, wrong and abstained all well represented
    sources = {c["source"].split(" (")[0] for c in cases}
    assert {"kestrel_labs run", "ticket_triage run", "SQuAD v2 dev", "PopQA-style"} <= sources


def test_scorer_agrees_with_the_human_labels():
    rate, misses = agreement()
    n = len(_cases())
    print(f"\nscorer agreement with human verdicts: {rate:.1%} ({n - len(misses)}/{n})")
    for c, v, s in misses:
        print(f"  {'CLEAR ' if c['clear'] else 'unclear'} {c['id']} human={c['human']} scorer={v}: {c['answer']!r} vs {c['gold']} -- {s['why']}")
    flipped = [c["id"] for c, _, _ in misses if c["clear"]]
    assert not flipped, f"the scorer flips clear human verdicts: {flipped}"
    assert rate >= TARGET, f"agreement {rate:.1%} is below {TARGET:.0%}"
