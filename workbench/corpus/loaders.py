"""Turn the files under a corpus's docs/ into Documents: text, Markdown, PDF and HTML, defensively.

Bad input never mangles silently: binary files, undecidable encodings, encrypted or malformed PDFs,
oversized and empty files each raise a one-line ``DocumentError`` naming the file and the fix.
PDFs are parsed in a child process with a timeout and a memory cap so one hostile file cannot hang
or exhaust the app.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

from ..errors import WorkbenchError
from ..types import Document
from .pdf import PDF_MEMORY_BYTES, PDF_TIMEOUT_S, PdfProblem, parse_pdf

Progress = Callable[[str, float], None]  # (message, fraction 0..1), same as models.Progress

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".pdf", ".html", ".htm")
DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # per file

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
_TEXT_CONTROLS = set("\t\n\r\f\v")
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")  # control characters other than _TEXT_CONTROLS
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
# Non-ASCII punctuation a legacy Western text plausibly holds (the cp1252 0x80-0x9F block and Latin-1 signs).
_LEGACY_PUNCT = set("€‚ƒ„…†‡ˆ‰‹Œ‘’“”•–—˜™›œŸ¡¢£¤¥¦§¨©ª«¬®¯°±²³´µ¶·¸¹º»¼½¾¿×÷\u00a0\u00ad")


class CorpusError(WorkbenchError, ValueError):
    """A corpus folder or one of its files is unusable; ``file``/``line`` locate it, ``reason`` says what to do."""

    def __init__(self, reason: str, file: str | Path | None = None, line: int | None = None):
        self.reason = reason
        self.file = str(file) if file is not None else None
        self.line = line
        where = f"{file}:{line}: " if file is not None and line is not None else f"{file}: " if file is not None else ""
        super().__init__(where + reason)


class DocumentError(CorpusError):
    """One document cannot be read; the message names the file, what is wrong and what to do."""


# ---------------------------------------------------------------------------------------------------------------- text


def _control_share(text: str) -> float:
    """Share of characters that are control characters other than ordinary whitespace."""
    if not text:
        return 0.0
    return _CONTROL_CHARS.subn("", text)[1] / len(text)  # C-speed: a 50 MB file takes ~1 s, not ~8 s


def _looks_like_legacy_text(text: str) -> bool:
    """True when a cp1252/latin-1 decoding reads as prose: few non-ASCII chars, all letters or common signs."""
    if _control_share(text) > 0:
        return False
    if _NON_ASCII.subn("", text)[1] > 0.3 * max(len(text), 1):
        return False
    distinct = {ch for ch in set(text) if ord(ch) > 127}
    return all(unicodedata.category(ch).startswith("L") or ch in _LEGACY_PUNCT for ch in distinct)


def decode_text(data: bytes, path: Path, declared: str | None = None) -> tuple[str, str]:
    """Decode file bytes to (text, encoding): BOMs, UTF-8, a declared charset, else cp1252/latin-1 if sensible."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), codec
            except UnicodeDecodeError as exc:
                raise DocumentError(
                    f"starts with a {codec} byte-order mark but is not valid {codec} ({exc.reason}); re-save it as UTF-8", path
                ) from None
    if b"\x00" in data:
        raise DocumentError(
            "contains NUL bytes, so it looks binary, not text; remove it or convert it to .txt/.md/.pdf/.html (UTF-16 text needs a byte-order mark)",
            path,
        )
    candidates = ["utf-8"] + ([declared] if declared else []) + ["cp1252", "latin-1"]
    for codec in dict.fromkeys(candidates):
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            continue
        if codec == "utf-8" or (codec == declared and codec not in ("cp1252", "latin-1", "iso-8859-1", "windows-1252")):
            if _control_share(text) > 0.01:
                raise DocumentError(
                    f"{_control_share(text):.0%} of its characters are control characters, so it looks binary; remove it or export it as text",
                    path,
                )
            return text, codec
        if _looks_like_legacy_text(text):
            return text, codec
    raise DocumentError(
        "is neither UTF-8 nor sensible cp1252/latin-1 text (undecidable encoding or binary data); re-save it as UTF-8", path
    )


def _clean_whitespace(text: str) -> str:
    """Strip trailing spaces, collapse runs of spaces and of blank lines; keep paragraph breaks."""
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DocumentError(
                f"is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB per-file limit; split it or raise the limit", path
            )
        return path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"cannot be read ({exc.strerror or exc}); check the file's permissions", path) from None


# ---------------------------------------------------------------------------------------------------------------- formats


