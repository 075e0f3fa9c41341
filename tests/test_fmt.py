"""The one number formatter, and that headline, scoreboard, CLI and report round a figure the same way."""

from __future__ import annotations

import re

import pytest

from workbench import fmt


def test_percent_rounds_half_up_like_the_browser():
    assert fmt.pct(0.625) == "63%"  # 5/8: Python's own "{:.0%}" says 62%, toFixed says 63%
    assert fmt.pct(5 / 8, 1) == "62.5%" and fmt.pct(0.0) == "0%" and fmt.pct(1) == "100%" and fmt.pct(None) == "n/a"
    assert fmt.round_pct(0.625) == 63.0 and fmt.round_pct(None) is None
    assert fmt.pct_ci([0.42, 0.785]) == "[42-79]" and fmt.pct_ci(None) == "" and fmt.pct_ci([None, 0.3]) == ""
    assert fmt.points(0.105) == "11 points"


@pytest.mark.parametrize(("p", "text"), [(0.0, "p < 0.001"), (0.0004, "p < 0.001"), (0.0039, "p = 0.003"), (0.0496, "p = 0.049"),
                                         (0.31, "p = 0.31"), (1.0, "p = 1.00"), (None, "n/a")])
def test_p_values_never_print_zero(p, text):
    assert fmt.p_value(p) == text


@pytest.mark.parametrize(("usd", "cents", "text"), [(0.27, False, "$0.27"), (0.08, True, "$0.08"), (0.0042, False, "$0.0042"), (0.0042, True, "< $0.01"),
                                                    (1.234e-05, False, "$0.000012"), (1e-9, False, "< $0.000001"), (0, False, "$0"),
                                                    (12.3, False, "$12.30"), (1234.5, True, "$1,235"), (None, False, "n/a")])
def test_money_never_prints_four_zeros(usd, cents, text):
    assert fmt.money(usd, cents=cents) == text
    assert not re.search(r"\$0\.0+(?![0-9])", text)  # never a run of zeros that hides the amount


def test_seconds():
    assert fmt.seconds(0.0123) == "12 ms" and fmt.seconds(4.16) == "4.16 s" and fmt.seconds(125) == "2 min 05 s" and fmt.seconds(None) == "n/a"


def test_headline_scoreboard_cli_and_report_agree_on_a_half_percent(tmp_path):
    """RAG at 5/8 reads 63% in the recommendation, the CLI scoreboard, the report table and the app's rounded column."""
    from test_decision_floor import _metrics

    from workbench.cli.main import format_scoreboard
    from workbench.decision.recommend import recommend
    from workbench.reports.tables import scoreboard

    answerable = [True] * 8
    metrics = _metrics({"rag": (["right"] * 5 + ["wrong"] * 3, 1.0, 10.0), "zero-shot": (["wrong"] * 8, 0.5, 0.0)}, answerable)
    assert metrics["methods"]["rag"]["accuracy"] == 0.625
    metrics["recommendation"] = rec = recommend(metrics)
    assert "63% accuracy" in rec["summary"]
    assert "RAG" in format_scoreboard(metrics) and " 63% [" in format_scoreboard(metrics)
    row = next(r for r in scoreboard({"metrics": metrics})[1] if r[0] == "RAG")
    assert row[2].startswith("63% [")
    assert fmt.round_pct(metrics["methods"]["rag"]["accuracy"]) == 63.0
