"""A sweep's grid: settings keys checked against the config, values parsed and coerced, expanded into cells with readable ids."""

from __future__ import annotations

import itertools
import re
import typing
from pathlib import Path
from typing import Any

from ..config import ConfigError, RunConfig, section_settings, setting_type
from ..pipeline.runstore import check_run_id
from ..setting_values import coerce_value, split_list_text

MAX_CELLS = 512


TOP_LEVEL_KEYS = ("model", "seed")


def _hint(key: str, where: str) -> Any:
    """The type of setting ``key`` (``section.field`` or a top-level name); ConfigError naming the valid keys otherwise."""
    section, dot, name = key.partition(".")
    if not dot:
        if key in TOP_LEVEL_KEYS:
            return typing.get_type_hints(RunConfig)[key]
        raise ConfigError(f"{where} {key!r}: use section.field (e.g. retrieval.top_k) or one of {', '.join(TOP_LEVEL_KEYS)}")
    section_settings(section, {name: None}, where)  # unknown section or field: the same message as --set
    return setting_type(section, name)


def _split_values(text: str) -> list[Any]:
    """``2,4`` -> [2, 4]; ``[2, 4]`` (JSON) too; list-valued settings as JSON lists: ``[["q_proj"], ["q_proj", "v_proj"]]``."""
    import json

    values = split_list_text(text, f"--grid value {text.strip()[:60]!r}")
    if text.strip().startswith("["):
        return values
    out: list[Any] = []
    for part in values:
        try:
            out.append(json.loads(part))
        except ValueError:
            out.append(part)
    return out


def check_grid(grid: dict[str, Any], where: str = "--grid") -> dict[str, list[Any]]:
    """Every key a real setting, every value coerced to its type; duplicates and empty lists are errors naming the key."""
    out: dict[str, list[Any]] = {}
    for key, values in grid.items():
        key = str(key).strip()
        hint = _hint(key, where)
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise ConfigError(f"{where} {key}: no values; give at least one, e.g. {key}=v1,v2")
        coerced = [coerce_value(hint, v, f"{where} {key}") for v in values]
        seen = [v for i, v in enumerate(coerced) if v in coerced[:i]]
        if seen:
            raise ConfigError(f"{where} {key}: value {seen[0]!r} is given twice; list each value once")
        out[key] = coerced
    cells = 1
    for values in out.values():
        cells *= len(values)
    if cells > MAX_CELLS:
        raise ConfigError(f"{where}: {cells} cells is more than {MAX_CELLS}; split the grid into several sweeps")
    return out


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """``["retrieval.top_k=2,4", "split.chunk_size=400,800"]`` -> {key: [values]}, checked by ``check_grid``."""
    grid: dict[str, Any] = {}
    for item in items:
        key, sep, values = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--grid {item!r}: use section.field=v1,v2, e.g. --grid retrieval.top_k=2,4")
        if key in grid:
            raise ConfigError(f"--grid {key}: given twice; put all its values in one --grid {key}=v1,v2")
        grid[key] = _split_values(values)
    return check_grid(grid)


def expand(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination, the last key varying fastest."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def _slug(value: Any) -> str:
    text = value if isinstance(value, str) else re.sub(r"\s+", "", str(value))
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", Path(text).name if isinstance(value, str) and "/" in text else text).strip("-.")[:24] or "x"


def cell_id(index: int, settings: dict[str, Any]) -> str:
    """A readable, unique folder name: ``03-top_k-4_chunk_size-400``."""
    body = "_".join(f"{k.rpartition('.')[2]}-{_slug(v)}" for k, v in settings.items())
    return check_run_id(f"{index + 1:02d}-{body}"[:100].rstrip("-._") or f"{index + 1:02d}")
