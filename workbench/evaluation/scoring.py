"""Per-answer scoring (DESIGN.md "Metrics"): abstained, correct, hallucinated, exact match, F1, semantic similarity."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config import ABSTAIN_REPLY
from ..language import abstain_replies
from ..retrieval.embedding import unit_rows
from ..textnorm import normalize_answer, tokens
from .matching import match_answer

# Plain words for the figures, shown wherever they appear (app captions, report notes).
METRIC_HELP = {
    "accuracy": "Accuracy: share of the answerable held-out questions answered correctly. An answer is correct when it equals a gold alias, "
    "names it in another word form (Catholic / Catholicism), names it without a generic word (Catholic for Catholic Church), contains a specific "
    "alias, or overlaps one by word F1 >= 0.8; it is wrong when it negates the alias, offers alternatives or adds a contradicting number. "
    "Each row's 'why' says which alias and rule decided.",
    "exact_match": "EM (exact match): the answer equals a gold alias after SQuAD normalisation, over all held-out questions. SQuAD v2 convention: "
    "on an unanswerable question an abstention (\"I don't know\") counts as an exact match (and F1 1.0), so a method that always abstains "
    "can show EM above its accuracy.",
    "f1": "F1: SQuAD token overlap with the closest gold alias (partial credit), same unanswerable convention as EM.",
    "baselines": "Baselines (never recommended): prior answers every question with the most frequent train-split reply (\"I don't know\" when "
    "unanswerable questions are the largest group); oracle-passage is the rag prompt given the gold documents' best chunks, so the gap "
    "rag -> oracle-passage is retrieval's loss. A method whose accuracy lies within the prior's 95% interval is flagged "
    "\"no better than the prior\".",
}

_CITATION = re.compile(r"\s*[\[【]\s*(?:(?:passage|source|context|doc(?:ument)?)\s*)?\d+(?:\s*[,;–-]\s*\d+)*\s*[\]】]", re.I)
_ANSWER_PREFIX = re.compile(r"^\s*(?:final\s+)?answer\s*:\s*", re.I)
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})

# Normalised abstention phrases (normalize_answer drops apostrophes: "don't" -> "dont").
_ABSTAIN_HEADS = tuple(normalize_answer(h) for h in (
    ABSTAIN_REPLY,
    "i dont know",
    "i do not know",
    "dont know",
    "i dont have enough information",
    "i do not have enough information",
    "i cannot answer",
    "i cant answer",
    "i am not sure",
    "im not sure",
    "not enough information",
    "unknown",
    "idk",
    "there is no information",
    "no information",
    "not mentioned",
    "it is not mentioned",
    "not specified",
    "cannot be determined",
    "the documents do not say",
    "the context does not say",
    "the context does not mention",
    "the passage does not say",
    "the passages do not say",
    # Korean (the abstention reply of Korean corpora first; workbench.language)
    *abstain_replies()[1:],
    "모르겠어요",
    "모릅니다",
    "잘 모르겠습니다",
    "알 수 없습니다",
    "알 수 없음",
    "알 수 없어요",
    "답을 알 수 없습니다",
    "답을 찾을 수 없습니다",
    "정보가 없습니다",
    "관련 정보가 없습니다",
    "문서에 정보가 없습니다",
    "문맥에 정보가 없습니다",
    "언급되어 있지 않습니다",
    "언급되지 않았습니다",
    "나와 있지 않습니다",
))
_ABSTAIN_TAIL_MAX = 8  # "I don't know the answer based on the context." still abstains
_HEDGES = {"but", "however", "maybe", "perhaps", "probably", "possibly", "guess", "think", "likely", "might", "could", "although"}
_HEDGES |= {"하지만", "그러나", "그런데", "아마", "아마도", "추측하면", "생각합니다"}


def strip_citations(text: str) -> str:
    """Remove citation markers like "[1]", "[1, 2]", "[passage 3]" and a leading "Answer:" prefix."""
    text = _CITATION.sub("", text.translate(_QUOTES))
    return _ANSWER_PREFIX.sub("", text).strip()


def is_abstention(answer: str) -> bool:
    """True if the reply is the abstention reply ("I don't know", Korean "모르겠습니다") or a close variant.

    Case, punctuation, citations and a short tail without digits ("... the answer.", "... based on the
    context") are tolerated, and so is a reply that only repeats the phrase. A reply that gives an
    answer first ("42 days. I don't know") or hedges into one ("I don't know, but probably 42") is not
    an abstention.
    """
    norm = normalize_answer(strip_citations(answer))
    for head in _ABSTAIN_HEADS:
        if norm == head:
            return True
        if norm.startswith(head + " "):
            tail = norm[len(head) + 1 :].split()
            if len(tail) <= _ABSTAIN_TAIL_MAX and not any(any(ch.isdigit() for ch in t) for t in tail) and not _HEDGES & set(tail):
                return True
    return False


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token-level F1 between two strings after normalisation."""
    p, g = tokens(prediction), tokens(gold)
    if not p or not g:
        return float(p == g)
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def score_answer(answer: str, gold: list[str], answerable: bool, question: str = "") -> dict[str, Any]:
    """Score one reply against its gold aliases.

    Citations like "[1]" and an "Answer:" prefix are stripped first.
    - abstained: `is_abstention(answer)`.
    - correct: answerable, not abstained, and `matching.match_answer` accepts it (exact, word forms,
      alias without its generic word, containment of a specific alias, or concept-token F1 >= 0.8;
      wrong when it negates the alias, offers alternatives or adds a contradicting number).
      ``question`` lets restated question content (its numbers, names) count as harmless.
    - hallucinated: not abstained and not correct (any non-abstention on an unanswerable question).
    - exact_match: SQuAD normalised equality with an alias (unanswerable: 1 if abstained, as SQuAD v2).
    - f1: SQuAD max token F1 over aliases, 0 when abstained (unanswerable: 1.0 if abstained else 0.0).
    - match: the rule that decided `correct`; why: that rule in words, naming the alias it used.
    """
    abstained = is_abstention(answer)
    clean = strip_citations(answer)
    aliases = [g for g in gold if normalize_answer(g)]
    if not answerable:
        why = (
            "abstained on an unanswerable question (EM counts this as a match, as SQuAD v2 does)"
            if abstained
            else "answered a question the corpus cannot answer"
        )
        return {
            "abstained": abstained,
            "correct": False,
            "hallucinated": not abstained,
            "exact_match": int(abstained),
            "f1": float(abstained),
            "match": "unanswerable",
            "why": why,
        }
    if abstained or not aliases:
        rule, why = ("abstained", "abstained on an answerable question") if abstained else ("no-gold", "the question has no gold answer")
        return {"abstained": abstained, "correct": False, "hallucinated": not abstained, "exact_match": 0, "f1": 0.0, "match": rule, "why": why}
    norm = normalize_answer(clean)
    f1 = max(token_f1(clean, g) for g in aliases)
    exact = int(any(norm == normalize_answer(g) for g in aliases))
    judged = match_answer(clean, aliases, question)
    return {
        "abstained": False,
        "correct": judged.correct,
        "hallucinated": not judged.correct,
        "exact_match": exact,
        "f1": float(f1),
        "match": judged.rule,
        "why": judged.why,
    }


def encode_normalised(embedder: Any, texts: list[str]) -> np.ndarray:
    """Embed texts in one batched call and L2-normalise rows (SentenceTransformer or workbench Embedder)."""
    vecs = embedder.encode(texts)
    if hasattr(vecs, "detach"):  # a torch tensor (possibly bf16)
        vecs = vecs.detach().float().cpu().numpy()
    return unit_rows(np.asarray(vecs, dtype=np.float32).reshape(len(texts), -1))


def semantic_similarity(
    answers: Sequence[str], golds: Sequence[list[str]], embedder: Any, answerable: Sequence[bool] | None = None
) -> list[float | None]:
    """Cosine similarity of each answer to its closest gold alias; None if unanswerable or abstained.

    All distinct texts are embedded in one batched call. `answerable` defaults to "has aliases".
    """
    if len(answers) != len(golds) or (answerable is not None and len(answerable) != len(answers)):
        raise ValueError(f"semantic_similarity: got {len(answers)} answers for {len(golds)} gold lists; pass one per answer")
    flags = list(answerable) if answerable is not None else [bool(g) for g in golds]
    todo: list[tuple[int, str, list[str]]] = []
    for i, (a, g, ok) in enumerate(zip(answers, golds, flags, strict=True)):
        clean, aliases = strip_citations(a), [x for x in g if x.strip()]
        if ok and aliases and clean and not is_abstention(a):
            todo.append((i, clean, aliases))
    out: list[float | None] = [None] * len(answers)
    if not todo:
        return out
    texts = sorted({t for _, clean, aliases in todo for t in [clean, *aliases]})
    pos = {t: k for k, t in enumerate(texts)}
    vecs = encode_normalised(embedder, texts)
    for i, clean, aliases in todo:
        sims = vecs[[pos[g] for g in aliases]] @ vecs[pos[clean]]
        out[i] = float(np.clip(sims.max(), -1.0, 1.0))
    return out
