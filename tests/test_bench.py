"""The performance harness end to end on the tiny model and tiny corpus: every figure present and finite."""

from __future__ import annotations

import io
import json
import math

from conftest import TINY_OVERRIDES

from workbench.bench.harness import BenchSettings, run_bench
from workbench.bench.report import TARGETS, markdown_report, summary_table


def _leaves(x, path=""):
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _leaves(v, f"{path}.{k}")
    else:
        yield path, x


def test_bench_writes_every_figure(tiny_lm_dir, tiny_corpus, tmp_path):
    settings = BenchSettings(
        quick=True,
        model=str(tiny_lm_dir),
        corpus=str(tiny_corpus),
        chunk_corpora=[str(tiny_corpus)],
        n_prompts=4,
        prompt_kinds=["rag", "zero-shot"],
        max_new_tokens=4,
        gen_batch_size=2,
        eval_scaling=[2],
        lora_steps=2,
        lora_batch=2,
        lora_seq_len=64,
        lora_rank=2,
        n_writer_prompts=4,
        n_embed_texts=12,
        embed_reps=1,
        index_scaling=[4, 8],
        retrieval_sizes=[300, 1000],
        retrieval_types={"300": ["flat", "hnsw", "ivf"], "1k": ["flat", "ivf"]},
        keyword_at=300,
        n_queries=8,
        run_overrides={**TINY_OVERRIDES, "train": {**TINY_OVERRIDES["train"], "use_chunks": True}},
        run_methods=["zero-shot", "rag", "lora"],
        profile="always",
        shrunk={"everything": "tiny model and corpus (test)"},
    )
    out = tmp_path / "bench" / "results.json"
    result = run_bench(settings, out, log=io.StringIO())
    assert result["errors"] == {}, result["raw"].get("tracebacks")
    saved = json.loads(out.read_text())
    assert saved["complete"] and saved["quick"] is True
    for key in ("figures", "targets", "met", "raw", "machine", "versions", "settings", "profile"):
        assert key in saved
    figures = saved["figures"]
    for name in TARGETS:
        assert name in figures, name
    for name in (
        "batched_vs_single_speedup",
        "batched_vs_single_speedup_by_kind",
        "lora_vs_plain_ratio",
        "embed_vs_raw_ratio",
        "retrieval_p50_ms",
        "retrieval_p50_ms_incl_embedding",
        "warm_rerun_s",
        "cold_quick_s",
        "prefill_roofline_fraction",
        "prefill_roofline_fraction_single",
        "decode_bandwidth_fraction",
        "decode_tokens_per_s",
        "train_roofline_fraction",
        "lora_labelled_token_share",
        "prefix_reuse_speedup",
        "prefix_reuse_speedup_by_kind",
    ):
        leaves = list(_leaves(figures[name], name))
        assert leaves, name
        for path, value in leaves:
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (path, value)
    # retrieval covers every requested index type, bm25 and hybrid at the keyword size
    assert set(figures["retrieval_p50_ms"]["300"]) == {"flat", "hnsw", "ivf", "bm25", "hybrid"}
    assert set(figures["retrieval_p50_ms"]["1k"]) == {"flat", "ivf"}
    assert saved["raw"]["retrieval"]["synthetic_vectors"] is True
    # the same answers both ways on the same inputs (greedy): agreement is a rate
    assert 0.0 <= figures["batched_vs_single_agreement"] <= 1.0
    # the warm run is served from the caches
    assert saved["raw"]["runs"]["warm"]["cached_answer_share"] == 1.0
    assert saved["raw"]["runs"]["cold"]["cached_answer_share"] == 0.0
    found = saved["raw"]["runs"]["cold"]["results"]  # the timed run's own findings travel with its timing
    assert found["methods"] and all(0.0 <= v["accuracy"] <= 1.0 for v in found["methods"].values())
    assert set(saved["met"]) == set(TARGETS)
    assert all(v in (True, False) for v in saved["met"].values())
    profiled = {p["figure"] for p in saved["profile"]}
    assert {"batched_vs_single_speedup", "lora_vs_plain_ratio", "embed_vs_raw_ratio"} <= profiled
    assert all("error" not in p for p in saved["profile"]), saved["profile"]
    for path in saved["raw"]["plots"]:
        assert (tmp_path / "bench" / path.rsplit("/", 1)[-1]).stat().st_size > 1000
    table = summary_table(saved)
    assert all(name in table for name in TARGETS)
    report = markdown_report(saved)
    assert table in report and "zero-shot" in report and "cold quick run" in report and "Roofline" in report
    # the limits were measured in this run, in the dtype in use, on the tiny model's own shapes
    limits = saved["raw"]["limits"]["bfloat16"]
    assert limits["peak_flops"] > 0 and limits["copy"]["bytes_per_s"] > 0 and limits["dims"]["hidden"] == 32
    assert saved["raw"]["lora"]["roofline"]["flops_per_token"] > saved["raw"]["lora"]["roofline"]["forward_flops_per_token"]
    assert 0 <= figures["lora_filler_token_share"] < 1 and figures["lora_labelled_token_share"] <= 1
    # the removed waste, before and after on the same inputs: prompts kinds sharing a prefix, packing with first fit
    waste = saved["raw"]["waste"]
    assert {"rag", "zero-shot", "fact writer"} <= set(waste["prefix_reuse"]["by_kind"])
    assert all(k["shared_prefix_tokens"] >= 16 and k["prefilled_share_after"] < 1 for k in waste["prefix_reuse"]["by_kind"].values())
    assert 0.0 <= figures["prefix_reuse_same_answers"] <= 1.0
    for p in waste["packing"].values():
        assert p["after"]["blocks"] <= p["before"]["blocks"] and p["after"]["filler_tokens"] <= p["before"]["filler_tokens"]
    assert "Shared prompt prefix" in report and "packing (same examples)" in report
    shares = found["train"]["token_shares_by_adapter"]["lora"]  # every adapter of the run reports its shares
    assert 0 < shares["labelled_token_share"] <= 1 and 0 <= shares["filler_token_share"] < 1


