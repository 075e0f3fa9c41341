"""The one place a setting's text becomes its type.

--set, corpus.toml [defaults], the app's widgets and config.json all pass through ``coerce_value``
(every config dataclass coerces its fields first thing in __post_init__).
"""

from __future__ import annotations

import json
import math
import typing
from typing import Any, Literal

from .errors import ConfigError

TRUE_WORDS = ("true", "yes", "1")
FALSE_WORDS = ("false", "no", "0")


def show_value(value: Any) -> str:
    """A value as quoted in an error message, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def coerce_value(hint: Any, value: Any, key: str) -> Any:
    """``value`` (text from the command line, or a TOML/JSON/widget value) as type ``hint``; ConfigError naming ``key`` otherwise."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        choices = typing.get_args(hint)
        text = value.strip() if isinstance(value, str) else value
        if text not in choices:
            raise ConfigError(f"{key} = {show_value(value)} is unknown; use one of {', '.join(map(str, choices))}")
        return text
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        word = value.strip().lower() if isinstance(value, str) else None
        if word in TRUE_WORDS or word in FALSE_WORDS:
            return word in TRUE_WORDS
        raise ConfigError(f"{key} = {show_value(value)} is not a yes/no value; use true/false, yes/no or 1/0")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"{key} = {show_value(value)} is not a whole number; give an integer such as 8")
    if hint is float:
        number: float | None = None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None or not math.isfinite(number):
            raise ConfigError(f"{key} = {show_value(value)} is not a finite number; give a number such as 0.5")
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)):  # --set values are JSON-parsed first: name=123 or name=true is still a name
            return json.dumps(value)
        raise ConfigError(f"{key} = {show_value(value)} is not text")
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, str):
            value = split_list_text(value, f"{key} = {show_value(value)}")
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} = {show_value(value)} is not a list; write a,b,c")
        return [coerce_value(item, v, key) for v in value]
    return value


def split_list_text(text: str, where: str) -> list[Any]:
    """``a, b`` -> ["a", "b"]; text starting with ``[`` is read as a JSON list (ConfigError naming ``where`` if it is not one)."""
    text = text.strip()
    if not text.startswith("["):
        return [part.strip() for part in text.split(",") if part.strip()]
    try:
        value = json.loads(text)
    except ValueError:
        raise ConfigError(f"{where} is not a list; write a,b,c or [\"a\", \"b\"]") from None
    return value if isinstance(value, list) else [value]
