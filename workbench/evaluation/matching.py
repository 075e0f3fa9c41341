"""The answer matcher behind ``correct``: would a careful reader accept this reply for these gold aliases?

Rules, tried per alias in order; the first that holds is recorded with the alias it used:
- ``exact``: equal after SQuAD normalisation.
- ``forms``: equal as concept keys (``textnorm.concept_key``: stems, -ism/-ist/-ic/-ian folds,
  demonyms, number words): "Catholicism" for "Catholic", "Anglican" for "Anglicanism".
- ``core``: equal to the alias without its generic head word: "Catholic" for "Catholic Church".
- ``contains``: the alias (or its core) occurs inside a longer reply, on word boundaries. Only for
  *specific* aliases: a single generic word ("Church", "Company") or a 1-2 letter code matches only
  as the whole reply.
- ``f1``: concept-token F1 with the alias >= 0.8 (word order, one extra word).
Then penalties on the partial rules (contains, f1): a reply that negates the alias ("not Catholic"),
offers alternatives ("Catholic or Anglican"), or adds a number of the same kind that the alias and
the question do not have ("16th century and 18th") is wrong, and says so. Very long replies cannot
match by containment (a listing of every label or a pasted passage).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from ..language import has_hangul
from ..textnorm import concept_key, concept_tokens, normalize_answer, words

F1_MATCH = 0.8  # concept-token F1 with an alias at or above this counts as correct
LONG_FACTOR, LONG_SLACK = 4, 10  # containment ignored when the reply has > 4 * longest alias + 10 words

# Head words that name a kind of thing, not the thing: alone they identify nothing.
GENERIC = frozenset(
    concept_key(w)
    for w in (
        "church religion faith denomination sect company corporation corp inc ltd group team club party university college school "
        "city town village country state nation kingdom republic province region river lake mountain island street road "
        "people person man woman family language music film movie book song album band award prize war battle thing one other "
        "king queen emperor president saint sir lord"
    ).split()
)
_STOP = frozenset(
    "of in on at to for by with from as is are was were be been it its this that these those he she they his her their him them "
    "and which who whom what where when also called named known".split()
)
_NEGATIONS = frozenset("not no never neither nor isnt wasnt arent werent doesnt didnt".split())
_ALTERNATIVES = frozenset(("or", "either", "nor", "또는", "혹은"))
# Korean negation follows what it negates: "부산이 아닙니다" -> 부산 아니, "30일은 안 됩니다", "않", "못", "없".
_NEGATIONS_AFTER = frozenset(("아니", "않", "안", "못"))
_CONJUNCTIONS = frozenset(("and", "or", "to", "through", "until", "nor"))


@dataclass(frozen=True)
class Match:
    """A judgement: ``correct``, the rule that decided it, the alias it used and why, in words."""

    correct: bool
    rule: str
    alias: str | None
    why: str


def _keys(text: str) -> list[str]:
    return concept_tokens(text)


_LIST_SPLIT = re.compile(r"\s*(?:,|;|/|\bor\b|\band\b)\s*", re.I)


def expand_aliases(aliases: list[str]) -> list[str]:
    """Add the parts of a listed alias when one part is itself an alias: "Norseman, Viking" beside
    "Viking" lists synonyms, so "Norseman" names the answer too; "Denmark, Iceland and Norway" adds nothing."""
    norms = {normalize_answer(a) for a in aliases}
    out = list(aliases)
    for a in aliases:
        parts = [p for p in _LIST_SPLIT.split(a) if normalize_answer(p)]
        if len(parts) > 1 and any(normalize_answer(p) in norms for p in parts):
            out += [p for p in parts if normalize_answer(p) not in norms and p not in out]
    return out


def _find(seq: list[str], sub: list[str]) -> int:
    """Start of the first occurrence of ``sub`` in ``seq`` on token boundaries, else -1."""
    n = len(sub)
    for i in range(len(seq) - n + 1):
        if seq[i : i + n] == sub:
            return i
    return -1


def _f1(pred: list[str], gold: list[str]) -> float:
    same = sum((Counter(pred) & Counter(gold)).values())
    if not pred or not gold or not same:
        return float(pred == gold)
    p, r = same / len(pred), same / len(gold)
    return 2 * p * r / (p + r)


def _is_number(key: str) -> bool:
    return key[:1].isdigit()


def _shape(key: str) -> str:
    """What kind of number a key is: an ordinal, a year-like four-digit number, or a plain number."""
    if key.endswith(("st", "nd", "rd", "th")):
        return "ordinal"
    return "year" if len(key) == 4 and key.isdigit() and key[:2] in ("19", "20", "18", "17", "16", "15") else "number"


def _core(keys: list[str]) -> list[str]:
    """An alias's keys without its generic words ("catholic church" -> "catholic"); [] if nothing or only numbers are left."""
    core = [k for k in keys if k not in GENERIC and k not in _STOP]
    return core if core and core != keys and not all(_is_number(k) for k in core) else []


_COMPASS = re.compile(r"\b(north|south|east|west)\s+$")


def _different_place(reply: str, alias: str) -> str:
    """ "South America" is not "America": a compass word right before a one-word alias names another place."""
    text, name = f" {normalize_answer(reply)} ", f" {normalize_answer(alias)} "
    return f'names a different place ("{normalize_answer(reply)}")' if name in text and _COMPASS.search(text.split(name)[0] + " ") else ""