def test_quick_settings_record_what_was_shrunk():
    quick, full = BenchSettings.for_mode(True), BenchSettings.for_mode(False)
    assert quick.quick and not full.quick and full.shrunk == {}
    assert quick.n_prompts < full.n_prompts and quick.n_embed_texts < full.n_embed_texts
    assert {"n_prompts", "lora_steps", "n_embed_texts", "runs"} <= set(quick.shrunk)


def test_judge_scores_are_served_from_the_cache_on_a_rerun(tiny_lm_dir, monkeypatch):
    """warm_rerun_s depends on it: an unchanged run must not judge the same answers again."""
    from workbench.backends.answer_cache import AnswerCache
    from workbench.backends.hf import HFGenerator as Generator
    from workbench.backends.models import load_generator

    gen = Generator(*load_generator(str(tiny_lm_dir)))
    prompts = ["Is the sky green? Answer Yes or No.", "Is water wet? Answer Yes or No.", "Is 2 > 1?"]
    gen.judge_cache = AnswerCache()
    first = gen.score_yes(prompts, batch_size=2)
    assert len(gen.judge_cache) == 3

    def no_model(*a, **k):
        raise AssertionError("the model ran although every score was cached")

    monkeypatch.setattr(gen, "model", no_model)
    assert gen.score_yes(prompts, batch_size=2) == first
    gen.judge_cache = None
    monkeypatch.undo()
    assert gen.score_yes(prompts, batch_size=2) == first


def test_unknown_bench_section_is_one_clear_line(tmp_path):
    import pytest

    from workbench.bench.harness import main

    with pytest.raises(SystemExit, match="unknown section gpu"):
        main(quick=True, out=str(tmp_path / "r.json"), sections="lora,gpu")
    assert not (tmp_path / "r.json").exists()


def test_the_cli_help_names_every_bench_section():
    from workbench.bench.harness import SECTIONS
    from workbench.cli.main import build_parser

    bench = build_parser()._subparsers._group_actions[0].choices["bench"]
    help_text = next(a.help for a in bench._actions if "--sections" in a.option_strings)
    assert ",".join(SECTIONS) in help_text  # the help lists them as a literal: the CLI does not import the bench to start
