"""Bench: scaling curves (index build time vs chunks, answer time vs questions) as PNG and SVG, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def scaling_rows(raw: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(index build rows, evaluation rows) from a bench result's ``raw`` section."""
    build: list[dict[str, Any]] = []
    for r in (raw.get("embedding") or {}).get("index_scaling", []):
        build.append({"chunks": r["chunks"], "seconds": r["build_s"], "series": "build_index: embed + flat + BM25 (real chunks)"})
    for row in ((raw.get("retrieval") or {}).get("sizes") or {}).values():
        for kind in ("flat", "hnsw", "ivf"):
            if isinstance(row.get(kind), dict):
                build.append({"chunks": row["n_chunks"], "seconds": max(row[kind]["build_s"], 1e-4), "series": f"FAISS {kind} build (synthetic vectors)"})
    evals: list[dict[str, Any]] = []
    for r in (raw.get("generation") or {}).get("scaling", []):
        evals.append({"questions": r["questions"], "seconds": r["ours_s"], "series": "ours: batched Generator.generate"})
        evals.append({"questions": r["questions"], "seconds": r["plain_s"], "series": "plain: one generate per prompt"})
    return build, evals


def scaling_chart(raw: dict[str, Any]) -> Any:
    """Two side-by-side line charts (log-log build time; linear answer time)."""
    import altair as alt
    import pandas as pd

    build, evals = scaling_rows(raw)
    if not build and not evals:
        raise ValueError("no scaling data in the bench result; run the embedding, retrieval or generation section")
    charts = []
    if build:
        charts.append(
            alt.Chart(pd.DataFrame(build), title="Index build time vs corpus size")
            .mark_line(point=True)
            .encode(x=alt.X("chunks:Q", scale=alt.Scale(type="log"), title="chunks"), y=alt.Y("seconds:Q", scale=alt.Scale(type="log"), title="seconds"), color=alt.Color("series:N", legend=alt.Legend(orient="bottom", columns=1)))
            .properties(width=380, height=260)
        )
    if evals:
        charts.append(
            alt.Chart(pd.DataFrame(evals), title="Answer generation time vs questions")
            .mark_line(point=True)
            .encode(x=alt.X("questions:Q", title="questions"), y=alt.Y("seconds:Q", title="seconds"), color=alt.Color("series:N", legend=alt.Legend(orient="bottom", columns=1)))
            .properties(width=380, height=260)
        )
    return alt.hconcat(*charts).resolve_scale(color="independent")


def write_plots(raw: dict[str, Any], out_json: str | Path) -> list[str]:
    """Write ``<stem>_scaling.png`` and ``.svg`` next to the JSON; returns their paths."""
    import vl_convert

    from ..storage import atomic_write_bytes, atomic_write_text

    spec = scaling_chart(raw).to_dict()
    out = Path(out_json)
    png, svg = out.with_name(f"{out.stem}_scaling.png"), out.with_name(f"{out.stem}_scaling.svg")
    atomic_write_bytes(png, vl_convert.vegalite_to_png(spec, scale=2))
    atomic_write_text(svg, vl_convert.vegalite_to_svg(spec))
    return [str(png), str(svg)]