def _load_plain(path: Path, data: bytes, fmt: str) -> tuple[str, dict]:
    text, encoding = decode_text(data, path)
    meta: dict = {"format": fmt, "encoding": encoding}
    if fmt == "markdown":
        heading = re.search(r"^#\s+(.+?)\s*#*\s*$", text, flags=re.MULTILINE)
        if heading:
            meta["title"] = heading.group(1)
    return text.replace("\r\n", "\n").replace("\r", "\n").strip(), meta


_BLOCK_TAGS = (
    "p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody",
    "section", "article", "header", "footer", "nav", "aside", "main", "pre", "blockquote", "hr", "figure", "figcaption",
    "address", "caption", "form", "fieldset", "details", "summary",
)  # fmt: skip


def _load_html(path: Path, data: bytes) -> tuple[str, dict]:
    from bs4 import BeautifulSoup

    head = data[:4096].decode("ascii", errors="ignore")
    m = re.search(r"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", head, flags=re.IGNORECASE)
    html, encoding = decode_text(data, path, declared=m.group(1).lower() if m else None)
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg", "iframe"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    if soup.head:
        soup.head.decompose()
    for row in soup.find_all("tr"):  # keep a table row on one line so its cells stay together
        cells = [c.get_text(" ", strip=True) for c in row.find_all(["td", "th"])]
        row.replace_with(" | ".join(c for c in cells if c) + "\n")
    for tag in soup.find_all(_BLOCK_TAGS):
        tag.insert_before("\n")
        tag.insert_after("\n")
    text = _clean_whitespace(soup.get_text(""))
    if title and not text.startswith(title):
        text = f"{title}\n\n{text}" if text else ""
    meta: dict = {"format": "html", "encoding": encoding}
    if title:
        meta["title"] = title
    return text, meta


def _load_pdf(path: Path, timeout_s: float, memory_bytes: int) -> tuple[str, dict]:
    try:
        raw_pages, title = parse_pdf(path, timeout_s, memory_bytes)
    except PdfProblem as exc:
        raise DocumentError(str(exc), path) from None
    pages = [_clean_whitespace(p) for p in raw_pages]
    offsets, parts, pos = [], [], 0
    for page in pages:
        offsets.append(pos)
        parts.append(page)
        pos += len(page) + 2
    meta: dict = {"format": "pdf", "pages": len(pages), "page_offsets": offsets}
    if title.strip() and title.strip().lower() != "untitled":
        meta["title"] = title.strip()
    return "\n\n".join(parts).strip(), meta


# ---------------------------------------------------------------------------------------------------------------- public


def doc_id_for(path: Path, root: Path) -> str:
    """The document id: the file's posix path relative to the docs/ folder (as listed, not through a link)."""
    try:
        return Path(path).absolute().relative_to(Path(root).absolute()).as_posix()
    except ValueError:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            return path.name


def load_document(
    path: Path,
    root: Path,
    max_bytes: int = DEFAULT_MAX_BYTES,
    pdf_timeout_s: float = PDF_TIMEOUT_S,
    pdf_memory_bytes: int = PDF_MEMORY_BYTES,
) -> Document:
    """Read one .txt/.md/.pdf/.html file into a Document; raise DocumentError with the fix when it can't."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(f"unsupported file type {suffix or '(none)'}; convert it to .txt, .md, .pdf or .html", path)
    data = _read_bytes(path, max_bytes)
    if suffix == ".pdf":
        if not data.lstrip()[:5].startswith(b"%PDF"):
            raise DocumentError("is not a PDF (no %PDF header); rename it to its real type or re-export it", path)
        text, meta = _load_pdf(path, pdf_timeout_s, pdf_memory_bytes)
    elif suffix in (".html", ".htm"):
        text, meta = _load_html(path, data)
    else:
        text, meta = _load_plain(path, data, "markdown" if suffix in (".md", ".markdown") else "text")
    if not text.strip():
        hint = "it may be a scanned image; run OCR first" if suffix == ".pdf" else "add content or delete it"
        raise DocumentError(f"yields no text; {hint}", path)
    meta["bytes"] = len(data)
    return Document(doc_id=doc_id_for(path, root), text=text, path=str(path.resolve()), meta=meta)


def _link_problem(path: Path, docs_dir: Path) -> str:
    """Why a symbolic link under docs/ is not followed (never read: its target is outside docs/ or read already)."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return f"{path}: skipped, a symbolic link whose target does not exist; remove it"
    try:
        inside = target.relative_to(docs_dir.resolve()).as_posix()
    except ValueError:
        return f"{path}: skipped, a symbolic link to {target}, outside the corpus docs/ folder (never read); copy the file into docs/ instead"
    return f"{path}: skipped, a symbolic link to docs/{inside}, which is read under its own name; remove the link"


