"""A persistent answer cache (sqlite, WAL): an unchanged re-run serves every answer without the model.

Keys are content hashes of (generator fingerprint, rendered prompt, decoding settings), so a cached
answer is exactly what the same model would produce again. Stored timings are the ones measured
when the answer was generated, so costs reported from a cached run stay real.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import WorkbenchError
from ..paths import cache_dir
from .base import GenResult

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    latency_s REAL NOT NULL,
    batch_wall_s REAL NOT NULL,
    created REAL NOT NULL DEFAULT (julianday('now'))
)
"""


class AnswerCacheError(WorkbenchError, RuntimeError):
    """The answer cache file cannot be opened or is corrupt; the message says what to do."""


_DAMAGE = ("malformed", "not a database", "no such table", "no such column", "corrupt", "datatype mismatch", "constraint failed")


def _damaged(exc: Exception) -> bool:
    """A damaged file (rebuild it) as opposed to a busy or unwritable one (report it)."""
    return any(word in str(exc).lower() for word in _DAMAGE)


def _valid_row(vals: list) -> bool:
    """A row whose values have the stored types (a hand-edited or damaged row is a miss, not a wrong answer)."""
    text, prompt_tokens, output_tokens, latency_s, wall_s = vals
    return isinstance(text, str) and all(isinstance(v, int) for v in (prompt_tokens, output_tokens)) and all(isinstance(v, (int, float)) for v in (latency_s, wall_s))


class AnswerCache:
    """Maps a generation key to a GenResult; safe for several threads and processes (WAL, busy timeout)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else cache_dir("answers") / "answers.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.warnings: list[str] = []
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:  # damaged: set it aside and start an empty cache (never a hard stop)
            if not _damaged(exc):
                raise AnswerCacheError(f"{self.path}: answer cache cannot be opened ({exc}); check the folder's permissions") from exc
            self._set_aside(exc)
            try:
                self._db = self._open()
            except sqlite3.DatabaseError as again:
                raise AnswerCacheError(f"{self.path}: answer cache cannot be created ({again}); check the folder's permissions") from again

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(_SCHEMA)
            db.execute("SELECT key, text, prompt_tokens, output_tokens, latency_s, batch_wall_s FROM answers LIMIT 1").fetchall()
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _set_aside(self, exc: Exception) -> None:
        """Move a damaged database (and its WAL files) to ``*.damaged-<time>`` with a warning; answers are regenerated."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            src = self.path.with_name(self.path.name + suffix)
            if src.exists():
                try:
                    os.replace(src, src.with_name(f"{self.path.name}.damaged-{stamp}{suffix}"))
                except OSError:
                    src.unlink(missing_ok=True)
        message = f"warning: answer cache {self.path} is damaged ({exc}); set aside as {self.path.name}.damaged-{stamp}, starting an empty one"
        self.warnings.append(message)
        log.warning(message)

    def _recover(self, exc: Exception) -> None:
        """A query hit a damaged page: close, set the file aside, reopen empty (callers treat it as a miss)."""
        try:
            self._db.close()
        except sqlite3.Error:
            pass
        self._set_aside(exc)
        self._db = self._open()

    def get_many(self, keys: Sequence[str]) -> list[GenResult | None]:
        """Cached results for ``keys`` in order (None where missing), marked ``cached=True``."""
        found: dict[str, GenResult] = {}
        uniq = list(dict.fromkeys(keys))
        with self._lock:
            try:
                for start in range(0, len(uniq), 500):
                    part = uniq[start : start + 500]
                    rows = self._db.execute(
                        f"SELECT key, text, prompt_tokens, output_tokens, latency_s, batch_wall_s FROM answers WHERE key IN ({','.join('?' * len(part))})",
                        part,
                    ).fetchall()
                    for key, *vals in rows:
                        if _valid_row(vals):
                            found[key] = GenResult(*vals, cached=True)
            except sqlite3.DatabaseError as exc:
                if not _damaged(exc):
                    raise
                self._recover(exc)
                return [None for _ in keys]
        return [found.get(k) for k in keys]

    def get(self, key: str) -> GenResult | None:
        """One cached result or None."""
        return self.get_many([key])[0]

    def put_many(self, items: Iterable[tuple[str, GenResult]]) -> None:
        """Store freshly generated results (one transaction); an existing key keeps its first value."""
        rows = [(k, r.text, r.prompt_tokens, r.output_tokens, r.latency_s, r.batch_wall_s) for k, r in items if not r.cached]
        if not rows:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    self._db.executemany(
                        "INSERT OR IGNORE INTO answers (key, text, prompt_tokens, output_tokens, latency_s, batch_wall_s) VALUES (?, ?, ?, ?, ?, ?)",
                        rows,
                    )
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.DatabaseError as exc:
                if not _damaged(exc):
                    raise
                self._recover(exc)

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def __bool__(self) -> bool:  # an empty cache is still a cache (``if cache:`` must not skip it)
        return True

    def clear(self) -> None:
        """Forget every cached answer."""
        with self._lock:
            self._db.execute("DELETE FROM answers")

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> AnswerCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
