"""Safe display of corpus and model text: Markdown-escaped, with gold answers highlighted.

Corpus documents, questions and model answers are untrusted. They are never rendered as HTML and
every Markdown control character is backslash-escaped, so a chunk holding ``<script>``, ``![](url)``
or ``:red[...]`` shows as literal text. Highlights wrap the escaped match in Streamlit's
``:green-background[**…**]`` directive.
"""

from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=^&\"'])")


def escape_markdown(text: str) -> str:
    """Backslash-escape every Markdown/Streamlit-directive character; keep line breaks as hard breaks."""
    text = str(text).replace("://", ":\u2060//").replace("www.", "www\u2060.")  # no autolinks from corpus text
    lines = [_MD_SPECIAL.sub(r"\\\1", line.strip()) for line in text.splitlines()]
    return "  \n".join(line for line in lines)


def _pattern(needles: list[str]) -> re.Pattern[str] | None:
    parts = []
    for needle in sorted({n.strip() for n in needles if n and n.strip()}, key=len, reverse=True):
        body = r"\s+".join(re.escape(w) for w in needle.split())
        start = r"(?<!\w)" if re.match(r"\w", needle) else ""
        end = r"(?!\w)" if re.search(r"\w$", needle) else ""
        parts.append(f"{start}{body}{end}")
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def find_spans(text: str, needles: list[str]) -> list[tuple[int, int]]:
    """Non-overlapping (start, end) character spans where any needle occurs, case-insensitively, as whole words."""
    pattern = _pattern(needles)
    return [m.span() for m in pattern.finditer(text)] if pattern else []


def highlight_markdown(text: str, needles: list[str], color: str = "green") -> str:
    """Escaped Markdown of ``text`` with every occurrence of a needle wrapped in a background highlight."""
    spans = find_spans(text, needles)
    if not spans:
        return escape_markdown(text)
    out: list[str] = []
    pos = 0
    for start, end in spans:
        out.append(text[pos:start])
        out.append("\x00" + text[start:end] + "\x01")
        pos = end
    out.append(text[pos:])
    marked = "".join(out)
    escaped = escape_markdown(marked)
    return re.sub(
        r"\x00(.*?)\x01", lambda m: f":{color}-background[**{m.group(1)}**]" if m.group(1).strip() else m.group(1), escaped, flags=re.S
    )


def code_span(text: object) -> str:
    """Untrusted text as an inline code span: Markdown is not interpreted inside, so only backticks need removing."""
    return "`" + " ".join(str(text).replace("`", "'").split())[:200] + "`"
