"""Widgets generated from the settings dataclasses: label from the field name, help from its metadata, default from the value."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Literal

import streamlit as st

# Fields better shown as sliders: (min, max, step).
SLIDERS: dict[str, tuple[float, float, float]] = {
    "dropout": (0.0, 0.5, 0.01),
    "temperature": (0.0, 1.5, 0.05),
    "test_fraction": (0.1, 0.9, 0.05),
}


LABELS = {
    "budget_usd_month": "Budget (USD / month)",
    "latency_budget_s": "p95 latency budget (s)",
    "usd_per_hour": "USD per hour",
    "monthly_queries": "Queries per month",
    "knowledge_type": "What must be learnt",
    "labelled_examples": "Labelled Q/A pairs",
    "k": "Examples (k)",
}


def field_label(name: str) -> str:
    """``chunk_overlap`` -> ``Chunk overlap`` (and a few acronyms kept upright)."""
    if name in LABELS:
        return LABELS[name]
    words = name.replace("_", " ").split()
    fixed = {
        "k": "k",
        "rrf": "RRF",
        "hnsw": "HNSW",
        "ivf": "IVF",
        "qa": "Q/A",
        "usd": "USD",
        "lr": "LR",
        "s": "(s)",
        "m": "M",
        "seq": "sequence",
        "len": "length",
    }
    out = [fixed.get(w, w) for w in words]
    text = " ".join(out)
    return text[:1].upper() + text[1:]


def _unwrap(tp: Any) -> tuple[Any, bool]:
    """(inner type, optional?) for ``X | None``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def dataclass_widgets(
    cls: type, values: Any, key_prefix: str, fields: list[str] | None = None, columns: int = 2, bind: str | None = None
) -> dict[str, Any]:
    """Render one widget per dataclass field (optionally a subset) and return {field: value}; ``bind="query-params"`` keeps them in the URL."""
    hints = typing.get_type_hints(cls)
    chosen = [f for f in dataclasses.fields(cls) if fields is None or f.name in fields]
    cols = st.columns(columns)
    out: dict[str, Any] = {}
    for i, f in enumerate(chosen):
        with cols[i % columns]:
            out[f.name] = field_widget(f, hints[f.name], getattr(values, f.name), f"{key_prefix}.{f.name}", bind)
    return out


def field_widget(f: dataclasses.Field, tp: Any, default: Any, key: str, bind: str | None = None) -> Any:
    """The widget that fits a field's type: selectbox for Literal, checkbox for bool, number inputs, text."""
    help_text = f.metadata.get("help", "") or None
    label = field_label(f.name)
    inner, optional = _unwrap(tp)
    if typing.get_origin(inner) is Literal:
        options: list[Any] = list(typing.get_args(inner))
        if optional:
            options = [None, *options]
        index = options.index(default) if default in options else 0
        return st.selectbox(
            label, options, index=index, key=key, bind=bind, help=help_text, format_func=lambda o: "auto (from the corpus)" if o is None else str(o)
        )
    if inner is bool:
        return st.checkbox(label, value=bool(default), key=key, bind=bind, help=help_text)
    if inner is int:
        return st.number_input(
            label, value=None if default is None else int(default), step=1, key=key, bind=bind, help=help_text, placeholder="no limit / auto"
        )
    if inner is float:
        if f.name in SLIDERS and default is not None:
            lo, hi, step = SLIDERS[f.name]
            return st.slider(label, float(lo), float(hi), float(default), float(step), key=key, bind=bind, help=help_text)
        step = 1e-4 if default is not None and 0 < abs(default) < 0.01 else 0.01
        fmt = "%.5f" if step < 0.01 else "%.2f"
        return st.number_input(
            label, value=None if default is None else float(default), step=step, format=fmt, key=key, bind=bind, help=help_text, placeholder="no limit"
        )
    if typing.get_origin(inner) is list:
        text = st.text_input(label, value=", ".join(map(str, default or [])), key=key, bind=bind, help=(help_text or "") + " Comma-separated.")
        return [part.strip() for part in text.split(",") if part.strip()]
    return st.text_input(label, value="" if default is None else str(default), key=key, bind=bind, help=help_text)


def changed(values: dict[str, Any], base: Any) -> dict[str, Any]:
    """The entries of ``values`` that differ from the dataclass instance ``base``."""
    out = {}
    for name, value in values.items():
        ref = getattr(base, name)
        if isinstance(ref, float) and isinstance(value, (int, float)) and value is not None:
            if abs(float(value) - ref) > 1e-12:
                out[name] = value
        elif value != ref:
            out[name] = value
    return out
