"""Dollar arithmetic, break-even volumes, memory and artefact size."""

from __future__ import annotations

import pytest

from workbench.evaluation.cost import RssSampler, break_even, cumulative_cost, dir_size_mb, peak_rss_mb, usd_build, usd_per_1k


def test_usd_per_1k_and_build():
    # 0.36 s per query at $1/h: 1000 queries = 360 s = 0.1 h = $0.10.
    assert usd_per_1k(0.36, 1.0) == pytest.approx(0.10)
    assert usd_per_1k(0.0, 5.0) == 0.0
    assert usd_build(1800, 0.10) == pytest.approx(0.05)


def test_cumulative_cost():
    assert cumulative_cost(2.0, 0.001, [0, 1000, 5000]) == pytest.approx([2.0, 3.0, 7.0])


def test_break_even_arithmetic():
    rag = {"usd_build": 0.01, "usd_per_1k_queries": 0.50}
    lora = {"usd_build": 0.21, "usd_per_1k_queries": 0.10}
    res = break_even(rag, lora, "rag", "lora")
    # 0.01 + 0.0005 q = 0.21 + 0.0001 q  ->  q = 0.20 / 0.0004 = 500
    assert res == {"queries": pytest.approx(500.0), "cheaper_upfront": "rag", "cheaper_per_query": "lora"}
    totals_rag = cumulative_cost(rag["usd_build"], rag["usd_per_1k_queries"] / 1000, [res["queries"]])
    totals_lora = cumulative_cost(lora["usd_build"], lora["usd_per_1k_queries"] / 1000, [res["queries"]])
    assert totals_rag == pytest.approx(totals_lora)
    # Symmetric: swapping the arguments gives the same volume.
    assert break_even(lora, rag, "lora", "rag")["queries"] == pytest.approx(500.0)


def test_break_even_dominance_and_ties():
    cheap = {"method": "zero-shot", "usd_build": 0.0, "usd_per_1k_queries": 0.1}
    dear = {"method": "rag", "usd_build": 0.02, "usd_per_1k_queries": 0.3}
    assert break_even(cheap, dear) == {"queries": None, "cheaper_upfront": "zero-shot", "cheaper_per_query": "zero-shot"}
    same_build = {"method": "few-shot", "usd_build": 0.0, "usd_per_1k_queries": 0.2}
    assert break_even(cheap, same_build) == {"queries": None, "cheaper_upfront": None, "cheaper_per_query": "zero-shot"}
    parallel = {"usd_build": 0.5, "usd_per_1k_queries": 0.1}
    assert break_even(cheap, parallel) == {"queries": None, "cheaper_upfront": "zero-shot", "cheaper_per_query": None}


def test_peak_rss_and_sampler():
    import psutil

    peak = peak_rss_mb()
    assert 10 < peak < 1e6
    before = psutil.Process().memory_info().rss / 1e6
    with RssSampler(interval_s=0.01) as rss:
        blob = bytearray(b"x" * 80_000_000)  # 80 MB resident during the block
    assert rss.peak - before >= 60
    assert peak_rss_mb() >= peak
    del blob


def test_dir_size_mb(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"0" * 1_000_000)
    (tmp_path / "sub" / "b.bin").write_bytes(b"0" * 500_000)
    (tmp_path / "link").symlink_to(tmp_path / "a.bin")
    assert dir_size_mb(tmp_path) == pytest.approx(1.5)
    assert dir_size_mb(tmp_path / "a.bin") == pytest.approx(1.0)
    with pytest.raises(FileNotFoundError, match="no such file"):
        dir_size_mb(tmp_path / "missing")
