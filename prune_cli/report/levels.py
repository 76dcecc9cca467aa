"""How the report names a confidence level (--confidence): one formatter for every table, verdict and
figure, so that a level that is not a whole percent is never rounded (0.999 was printed as "100%")."""

from __future__ import annotations

from decimal import Decimal


def percent(level: float) -> str:
    """`level` (a fraction) as a percentage with every digit it has and no other: 0.95 -> "95%", 0.975 ->
    "97.5%", 0.9999999 -> "99.99999%", 0.9999999999999998 -> "99.99999999999998%". The shortest decimal that
    reads back as the level (repr) times 100, exactly: the float product shows artefacts (100 * 0.95 =
    95.00000000000001), and six significant digits (`:g`) labelled 0.9999999 "100% CI"."""
    value = (Decimal(repr(float(level))) * 100).normalize()
    return f"{value:f}%" if value == 0 or abs(value) >= Decimal("0.0001") else f"{value:g}%"
