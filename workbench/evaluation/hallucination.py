"""Secondary hallucination signals, reported apart from `hallucinated`: unsupported content and judged groundedness.

`unsupported_content` flags numbers and capitalised names in an answer that occur in neither the
retrieved passages nor anywhere in the corpus (an invented fact the gold-based score may miss, e.g.
on a correct label with a made-up amount). `groundedness` asks the generator itself whether the
answer is supported by the passages it was given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from ..methods.prompts import format_contexts
from ..textnorm import normalize_answer
from .scoring import is_abstention, strip_citations

# A token: letters/digits with inner joiners, so "1,299", "2.3", "2024-03-01", "Oyelaran-Stone", "WPA3" stay whole.
_TOKEN = re.compile(r"[^\W_]+(?:['’.,:/_-][^\W_]+)*")
_DIGITS = re.compile(r"\d+")
_LETTERS = re.compile(r"[^\W\d_]+")
_SEPARATORS = re.compile(r"[-–—/.,:_]")
_ATOMIC_NUMBER = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+\.\d+")  # 1,299 / 2.3: never split into groups

# Capitalised only because they start a sentence (or are "I"): not names.
COMMON_WORDS = frozenset(
    """
    a about above after again all also although an and another answer any are as at based be because been before being
    both but by can cannot context could did do does done each either every for from had has have he her here his how
    however i if in into is it its it's let many may maybe me might more most much my neither no none nor not of on once
    one only or other our out over per perhaps please possibly probably sentence she should since so some such sure than
    that the their them then there these they this those though through to too under unknown until up upon us very was
    we were what when where whether which while who whom whose why will with within without would yes yet you your
    according approximately around about roughly only just exactly total between
    """.split()
)
# Titles and company suffixes: never an invented name on their own.
TITLES = frozenset("dr mr mrs ms mx prof sir st mt jr sr inc ltd llc gmbh plc co corp".split())


def corpus_support_text(texts: Sequence[str]) -> str:
    """The `corpus_text_normalised` argument of `unsupported_content`: normalised text, also with separators split.

    normalize_answer merges "Oyelaran-Stone" into one token and "1,299" into "1299"; the second copy
    with "-", "/", ".", "," and ":" turned into spaces keeps the parts findable too.
    """
    joined = "\n".join(texts)
    return normalize_answer(joined) + "\n" + normalize_answer(_SEPARATORS.sub(" ", joined))


@lru_cache(maxsize=8)
def _support_sets(support_normalised: str) -> tuple[frozenset[str], frozenset[str]]:
    """(tokens, digit runs without leading zeros) of a support text; cached because the corpus text is reused."""
    toks = frozenset(support_normalised.split())
    runs = frozenset(r.lstrip("0") or "0" for r in _DIGITS.findall(support_normalised))
    return toks, runs


class _Support:
    """Membership tests against the retrieved passages and the corpus together."""

    def __init__(self, context_texts: Sequence[str], corpus_text_normalised: str) -> None:
        self.sets = [_support_sets(corpus_support_text(context_texts)), _support_sets(corpus_text_normalised)]

    def has_token(self, t: str) -> bool:
        return any(t in toks for toks, _ in self.sets)

    def has_run(self, d: str) -> bool:
        return any(d in runs for _, runs in self.sets)

    def has_word(self, w: str) -> bool:
        """A normalised word, tolerating a plural "s" either way ("Fridays" / "Friday")."""
        return not w or self.has_token(w) or (w.endswith("s") and self.has_token(w[:-1])) or self.has_token(w + "s")

    def has_code(self, raw: str) -> bool:
        """Numbers and codes: whole ("1,299" as "1299"), or every digit group and letter part found ("March 3, 2024")."""
        whole = normalize_answer(raw)
        if self.has_token(whole) or (whole.isdigit() and self.has_run(whole.lstrip("0") or "0")):
            return True
        if _ATOMIC_NUMBER.fullmatch(raw):
            return False
        digits = [d.lstrip("0") or "0" for d in _DIGITS.findall(raw)]
        letters = [normalize_answer(x) for x in _LETTERS.findall(raw)]
        return len(digits) + len(letters) > 1 and all(self.has_run(d) for d in digits) and all(self.has_word(x) for x in letters)

    def has_name_part(self, raw: str) -> bool:
        whole = normalize_answer(raw)
        return self.has_word(whole) or all(self.has_word(normalize_answer(x)) for x in _LETTERS.findall(raw))


def _tokens(text: str) -> list[tuple[str, bool, bool]]:
    """(token, is_code, is_name) for each token: codes contain a digit; names are capitalised, not common words."""
    out: list[tuple[str, bool, bool]] = []
    for m in _TOKEN.finditer(text):
        tok = m.group()
        prefix = text[: m.start()].rstrip()
        sentence_start = not prefix or prefix[-1] in ".!?:;" or "\n" in text[len(prefix) : m.start()]
        low = tok.lower()
        is_code = any(ch.isdigit() for ch in tok)
        is_name = not is_code and tok[0].isupper() and not (tok == "I" or low in TITLES or (sentence_start and low in COMMON_WORDS))
        out.append((tok, is_code, is_name))
    return out


def _name_spans(text: str) -> list[list[str]]:
    """Runs of consecutive capitalised tokens ("Mira Okafor"), split at lower-case words, codes and punctuation."""
    spans: list[list[str]] = []
    current: list[str] = []
    last_end = 0
    for m, (tok, _code, is_name) in zip(_TOKEN.finditer(text), _tokens(text), strict=True):
        gap, last_end = text[last_end : m.start()], m.end()
        if is_name and current and gap.strip() in ("", "&"):
            current.append(tok)
            continue
        if current:
            spans.append(current)
        current = [tok] if is_name else []
    if current:
        spans.append(current)
    return spans


def unsupported_content(answer: str, context_texts: Sequence[str], corpus_text_normalised: str) -> list[str]:
    """Numbers and capitalised names in the answer found in neither the contexts nor the corpus.

    Citation markers are stripped first; `corpus_text_normalised` is `corpus_support_text(docs)`
    (plain textnorm.normalize_answer of the corpus works too, with hyphenated names matched less
    well). Matching is on normalised tokens; numbers and codes also by their digit groups and
    letter parts (so "March 3, 2024" matches "3 March 2024"). Abstentions return [].
    """
    if is_abstention(answer):
        return []
    text = strip_citations(answer)
    support = _Support(context_texts, corpus_text_normalised)
    items: list[str] = []
    for tok, is_code, _name in _tokens(text):
        if is_code and not support.has_code(tok) and tok not in items:
            items.append(tok)
    for span in _name_spans(text):
        label = " ".join(span)
        if not all(support.has_name_part(t) for t in span) and label not in items:
            items.append(label)
    return items


JUDGE_QUESTION = "Is this answer supported by the context? Answer Yes or No."
JUDGE_SYSTEM = "You check whether an answer is supported by the given context. Reply with Yes or No only."


def groundedness_prompt(question: str, answer: str, contexts: Sequence[str]) -> str:
    """The judge prompt: numbered passages, the question, the answer, and the Yes/No question."""
    return f"Context:\n{format_contexts(list(contexts))}\n\nQuestion: {question}\nAnswer: {strip_citations(answer)}\n\n{JUDGE_QUESTION}"


def groundedness(
    generator: Any, questions: Sequence[str], answers: Sequence[str], contexts: Sequence[Sequence[str] | None], batch_size: int = 16
) -> list[float | None]:
    """Probability the generator says "Yes" to "is this answer supported by the context?".

    None where a row has no context passages (closed-book methods) or the answer is an abstention.
    Prompts are rendered by the generator (`generator.render`: chat template, or the plain
    transcript for base models, so the next token is the verdict) and go to
    `generator.score_yes(prompts) -> list[float]` in batches.
    """
    if not len(questions) == len(answers) == len(contexts):
        raise ValueError(
            f"groundedness: {len(questions)} questions, {len(answers)} answers, {len(contexts)} context lists; pass one of each per row"
        )
    todo = [i for i, (a, c) in enumerate(zip(answers, contexts, strict=True)) if c and not is_abstention(a)]
    prompts = [groundedness_prompt(questions[i], answers[i], contexts[i] or []) for i in todo]
    if hasattr(generator, "render"):  # a backend renders in its model's format; a bare scorer takes the text as it is
        prompts = [generator.render([{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": p}]) for p in prompts]
    scores: list[float] = []
    for start in range(0, len(prompts), batch_size):
        scores += [float(s) for s in generator.score_yes(prompts[start : start + batch_size])]
    if len(scores) != len(prompts):
        raise RuntimeError(f"generator.score_yes returned {len(scores)} scores for {len(prompts)} prompts")
    out: list[float | None] = [None] * len(answers)
    for i, s in zip(todo, scores, strict=True):
        if not 0.0 <= s <= 1.0:
            raise RuntimeError(f"generator.score_yes returned {s} for row {i}; expected a probability in [0, 1]")
        out[i] = s
    return out
