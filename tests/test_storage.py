"""Atomic writes and the folder lock."""

from __future__ import annotations

import re

import pytest

from workbench.storage import FolderLock, LockedError, atomic_write_json, read_json, stable_hash


def test_atomic_write_keeps_previous_file_when_serialisation_fails(tmp_path):
    path = tmp_path / "m.json"
    atomic_write_json(path, {"a": 1})
    with pytest.raises(TypeError):
        atomic_write_json(path, {"a": object()} if False else {"a": {1, 2}} | {"b": _Unserialisable()})
    assert read_json(path) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


class _Unserialisable:
    def __repr__(self) -> str:  # default=str would accept it, so make str() fail
        raise TypeError("cannot serialise")

    __str__ = __repr__


def test_lock_is_exclusive(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(LockedError, match="another process"):
            FolderLock(tmp_path).acquire()
    FolderLock(tmp_path).acquire().release()


def test_stable_hash_is_order_insensitive_for_dicts():
    assert stable_hash({"a": 1, "b": 2}) == stable_hash({"b": 2, "a": 1})
    assert stable_hash({"a": 1}) != stable_hash({"a": 2})
    h = stable_hash("x")
    assert re.fullmatch(r"[0-9a-f]{16}", h) and h == stable_hash("x")  # a fixed-length hex key, the same every call
    assert len({stable_hash("x"), stable_hash("y"), stable_hash("x", 1), stable_hash(["x"]), stable_hash("x1")}) == 5


def test_atomic_write_gives_the_usual_file_mode(tmp_path):
    import os

    from workbench.storage import atomic_write_text

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic_write_text(tmp_path / "atomic.txt", "x")
    assert (tmp_path / "atomic.txt").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    assert os.access(tmp_path / "atomic.txt", os.R_OK)
