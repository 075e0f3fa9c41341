"""A persistent answer cache (sqlite, WAL): an unchanged re-run serves every answer without the model.

Keys are content hashes of (generator fingerprint, rendered prompt, decoding settings), so a cached
answer is exactly what the same model would produce again. Stored timings are the ones measured
when the answer was generated, so costs reported from a cached run stay real.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from .errors import WorkbenchError
from .generation import GenResult
from .paths import cache_dir

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


class AnswerCache:
    """Maps a generation key to a GenResult; safe for several threads and processes (WAL, busy timeout)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else cache_dir("answers") / "answers.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise AnswerCacheError(f"{self.path}: answer cache cannot be opened ({exc}); delete the file to start an empty cache") from exc

    def get_many(self, keys: Sequence[str]) -> list[GenResult | None]:
        """Cached results for ``keys`` in order (None where missing), marked ``cached=True``."""
        found: dict[str, GenResult] = {}
        uniq = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(uniq), 500):
                part = uniq[start : start + 500]
                rows = self._db.execute(
                    f"SELECT key, text, prompt_tokens, output_tokens, latency_s, batch_wall_s FROM answers WHERE key IN ({','.join('?' * len(part))})",
                    part,
                ).fetchall()
                for key, *vals in rows:
                    found[key] = GenResult(*vals, cached=True)
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
