"""ln E[UB], the expected rank-aware region bound of Cai et al. (CPAIOR 2023), as computed by
prune_cli/analysis/regions/bounds.py (one numpy table per layer) against the baseline of the
recursion written literally (one memoised call per (layer, d) pair, Python loops over k and j), on
the paper's 784-100-100-10 MLP at several densities and on the default MNIST-1D MLP (40-256-256-10),
in one process, interleaved and repeated (the order rotating from round to round:
scripts/script_timing.py; the check below is each one's untimed first call); prints the median
seconds of each, the ratio recursion / tables and the machine load before and after, and checks that
both give the same value.

    PYTHONPATH=. python scripts/bench_region_bound.py --repeats 5
"""

from __future__ import annotations

import argparse
import math
import statistics
from functools import lru_cache

from prune_cli.analysis.regions.bounds import binomial_rank_log_probs, expected_bound_from_probs
from script_args import description, positive_int
from script_timing import interleaved, print_load, repeats_note


def _logsumexp(values: list[float]) -> float:
    values = [v for v in values if v != -math.inf]
    if not values:
        return -math.inf
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def recursion(n: list[int], log_probs: list[dict[int, float]]) -> float:
    """F(l, d) of the paper, memoised, one call per (l, d)."""
    widths = n[1:]
    log_c = [[math.log(math.comb(w, j)) for j in range(w + 1)] for w in widths]

    @lru_cache(maxsize=None)
    def f(l: int, d: int) -> float:
        last = l == len(widths) - 1
        terms = []
        for k, lp in log_probs[l].items():
            inner = [log_c[l][j] + (0.0 if last else f(l + 1, min(widths[l] - j, d, k))) for j in range(min(k, d) + 1)]
            terms.append(lp + _logsumexp(inner))
        return _logsumexp(terms)

    return f(0, n[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--repeats", type=positive_int, default=5)
    args = parser.parse_args()
    cases = [([784, 100, 100, 10], d) for d in (0.01, 0.001)] + [([40, 256, 256, 10], d) for d in (0.1, 0.02)]
    print(f"{args.repeats} interleaved rounds per case, order rotating; {repeats_note(args.repeats)}")
    print_load("before")
    for n, density in cases:
        probs = [binomial_rank_log_probs(n[l + 1], n[l], density if l < len(n) - 2 else 1.0) for l in range(len(n) - 1)]
        assert math.isclose(expected_bound_from_probs(n, probs), recursion(n, probs), rel_tol=1e-12, abs_tol=1e-12)
        # the baseline (the recursion) named before timing; the assert above was each one's untimed call
        variants = {"recursion": lambda: recursion(n, probs), "tables": lambda: expected_bound_from_probs(n, probs)}
        times = interleaved(variants, args.repeats, warmup=False)
        tables, rec = statistics.median(times["tables"]), statistics.median(times["recursion"])
        ratio = rec / tables
        print(f"n={n} density {density}: recursion median {rec:.4f} s, tables median {tables:.4f} s, recursion / tables {ratio:.0f}x")
    print_load("after")


if __name__ == "__main__":
    main()
