"""Timing helpers the benchmark scripts share, so that every script follows the project's rule for speed
claims (docs/performance.md): variants compared by a ratio run in the same process, interleaved and
repeated, each after one untimed warm-up call, in an order that rotates from round to round; medians
are reported with the machine's load before and after the timing, and a ratio is taken against a
baseline named before the timing (never against whichever variant came out best).

The rotation is that of prune_cli/metrics/latency.py `time_models` (each of k variants goes first in
every k-th round): with a fixed order the variant timed first always met whatever the first call of a
round meets (a cold cache, a CPU frequency ramp, a neighbour's burst), and the later ones always
profited from what the earlier ones warmed up. For two variants the rotation alternates the order.

A script run as `python scripts/NAME.py` imports this module from its own folder (Python puts the
script's folder first on sys.path).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

SINGLE = "single repeat (no median)"


def rotated(items: Sequence[T], round_index: int) -> list[T]:
    """`items` rotated by the round: round r starts with item r mod k (k = len(items))."""
    items = list(items)
    if not items:
        return items
    shift = round_index % len(items)
    return items[shift:] + items[:shift]


def rounds(names: Iterable[T], repeats: int) -> Iterable[tuple[int, T]]:
    """(round, name) for `repeats` rounds over `names`, each round in the rotated order: for scripts
    whose timed calls measure themselves (a batch of processes, an epoch that returns its time)."""
    names = list(names)
    for r in range(repeats):
        for name in rotated(names, r):
            yield r, name


def interleaved(
    variants: dict[K, Callable[[], Any]],
    repeats: int,
    warmup: bool = True,
    timer: Callable[[], float] = time.perf_counter,
) -> dict[K, list[float]]:
    """Seconds per call of each variant: one untimed call of each first (unless `warmup` is False:
    the caller warmed them up itself), then `repeats` rounds that time every variant once, the order
    rotating from round to round, so that drift in the machine's load falls on all of them alike and
    no variant is always first. `timer` is injectable for tests (default time.perf_counter)."""
    if warmup:
        for fn in variants.values():
            fn()
    times: dict[K, list[float]] = {name: [] for name in variants}
    for _, name in rounds(variants, repeats):
        start = timer()
        variants[name]()
        times[name].append(timer() - start)
    return times


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages (os.getloadavg) and the CPU count, `n/a` where the
    platform has none."""
    try:
        values = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except (AttributeError, OSError):
        values = "n/a"
    return f"{values} on {os.cpu_count()} CPUs"


def print_load(when: str) -> None:
    """`load average before: 1.20 0.90 0.80 on 2 CPUs` (when = before / after)."""
    print(f"load average {when}: {load_average()}", flush=True)


def repeats_note(repeats: int) -> str:
    """How the printed numbers summarise the repeats: `medians of 5 repeats`, or, for one repeat,
    `single repeat (no median)`: one noisy sample on a shared machine, not a measurement to quote."""
    return SINGLE if repeats == 1 else f"medians of {repeats} repeats"


def ratio_lines(times: dict[str, list[float]], baseline: str, unit: float = 1e3, label: str = "ms") -> list[str]:
    """Per variant: the median (a single value for one repeat) and its ratio to the median of the
    named `baseline`, with the range of the per-round ratios (rounds time every variant once)."""
    base = statistics.median(times[baseline])
    lines = [f"  {baseline} (baseline): median {base * unit:.1f} {label}"]
    for name, values in times.items():
        if name == baseline:
            continue
        paired = [t / b for t, b in zip(values, times[baseline])]
        lines.append(
            f"  {name}: median {statistics.median(values) * unit:.1f} {label}, {name} / {baseline} = "
            f"{statistics.median(values) / base:.2f}x (per round {min(paired):.2f}x-{max(paired):.2f}x)"
        )
    return lines