def _other_unit(reply: list[str], start: int, number: str, aliases: list[list[str]]) -> str:
    """A different unit after a bare-number alias, where a longer alias gives the unit ("600 requests per hour"
    vs "600 requests per minute"); only when the reply's words overlap that unit phrase."""
    tail = [w for w in reply[start + 1 : start + 4] if w not in _STOP]
    for k in aliases:
        if len(k) > 1 and k[0] == number:
            unit = set(k[1:])
            if set(tail) & unit and set(tail) - unit:
                return f'gives another unit ("{" ".join(reply[start : start + 4])}" vs "{" ".join(k)}")'
    return ""


def _specific(keys: list[str], alias: str) -> tuple[bool, str]:
    """May this alias match inside a longer reply? (False, reason) for generic or ambiguous ones."""
    content = [k for k in keys if k not in _STOP]
    if len(content) != 1:
        return bool(content), "" if content else f'"{alias}" has no content words'
    word = content[0]
    if _is_number(word):
        return True, ""
    if word in GENERIC:
        return False, f'"{alias}" is a generic word, so it counts only as the whole answer'
    if len(word) <= (1 if has_hangul(word) else 2):  # two Hangul syllables make a word ("부산", "연차")
        return False, f'"{alias}" is too short to find inside a longer answer'
    return True, ""


def _penalty(reply: list[str], start: int, length: int, alias_keys: list[str], question_keys: set[str]) -> str:
    """Why extra content around a matched alias makes the reply wrong, or "" if it does not."""
    before, after = reply[:start], reply[start + length :]
    outside = before + after
    if any(w in _NEGATIONS for w in before[-3:]) or any(w in _NEGATIONS_AFTER for w in after[:3]):
        return "negates it"
    if set(outside) & _ALTERNATIVES and not set(alias_keys) & _ALTERNATIVES:
        rest = [w for w in outside if w not in _STOP and w not in _ALTERNATIVES and w not in question_keys and w not in _NEGATIONS and w not in alias_keys]
        if rest:
            return f'offers alternatives ("{" ".join(outside)}")'
    shapes = {_shape(k) for k in alias_keys if _is_number(k)}
    extra = [k for k in outside if _is_number(k) and k not in alias_keys and k not in question_keys]
    if shapes and extra:
        same_kind = [k for k in extra if _shape(k) in shapes]
        joined = any(w in _CONJUNCTIONS for w in after[:2]) or any(w in _CONJUNCTIONS for w in before[-2:])
        if same_kind or joined:
            return f'adds another {(_shape((same_kind or extra)[0]))} ("{(same_kind or extra)[0]}") that contradicts it'
    return ""


def match_answer(reply: str, aliases: list[str], question: str = "") -> Match:
    """Judge a non-abstaining reply to an answerable question against its gold aliases."""
    aliases = expand_aliases([a for a in aliases if normalize_answer(a)])
    if not aliases:
        return Match(False, "no-gold", None, "the question has no gold answer to match")
    reply_words = words(reply)
    for a in aliases:
        if reply_words == words(a):
            return Match(True, "exact", a, f'equals "{a}"')
    reply_keys = _keys(reply)
    all_keys = [_keys(a) for a in aliases]
    for a, k in zip(aliases, all_keys, strict=True):
        if reply_keys == k:
            return Match(True, "forms", a, f'same words as "{a}" up to word forms')
    for a, k in zip(aliases, all_keys, strict=True):
        core = _core(k)
        if core and reply_keys == core and _specific(core, a)[0]:
            return Match(True, "core", a, f'names "{a}" without its generic word ("{" ".join(w for w in words(a) if concept_key(w) in GENERIC)}")')
    question_keys = set(_keys(question))
    long_reply = len(reply_keys) > LONG_FACTOR * max(len(k) for k in all_keys) + LONG_SLACK
    refusals: list[str] = []
    # Longest aliases first: the most specific evidence decides.
    for a, k in sorted(zip(aliases, all_keys, strict=True), key=lambda p: -len(p[1])):
        for needle, via in ((k, ""), (_core(k), " (without its generic word)")):
            if not needle:
                continue
            start = _find(reply_keys, needle)
            if start < 0:
                continue
            ok, reason = _specific(needle, a)
            if not ok:
                refusals.append(reason)
                continue
            if long_reply:
                refusals.append(f'contains "{a}" but is too long for containment to count ({len(reply_keys)} words)')
                continue
            bad = _penalty(reply_keys, start, len(needle), needle, question_keys)
            if not bad and len(needle) == 1 and _is_number(needle[0]):
                bad = _other_unit(reply_keys, start, needle[0], all_keys)
            if not bad and len(needle) == 1:
                bad = _different_place(reply, a)
            if bad:
                return Match(False, "contradicts", a, f'contains "{a}"{via} but {bad}')
            return Match(True, "contains", a, f'contains "{a}"{via}')
    best_f1, best = max((_f1(reply_keys, k), a) for a, k in zip(aliases, all_keys, strict=True))
    if best_f1 >= F1_MATCH:
        k = _keys(best)
        overlap = [w for w in k if w in reply_keys]
        start = _find(reply_keys, overlap[:1]) if overlap else -1
        bad = _penalty(reply_keys, start, 1, k, question_keys) if start >= 0 else ""
        if bad:
            return Match(False, "contradicts", best, f'word overlap {best_f1:.2f} with "{best}" but {bad}')
        return Match(True, "f1", best, f'word overlap (F1 {best_f1:.2f}) with "{best}"')
    if refusals:
        return Match(False, "generic", None, refusals[0])
    return Match(False, "none", None, f'matches no gold alias (best word overlap {best_f1:.2f} with "{best}")')
