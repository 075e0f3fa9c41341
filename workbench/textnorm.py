"""SQuAD-style answer normalisation, shared by scoring, corpus checks and leakage guards.

Text with Hangul gets Korean-aware tokens (workbench.korean: content morphemes, so "부산에" and "부산" are one
word) and no English stemming; text without Hangul is handled exactly as before.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache

from .language import has_hangul

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace (SQuAD v2 evaluation)."""
    text = text.lower().translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def tokens(text: str) -> list[str]:
    """SQuAD tokens: normalised whitespace words; Hangul text: its content morphemes (particles and endings dropped)."""
    norm = normalize_answer(text)
    if not has_hangul(norm):
        return norm.split()
    from .korean import content_morphemes

    return list(content_morphemes(norm))


_KO_AFTER = r"(?=$|\s|[\uac00-\ud7a3])"  # Korean: a particle, ending or counter may follow ("부산에", "3200명")
_KO_MAGNITUDE = re.compile(r"\d(?:만|억|천|백|조)")  # "35" is not "35만" (350,000)


def occurs(needle: str, padded: str) -> bool:
    """Normalised ``needle`` in normalised, space-padded ``padded`` on word boundaries.

    With Hangul on either side, Hangul may follow the needle (particles attach to Korean words).
    """
    if f" {needle} " in padded:
        return True
    if not (has_hangul(needle) or has_hangul(padded)):
        return False
    for m in re.finditer(r"(?:^|\s)" + re.escape(needle) + _KO_AFTER, padded):
        if not _KO_MAGNITUDE.match(padded, m.end() - 1):
            return True
    return False


def contains_tokens(haystack: str, needle: str) -> bool:
    """True if the normalised needle occurs in the normalised haystack on token boundaries (Korean: see ``occurs``)."""
    n = normalize_answer(needle)
    if not n:
        return False
    return occurs(n, f" {normalize_answer(haystack)} ")


# Word forms of one concept (used by the answer matcher, not by the SQuAD EM/F1 figures).
_WORD = re.compile(r"\d+(?:[.,]\d+)+|[^\W_]+(?:\.\d+)*(?:'[^\W_]+)?")  # "WPA3.8" is one word, not "WPA3" and "8"
_INITIALISM = re.compile(r"\b(?:[^\W\d_]\.){2,}")  # "U.S." -> "US"
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
)} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100", "dozen": "12"}
_ORDINAL_WORDS = {w: str(i) for i, w in enumerate(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth fifteenth sixteenth seventeenth "
    "eighteenth nineteenth twentieth".split(), 1
)}
_ORDINAL = re.compile(r"^(\d+)(?:st|nd|rd|th)$")  # "16th" and "sixteenth" are one key, "16"
# Demonym -> place (a data table, not a suffix rule): "Japanese" and "Japan" are one concept.
DEMONYMS = {
    "american": "america", "british": "britain", "english": "england", "scottish": "scotland", "welsh": "wales", "irish": "ireland",
    "french": "france", "german": "germany", "dutch": "netherlands", "belgian": "belgium", "swiss": "switzerland", "austrian": "austria",
    "italian": "italy", "spanish": "spain", "portuguese": "portugal", "greek": "greece", "polish": "poland", "czech": "czechia",
    "hungarian": "hungary", "romanian": "romania", "bulgarian": "bulgaria", "serbian": "serbia", "croatian": "croatia",
    "russian": "russia", "ukrainian": "ukraine", "swedish": "sweden", "norwegian": "norway", "danish": "denmark", "finnish": "finland",
    "icelandic": "iceland", "lithuanian": "lithuania", "latvian": "latvia", "estonian": "estonia", "turkish": "turkey",
    "japanese": "japan", "chinese": "china", "korean": "korea", "vietnamese": "vietnam", "thai": "thailand", "indian": "india",
    "pakistani": "pakistan", "bangladeshi": "bangladesh", "indonesian": "indonesia", "filipino": "philippines", "malaysian": "malaysia",
    "australian": "australia", "canadian": "canada", "mexican": "mexico", "brazilian": "brazil", "argentine": "argentina",
    "argentinian": "argentina", "chilean": "chile", "peruvian": "peru", "colombian": "colombia", "cuban": "cuba",
    "egyptian": "egypt", "nigerian": "nigeria", "kenyan": "kenya", "ethiopian": "ethiopia", "moroccan": "morocco",
    "israeli": "israel", "iranian": "iran", "persian": "persia", "iraqi": "iraq", "syrian": "syria", "saudi": "saudi",
    "afghan": "afghanistan", "roman": "rome", "european": "europe", "african": "africa", "asian": "asia", "tibetan": "tibet",
    # adherents -> religion, direction adjectives -> direction
    "muslim": "islam", "moslem": "islam", "jewish": "judaism", "jew": "judaism", "jews": "judaism",
    "northern": "north", "southern": "south", "eastern": "east", "western": "west",
}
# Derivational endings folded after stemming, longest first, when at least 4 letters remain
# ("Buddhism"/"Buddhist", "Catholic"/"Catholicism", "Protestant"/"Protestantism", "history"/"historic").
_TENS = frozenset(("20", "30", "40", "50", "60", "70", "80", "90"))
_FOLDS = ("ism", "ist", "ian", "ant", "iti", "ic", "i")
_MIN_STEM = 4


@lru_cache(maxsize=1)
def _stemmer():  # snowballstemmer: the English (Porter2) stemmer, pure Python, no data to download
    import snowballstemmer

    return snowballstemmer.stemmer("english")


def words(text: str) -> list[str]:
    """Lower-cased words and numbers, articles dropped; "5,120" -> "5120", "2.5" stays one token.

    Text with Hangul: its content morphemes ("3,200명입니다" -> "3200", "명").
    """
    out = []
    text = _INITIALISM.sub(lambda m: m.group(0).replace(".", ""), text.translate(_QUOTES))
    if has_hangul(text):
        from .korean import content_morphemes

        found = [m for m in content_morphemes(text) if _WORD.fullmatch(m.replace(",", ""))]
    else:
        found = _WORD.findall(text.lower())
    for w in found:
        w = w.replace(",", "").replace("'", "")
        if w not in ("a", "an", "the"):
            out.append(w)
    return out


@lru_cache(maxsize=65536)
def concept_key(word: str) -> str:
    """One key for the word forms of a concept: number words -> digits, demonyms -> places, stem, fold."""
    if word in _NUMBER_WORDS:
        return _NUMBER_WORDS[word]
    if word in _ORDINAL_WORDS:
        return _ORDINAL_WORDS[word]
    if word[:1].isdigit():
        m = _ORDINAL.match(word)
        return m.group(1) if m else word
    if has_hangul(word):  # no English stemmer on Korean
        return word
    word = DEMONYMS.get(word, word)
    stem = _stemmer().stemWord(word)
    for end in _FOLDS:
        if stem.endswith(end) and len(stem) - len(end) >= _MIN_STEM:
            return stem[: -len(end)]
    return stem


def concept_tokens(text: str) -> list[str]:
    """Concept keys of a text's words; "forty-two" becomes "42"."""
    out: list[str] = []
    for w in words(text):
        key = concept_key(w)
        if out and key.isdigit() and 0 < int(key) < 10 and out[-1] in _TENS:
            out[-1] = str(int(out[-1]) + int(key))
        else:
            out.append(key)
    return out
