"""How the report names a confidence level (--confidence): one formatter for every table, verdict and
figure, so that a level that is not a whole percent is never rounded (0.999 was printed as "100%")."""

from __future__ import annotations


def percent(level: float) -> str:
    """`level` (a fraction) as a percentage with up to six significant digits: 0.95 -> "95%",
    0.975 -> "97.5%", 0.999 -> "99.9%"."""
    return f"{100 * float(level):g}%"