def check_inside(path: Path, root: Path) -> Path:
    """``path`` if it resolves inside the corpus folder ``root``; a CorpusError naming it otherwise (nothing outside is read)."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
    except ValueError:
        raise CorpusError(f"is a symbolic link to {Path(path).resolve()}, outside the corpus folder, which is never read; copy the file into the corpus", path) from None
    return path


def iter_document_files(docs_dir: Path, skipped: list[str] | None = None) -> tuple[list[Path], list[Path]]:
    """(supported files, unsupported files) under docs_dir, recursively, sorted; hidden files and folders skipped.

    Symbolic links (files or folders) are never followed, so nothing outside docs/ is read and no file is read twice;
    each one is reported in ``skipped`` with the reason.
    """
    docs_dir = Path(docs_dir)
    supported: list[Path] = []
    other: list[Path] = []
    for folder, dirs, files in os.walk(docs_dir, followlinks=False):
        here = Path(folder)
        for name in sorted(dirs):
            if (here / name).is_symlink() and not name.startswith(".") and skipped is not None:
                skipped.append(_link_problem(here / name, docs_dir))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not (here / d).is_symlink())
        for name in files:
            path = here / name
            if name.startswith("."):
                continue
            if path.is_symlink():
                if skipped is not None:
                    skipped.append(_link_problem(path, docs_dir))
                continue
            if not path.is_file():  # sockets, fifos, devices: never opened (a fifo would block the read)
                if skipped is not None:
                    skipped.append(f"{path}: skipped, not a regular file (a pipe, socket or device); remove it")
                continue
            (supported if path.suffix.lower() in SUPPORTED_SUFFIXES else other).append(path)
    return sorted(supported), sorted(other)


def scan_documents(
    docs_dir: Path, progress: Progress | None = None, max_bytes: int = DEFAULT_MAX_BYTES, skipped: list[str] | None = None
) -> tuple[list[Document], list[DocumentError], list[Path]]:
    """Load every supported file; never raises per file: (documents, unreadable-file errors, unsupported files).

    Symbolic links are not followed; each is added to ``skipped`` (when given) with the reason.
    """
    docs_dir = Path(docs_dir)
    if docs_dir.is_symlink():
        raise CorpusError("docs/ is a symbolic link; make it a real folder inside the corpus (links are never followed)", docs_dir.parent)
    if not docs_dir.is_dir():
        raise CorpusError("no docs/ folder; put the corpus documents (.txt/.md/.pdf/.html) in a docs/ sub-folder", docs_dir.parent)
    files, unsupported = iter_document_files(docs_dir, skipped)
    docs: list[Document] = []
    errors: list[DocumentError] = []
    first_file: dict[str, Path] = {}
    for i, path in enumerate(files):
        if progress:
            progress(f"reading {path.relative_to(docs_dir).as_posix()}", i / max(len(files), 1))
        try:
            doc = load_document(path, docs_dir, max_bytes=max_bytes)
            if doc.doc_id in first_file:
                raise DocumentError(f"has the same document id {doc.doc_id!r} as {first_file[doc.doc_id]}; rename one of them", path)
            first_file[doc.doc_id] = path
            docs.append(doc)
        except DocumentError as exc:
            errors.append(exc)
    if progress:
        progress(f"read {len(docs)} documents", 1.0)
    return docs, errors, unsupported


def load_documents(
    docs_dir: Path, allow_unreadable: bool = False, progress: Progress | None = None, max_bytes: int = DEFAULT_MAX_BYTES
) -> tuple[list[Document], list[str]]:
    """All documents under docs_dir and the problems met; raise on an unreadable file unless allow_unreadable."""
    skipped: list[str] = []
    docs, errors, unsupported = scan_documents(docs_dir, progress, max_bytes, skipped)
    if errors and not allow_unreadable:
        extra = f" (and {len(errors) - 1} more unreadable files)" if len(errors) > 1 else ""
        raise DocumentError(f"{errors[0].reason}{extra}; or allow unreadable files to skip them", errors[0].file)
    problems = skipped + [str(e) for e in errors]
    problems += [f"{p}: skipped, unsupported file type {p.suffix or '(none)'}; convert it to .txt, .md, .pdf or .html" for p in unsupported]
    if not docs:
        raise CorpusError("no document yields text; add .txt/.md/.pdf/.html files", docs_dir)
    return docs, problems
