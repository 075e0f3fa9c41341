"""Leakage guard: no held-out question may appear in LoRA training data, verbatim or as a near-duplicate.

Two checks. Exact: the SQuAD-normalised held-out question equals a training question, or occurs
inside a normalised plain training text (whole text for short questions, on token boundaries for
questions of ``MIN_CONTAINED_TOKENS`` or more words); a question inside a longer question is not a
match. Near-duplicate: cosine similarity of sentence embeddings between the held-out question
and any training or synthetic question is at least ``threshold`` and, when the training answers are
known, the training answer also matches the held-out gold answer. Small sentence embedders rate
"Who founded X?" and "When was X founded?" above 0.95, so cosine alone would refuse honest data;
a leak is a near-identical question trained with the held-out answer (an abstention is no answer).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..config import ABSTAIN_REPLY
from ..errors import WorkbenchError
from ..language import abstain_replies
from ..retrieval.embedding import unit_rows
from ..textnorm import contains_tokens, normalize_answer
from ..types import Question

MIN_CONTAINED_TOKENS = 5  # shorter questions ("Who is the CEO?") count only as whole-text matches
DEFAULT_THRESHOLD = 0.92


class LeakageError(WorkbenchError, ValueError):
    """A held-out question leaked into the training data; training refuses to run."""


@dataclass
class LeakageReport:
    n_held_out: int
    n_training_texts: int
    n_compared_questions: int
    threshold: float
    exact: list[dict[str, Any]] = field(default_factory=list)  # {"id", "text_index"}
    near: list[dict[str, Any]] = field(default_factory=list)  # {"id", "match", "cosine"}
    max_cosine: float = 0.0  # highest held-out vs training-question similarity seen
    similar_other_answer: int = 0  # held-out questions above the threshold whose training answer differs (not leaks)
    embedder: str = ""

    @property
    def leaked_ids(self) -> list[str]:
        """Ids of every held-out question that leaked, in first-seen order."""
        return list(dict.fromkeys([e["id"] for e in self.exact] + [n["id"] for n in self.near]))

    @property
    def ok(self) -> bool:
        return not self.exact and not self.near

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "leaked_ids": self.leaked_ids, "ok": self.ok, "n_exact": len(self.exact), "n_near": len(self.near)}

    def raise_if_leaked(self, where: str = "the LoRA training data", error: type[Exception] = LeakageError) -> None:
        """Raise LeakageError naming the first leaked question, as one line."""
        if self.ok:
            return
        first = self.leaked_ids[0]
        how = "verbatim" if any(e["id"] == first for e in self.exact) else next(f"as a near-duplicate of {n['match']!r} (cosine {n['cosine']:.3f})" for n in self.near if n["id"] == first)
        more = f" (and {len(self.leaked_ids) - 1} more)" if len(self.leaked_ids) > 1 else ""
        raise error(f"held-out question {first} appears in {where} {how}{more}; remove the duplicate from the train questions or documents, or drop that held-out question")


def threshold_for(embedder: Any, threshold: float) -> float:
    """The near-duplicate cosine for this embedder: the default unless the embedder declares its own scale
    (``near_duplicate_threshold``: e5's cosines are compressed, unrelated questions reach 0.95 there)."""
    if threshold == DEFAULT_THRESHOLD:
        return float(getattr(embedder, "near_duplicate_threshold", threshold))
    return threshold


def embed_texts(embedder: Any, texts: list[str]) -> np.ndarray:
    """Unit-length float32 embeddings from an Embedder, a SentenceTransformer, a name, or None (the default embedder)."""
    if embedder is None or isinstance(embedder, str):
        from ..retrieval.embedding import Embedder

        embedder = Embedder(embedder) if embedder else Embedder()
    return unit_rows(np.asarray(embedder.encode(list(texts)), dtype=np.float32).reshape(len(texts), -1))


def _embedder_name(embedder: Any) -> str:
    if embedder is None:
        return "all-MiniLM-L6-v2"
    return embedder if isinstance(embedder, str) else str(getattr(embedder, "name", type(embedder).__name__))


def exact_matches(training_texts: list[str], held_out: list[Question], questions: list[str] | None = None) -> list[dict[str, Any]]:
    """Held-out questions whose normalised text equals a training question or text, or occurs inside a plain training text.

    Containment is checked only in ``training_texts`` (document text: chunks, paraphrases), never
    inside another question: "What is the religion of Paul?" is not a leak of "...of Paul Grégoire?".
    ``text_index`` counts training texts first, then questions.
    """
    norm = [normalize_answer(t) for t in training_texts]
    whole = {t: i for i, t in reversed(list(enumerate(norm + [normalize_answer(q) for q in questions or []])))}
    haystack = "\n".join(f" {t} " for t in norm)
    hits = []
    for q in held_out:
        nq = normalize_answer(q.question)
        if not nq:
            continue
        if nq in whole:
            hits.append({"id": q.id, "text_index": whole[nq]})
        elif len(nq.split()) >= MIN_CONTAINED_TOKENS and f" {nq} " in haystack:
            hits.append({"id": q.id, "text_index": next(i for i, t in enumerate(norm) if f" {nq} " in f" {t} ")})
    return hits


def same_answer(answer: str, q: Question) -> bool:
    """True if a training answer gives away the held-out gold answer.

    An unanswerable held-out question has no answer to give away, and an abstention gives nothing
    away: two unanswerable paraphrases both trained to "I don't know" are not a leak.
    """
    a = normalize_answer(answer)
    if not (q.answerable and q.answers) or not a or a in {normalize_answer(r) for r in (ABSTAIN_REPLY, *abstain_replies())}:
        return False
    return any(a == normalize_answer(g) or contains_tokens(answer, g) or contains_tokens(g, answer) for g in q.answers)


def near_duplicates(
    questions: list[str], held_out: list[Question], embedder: Any, threshold: float, answers: list[str] | None = None
) -> tuple[list[dict[str, Any]], float, int]:
    """Held-out questions within ``threshold`` cosine of a training question (with the same answer, when answers are given).

    Returns (hits, max cosine, count of similar questions dismissed because their answers differ).
    """
    keep = [i for i, q in enumerate(questions) if q.strip()]
    questions = [questions[i] for i in keep]
    answers = [answers[i] for i in keep] if answers is not None else None
    if not questions or not held_out:
        return [], 0.0, 0
    sims = embed_texts(embedder, [q.question for q in held_out]) @ embed_texts(embedder, questions).T
    hits, dismissed = [], 0
    for i, q in enumerate(held_out):
        close = [int(j) for j in np.argsort(-sims[i]) if sims[i, j] >= threshold]
        match = next((j for j in close if answers is None or same_answer(answers[j], q)), None)
        if match is not None:
            hits.append({"id": q.id, "match": questions[match], "cosine": round(float(sims[i, match]), 4)})
        elif close:
            dismissed += 1
    return hits, float(sims.max()), dismissed


def check_leakage(
    training_texts: list[str],
    held_out: list[Question],
    embedder: Any = None,
    threshold: float = DEFAULT_THRESHOLD,
    questions: list[str] | None = None,
    answers: list[str] | None = None,
) -> LeakageReport:
    """Compare held-out questions with the training data.

    ``training_texts`` are searched for a held-out question verbatim (whole or contained);
    ``questions`` (default: the training texts) get the embedding check; ``answers`` (aligned with
    ``questions``) make a near-duplicate count only when it is trained with the held-out answer.
    """
    threshold = threshold_for(embedder, threshold)
    exact = exact_matches(training_texts, held_out, questions)
    compared = training_texts if questions is None else questions
    if answers is not None and len(answers) != len(compared):
        raise ValueError(f"answers ({len(answers)}) must align with questions ({len(compared)})")
    near, max_cos, dismissed = near_duplicates(compared, held_out, embedder, threshold, answers)
    return LeakageReport(
        n_held_out=len(held_out),
        n_training_texts=len(training_texts),
        n_compared_questions=len(compared),
        threshold=threshold,
        exact=exact,
        near=near,
        max_cosine=round(max_cos, 4),
        similar_other_answer=dismissed,
        embedder=_embedder_name(embedder),
    )


def leaking_indices(
    candidates: list[str], held_out: list[Question], embedder: Any = None, threshold: float = DEFAULT_THRESHOLD, answers: list[str] | None = None
) -> list[int]:
    """Indices of candidate questions (e.g. synthetic ones) that duplicate a held-out question (same answer, if given)."""
    if not candidates or not held_out:
        return []
    threshold = threshold_for(embedder, threshold)
    held = {normalize_answer(q.question) for q in held_out}
    bad = {i for i, c in enumerate(candidates) if normalize_answer(c) in held}
    sims = embed_texts(embedder, candidates) @ embed_texts(embedder, [q.question for q in held_out]).T
    for i, j in zip(*np.nonzero(sims >= threshold), strict=True):
        if answers is None or same_answer(answers[int(i)], held_out[int(j)]):
            bad.add(int(i))
    return sorted(bad)
