"""Question twins: the same question asked twice (same normalised text) or a paraphrase with the same answer.

A twin group is kept on one side of the train/held-out split. When a file's explicit split puts
twins on both sides, the train-side twins are *withheld* (split ``"withheld"``): they reach neither
training data nor the few-shot pool, and the held-out side is evaluated as given.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..textnorm import normalize_answer
from ..tuning.leakage import DEFAULT_THRESHOLD, embed_texts, same_answer, threshold_for
from ..types import Question

WITHHELD = "withheld"


def answers_match(a: Question, b: Question) -> bool:
    """True when two questions have the same gold answer (both unanswerable counts as the same)."""
    if not (a.answerable and a.answers) and not (b.answerable and b.answers):
        return True
    if not (a.answerable and a.answers and b.answerable and b.answers):
        return False
    return any(same_answer(alias, b) for alias in a.answers)


class _Union:
    def __init__(self, n: int):
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def join(self, i: int, j: int) -> bool:
        ri, rj = self.find(i), self.find(j)
        if ri == rj:
            return False
        self.parent[max(ri, rj)] = min(ri, rj)
        return True


def twin_groups(questions: list[Question], embedder: Any = None, threshold: float = DEFAULT_THRESHOLD) -> tuple[list[list[int]], dict[str, int]]:
    """Groups of question indices (every index in exactly one group, singletons included) and how they were joined.

    Same normalised text always joins; with an ``embedder``, so does cosine >= ``threshold`` with a
    matching answer (the leakage guard's definition of a near-duplicate).
    """
    threshold = threshold_for(embedder, threshold)
    n = len(questions)
    union = _Union(n)
    joined = {"text": 0, "paraphrase": 0}
    first: dict[str, int] = {}
    for i, q in enumerate(questions):
        key = normalize_answer(q.question)
        if key in first:
            joined["text"] += union.join(first[key], i)
        else:
            first[key] = i
    if embedder is not None and n > 1:
        vecs = embed_texts(embedder, [q.question for q in questions])
        for start in range(0, n, 512):
            sims = vecs[start : start + 512] @ vecs.T
            for a, b in zip(*np.nonzero(sims >= threshold), strict=True):
                i, j = start + int(a), int(b)
                if i < j and union.find(i) != union.find(j) and answers_match(questions[i], questions[j]):
                    joined["paraphrase"] += union.join(i, j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(union.find(i), []).append(i)
    return list(groups.values()), joined


def resolve_explicit(questions: list[Question], groups: list[list[int]]) -> tuple[list[Question], list[list[int]]]:
    """Apply explicit splits group-wide: free members follow their twins; train twins of a test question are withheld.

    Returns the updated questions and the groups that are still entirely free (for the seeded split).
    """
    out = list(questions)
    free: list[list[int]] = []
    for group in groups:
        sides = {questions[i].split for i in group if questions[i].split in ("train", "test")}
        if not sides:
            free.append(group)
            continue
        side = "test" if "test" in sides else "train"
        test_id = next((questions[i].id for i in group if questions[i].split == "test"), "")
        for i in group:
            q = questions[i]
            if q.split == "train" and side == "test":
                out[i] = dataclasses.replace(q, split=WITHHELD, meta={**q.meta, "withheld_twin_of": test_id})
            elif q.split not in ("train", "test"):
                out[i] = dataclasses.replace(q, split=side)
    return out, free


def summary(questions: list[Question], groups: list[list[int]], joined: dict[str, int], embedder: bool) -> dict[str, Any]:
    """What grouping did, for metrics.json: groups of twins, questions in them, withheld train twins."""
    multi = [g for g in groups if len(g) > 1]
    withheld = [q for q in questions if q.split == WITHHELD]
    return {
        "twin_groups": len(multi),
        "grouped_questions": sum(len(g) for g in multi),
        "joined_by_text": joined["text"],
        "joined_by_paraphrase": joined["paraphrase"],
        "paraphrase_check": embedder,
        "withheld": len(withheld),
        "withheld_ids": [q.id for q in withheld][:50],
    }
