"""PDF text, parsed by pypdf in a child process under a timeout and a memory cap, so one hostile file cannot hang or exhaust the app."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import WorkbenchError

PDF_TIMEOUT_S = 30.0
PDF_MEMORY_BYTES = 1536 * 1024 * 1024  # address-space cap of the PDF parser process


class PdfProblem(WorkbenchError):
    """Why a PDF gave no text, with the fix; the loader names the file."""


# The child process: parse with pypdf, print one JSON object. Runs under a memory cap and a timeout.
_PDF_CHILD = r"""
import json, sys
try:
    from pypdf import PdfReader
except BaseException as exc:
    print(json.dumps({"ok": False, "kind": "setup", "detail": (type(exc).__name__ + ": " + str(exc))[:200]}))
    sys.exit(0)
try:
    reader = PdfReader(sys.argv[1])
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except Exception:
            opened = 0
        if not opened:
            print(json.dumps({"ok": False, "kind": "encrypted"}))
            sys.exit(0)
    pages = [(page.extract_text() or "") for page in reader.pages]
    title = ""
    try:
        title = str((reader.metadata or {}).get("/Title") or "")
    except Exception:
        pass
    print(json.dumps({"ok": True, "pages": pages, "title": title}))
except MemoryError:
    print(json.dumps({"ok": False, "kind": "memory"}))
except Exception as exc:
    print(json.dumps({"ok": False, "kind": "malformed", "detail": (type(exc).__name__ + ": " + str(exc))[:200]}))
"""


def _limit_memory(limit: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def parse_pdf(path: Path, timeout_s: float, memory_bytes: int) -> tuple[list[str], str]:
    """The page texts and title of a PDF, parsed in a capped child process; PdfProblem saying what to do when it can't be."""
    preexec = _limit_memory(memory_bytes) if sys.platform != "win32" else None
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PDF_CHILD, str(path)],
            capture_output=True,
            timeout=timeout_s,
            preexec_fn=preexec,  # only sets an rlimit in the child
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise PdfProblem(
            f"PDF parsing took longer than {timeout_s:g} s (malformed or a decompression bomb); re-export the PDF or convert it to text"
        ) from None
    try:
        result = json.loads(proc.stdout.decode("utf-8", errors="strict").strip().splitlines()[-1])
    except (ValueError, IndexError, UnicodeDecodeError):
        if proc.returncode < 0 or b"MemoryError" in proc.stderr:
            raise PdfProblem(
                f"PDF parser ran out of its {memory_bytes / 2**30:.1f} GB memory cap or crashed; re-export the PDF or convert it to text"
            ) from None
        raise PdfProblem(f"PDF parser failed (exit code {proc.returncode}); re-export the PDF or convert it to text") from None
    if not result["ok"]:
        kind = result["kind"]
        if kind == "encrypted":
            raise PdfProblem("PDF is encrypted (password-protected); save an unprotected copy and try again")
        if kind == "setup":
            raise PdfProblem(
                f"PDF parser could not start ({result.get('detail', '')}); is pypdf installed and the memory cap ({memory_bytes / 2**30:.1f} GB) sensible?"
            )
        if kind == "memory":
            raise PdfProblem(
                f"PDF needs more than the {memory_bytes / 2**30:.1f} GB memory cap to parse (decompression bomb?); re-export it or convert it to text"
            )
        detail = result.get("detail", "")
        if detail.startswith("LimitReachedError"):
            raise PdfProblem("PDF expands past the decompression limit (a decompression bomb?); re-export it or convert it to text")
        raise PdfProblem(f"PDF is malformed ({detail}); re-export it or convert it to text")
    return list(result["pages"]), str(result.get("title") or "")
