"""The one number formatter: app, CLI, decision text and every report call these, so a figure reads the same everywhere.

Rounding is half-up on the decimal value as printed by ``repr`` (62.5% -> "63%"), which is also how the
browser's ``toFixed`` rounds, so a table cell and a headline never differ by one point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

NA = "n/a"


def _half_up(x: float, digits: int) -> Decimal:
    return Decimal(repr(float(x))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def _missing(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def round_pct(x: float | None, digits: int = 0) -> float | None:
    """A rate as the percentage number ``pct`` prints (0.625 -> 63.0); for numeric table columns."""
    return None if _missing(x) else float(_half_up(100 * float(x), digits))


def pct(x: float | None, digits: int = 0) -> str:
    """A rate as a percentage: 0.625 -> "63%"."""
    return NA if _missing(x) else f"{_half_up(100 * float(x), digits)}%"


def pct_ci(ci: Sequence[float | None] | None) -> str:
    """A 95% interval in percent points: [0.42, 0.79] -> "[42-79]"; "" when missing."""
    if not ci or len(ci) < 2 or _missing(ci[0]) or _missing(ci[1]):
        return ""
    return f"[{_half_up(100 * float(ci[0]), 0)}-{_half_up(100 * float(ci[1]), 0)}]"


def points(x: float | None) -> str:
    """A difference of two rates in percentage points: 0.105 -> "11 points"."""
    return NA if _missing(x) else f"{_half_up(100 * float(x), 0)} points"


def p_value(p: float | None, prefix: bool = True) -> str:
    """A p-value: "p < 0.001", "p = 0.003", "p = 0.049", "p = 0.31" (without "p " when prefix is False)."""
    if _missing(p):
        return NA
    p = float(p)
    if p < 0.001:
        text = "< 0.001"
    elif p < 0.1:  # three decimals, cut rather than rounded so 0.0496 never reads as "0.050"
        text = f"= {Decimal(repr(p)).quantize(Decimal('0.001'), rounding=ROUND_DOWN)}"
    else:
        text = f"= {_half_up(p, 2)}"
    return f"p {text}" if prefix else text.removeprefix("= ")


def money(x: float | None, cents: bool = False) -> str:
    """Dollars: "$1,234", "$12.30", "$0.27"; below a cent two significant digits ("$0.0042") or, with ``cents``, "< $0.01".

    ``cents`` suits amounts a team budgets in (monthly totals); without it tiny per-query prices keep
    their two significant digits down to "< $0.000001". Never prints "$0.0000".
    """
    if _missing(x):
        return NA
    x = float(x)
    sign = "-" if x < 0 else ""
    a = abs(x)
    if a == 0:
        return "$0"
    if a >= 1000:
        return f"{sign}${_half_up(a, 0):,}"
    if a >= 0.01 or (cents and _half_up(a, 2) >= Decimal("0.01")):
        return f"{sign}${_half_up(a, 2)}"
    if cents:
        return "> -$0.01" if sign else "< $0.01"
    if a < 1e-6:
        return f"{sign}< $0.000001"
    return f"{sign}${float(f'{a:.2g}'):.{max(2, 1 - math.floor(math.log10(a)))}f}"


def seconds(x: float | None) -> str:
    """A duration: "850 ms", "4.16 s", "2 min 05 s"."""
    if _missing(x):
        return NA
    x = float(x)
    if x == 0:
        return "0 s"
    if x < 1:
        return f"{_half_up(1000 * x, 0)} ms"
    if x < 60:
        return f"{_half_up(x, 2)} s"
    total = int(_half_up(x, 0))
    return f"{total // 60} min {total % 60:02d} s"


def count(x: float | None) -> str:
    """A whole number with thousands separators: 12,500."""
    return NA if _missing(x) else f"{int(_half_up(x, 0)):,}"


def score(x: float | None) -> str:
    """A decision score in points, one decimal: "67.3"."""
    return NA if _missing(x) else str(_half_up(x, 1))


def duration(x: float | None) -> str:
    """A rough duration for estimates and ETAs: "about 40 s", "about 3 min", "about 1 h 05 min"."""
    if _missing(x):
        return NA
    x = max(0.0, float(x))
    if x < 60:
        return f"about {max(5, int(_half_up(x / 5, 0)) * 5)} s"
    minutes = int(_half_up(x / 60, 0))
    return f"about {minutes} min" if minutes < 60 else f"about {minutes // 60} h {minutes % 60:02d} min"
