"""The method registry: one spec per method, and a throwaway method (one class + one registration) through run, report and app."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import TINY_OVERRIDES

from workbench.config import METHODS, build_config
from workbench.methods.registry import (
    REGISTRY,
    MethodError,
    MethodSpec,
    baseline_methods,
    compared_methods,
    label,
    method_spec,
    methods_where,
    register_method,
    selectable_methods,
    unregister_method,
)
from workbench.methods.zero_shot import ZeroShot
from workbench.pipeline.run import run
from workbench.reports.export import render_markdown


class Shouty(ZeroShot):
    """Zero-shot with the question in capitals: a method the workbench has never heard of."""

    name = "shouty"

    def _render(self, messages):
        return super()._render([{**m, "content": m["content"].upper()} for m in messages])


@pytest.fixture()
def shouty():
    spec = register_method(MethodSpec("shouty", "Shouty", "#cc79a7", "Zero-shot in capitals.", factory=lambda ctx: Shouty(ctx.generator, **ctx.common)))
    yield spec
    unregister_method("shouty")


def test_every_built_in_method_has_one_complete_spec():
    assert compared_methods() == METHODS and set(baseline_methods()) | set(selectable_methods()) == set(REGISTRY)
    assert set(selectable_methods()) - set(METHODS) == {m for m, s in REGISTRY.items() if s.opt_in}  # opt-in: chosen by name only
    for name, spec in REGISTRY.items():
        assert spec.name == name and spec.label and spec.colour.startswith("#") and spec.help
        assert not spec.needs_adapter or spec.adapter_recipe, name  # a tuned method says which adapter it answers with
    assert methods_where(needs_adapter=True, opt_in=False) == tuple(m for m in METHODS if "lora" in m)
    assert label("rag+lora") == "RAG+LoRA" and label("not-a-method") == "not-a-method"


def test_unknown_and_twice_registered_methods_are_clear_errors():
    with pytest.raises(MethodError, match="unknown method 'nope'; choose from zero-shot"):
        method_spec("nope")
    with pytest.raises(MethodError, match="already registered"):
        register_method(REGISTRY["rag"])


def test_a_throwaway_method_runs_end_to_end_and_shows_in_report_and_app(shouty, tiny_corpus, tiny_lm_dir, isolated_home):
    config = build_config(str(tiny_corpus), "quick", None, TINY_OVERRIDES, model=str(tiny_lm_dir), methods=["zero-shot", "shouty"])
    run_dir = run(config, out_dir=isolated_home / "runs", run_id="shouty-run")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "shouty" in metrics["methods"] and metrics["methods"]["shouty"]["baseline"] is False
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    shouted = [r for r in rows if r["method"] == "shouty"]
    assert shouted and len(shouted) == len([r for r in rows if r["method"] == "zero-shot"])
    assert "| Shouty |" in render_markdown(run_dir)

    pytest.importorskip("streamlit")
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=300)
    at.run()
    at.switch_page("app_pages/compare.py")
    at.run()
    assert not at.exception, at.exception
    assert "Shouty" in list(at.dataframe[0].value["Method"])
