"""Paired comparisons between methods: "is A better than B, by how much, and is it real?"

Runs of two methods with the same comparison key (prune_cli/results: same data, model, schedule,
training) and the same seed share the initialisation, the data order and the dense model, so the
per-seed differences d_i = A_i - B_i remove the seed-to-seed variance that unpaired intervals carry
(Student's paired design; Dror et al., "The Hitchhiker's Guide to Testing Statistical Significance
in NLP", ACL 2018, for the choice of tests). Per (comparison key, sparsity, method vs baseline):

- mean difference and its paired Student-t interval;
- a percentile bootstrap interval of the mean difference: exact (all n^n resamples enumerated, so no
  Monte Carlo noise) for n <= EXACT_BOOTSTRAP_MAX_N, else scipy.stats.bootstrap with 9,999
  resamples and a fixed seed (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993);
- the paired t-test (n >= 2) and the Wilcoxon signed-rank test (n >= 6: below that its smallest
  exact two-sided p-value is 2 / 2^5 = 0.0625, so it can never reject at 0.05);
- Cohen's d_z = mean / sd of the differences (Cohen, 1988; Lakens, Front. Psychol. 2013);
- Holm's step-down correction of the t-test p-values across all comparisons of the report (Holm,
  Scand. J. Stat. 1979), which controls the family-wise error rate;
- a verdict; when not significant, the number of seeds that would give 80 % power to a paired
  t-test at the observed d_z (noncentral t).

The Student-t quantiles, the t-test's p-value and the noncentral t come from scipy.special (stdtrit,
stdtr, nctdtr: the functions scipy.stats evaluates for them; where nctdtr returns NaN far in a tail,
the noncentral t cdf is integrated numerically, `_nct_cdf`); scipy.stats itself, about a fifth of
prune-report's time to import (docs/report.md "Speed"), is imported only for the Wilcoxon test and
the resampled bootstrap, i.e. when a comparison has at least MIN_WILCOXON_N seeds.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import special

from .inputs import ReportInputError
from .levels import percent
from .mixing import SEPARATE, describe, mixed_keys

# A config key a run does not have, written as the Experiments table writes it (never "<...>", a tag to Markdown).
ABSENT = "(absent)"

EXACT_BOOTSTRAP_MAX_N = 6  # 6^6 = 46,656 resamples: exact enumeration is instant
BOOTSTRAP_RESAMPLES = 9999
MIN_WILCOXON_N = 6
POWER = 0.8
MAX_SEEDS_SEARCHED = 10_000
DEFAULT_BASELINES = ("magnitude",)
# Differences that agree to this relative precision are the same difference: accuracies are ratios of
# counts, and k/90 - j/90 differs from seed to seed only in the last bits.
SPREAD_TOL = 1e-12


def exact_bootstrap_means(d: np.ndarray) -> np.ndarray:
    """The means of all n^n ordered resamples of d (each equally likely under the bootstrap)."""
    return d[_all_resamples(len(d))].mean(axis=1)


@functools.lru_cache(maxsize=None)
def _all_resamples(n: int) -> np.ndarray:
    """The n^n index tuples in itertools.product order (last position fastest), built by numpy once
    per n: making 46,656 Python tuples per comparison was most of compare_methods' time on a
    100-run folder (scripts/bench_report.py)."""
    idx = np.indices((n,) * n, dtype=np.int64).reshape(n, -1).T if n else np.zeros((1, 0), dtype=np.int64)
    idx.flags.writeable = False
    return idx


def bootstrap_interval(d: Sequence[float], confidence: float = 0.95) -> tuple[float, float, str]:
    """Percentile bootstrap interval of the mean of d, and how it was computed ("exact"/"resampled")."""
    d = np.asarray(d, dtype=float)
    alpha = 1 - confidence
    if len(d) < 2:
        return math.nan, math.nan, "none"
    if len(d) <= EXACT_BOOTSTRAP_MAX_N:
        means = exact_bootstrap_means(d)
        lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
        return float(lo), float(hi), "exact"
    from scipy import stats  # imported only when needed: about 1 s, a fifth of prune-report (docs/report.md)

    res = stats.bootstrap(
        (d,), np.mean, confidence_level=confidence, n_resamples=BOOTSTRAP_RESAMPLES, method="percentile", random_state=0
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high), "resampled"


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values: sorted ascending, p_(i) * (m - i + 1), running maximum, capped at 1;
    NaN p-values are left out of the family."""
    p = np.asarray(p, dtype=float)
    out = np.full(len(p), np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def paired_t_power(d_z: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test with n pairs at standardised effect d_z (noncentral t)."""
    if n < 2:
        return 0.0
    df = n - 1
    crit = special.stdtrit(df, 1 - alpha / 2)  # scipy.stats.t.ppf
    nc = abs(d_z) * math.sqrt(n)  # the power of a two-sided test is the same for -d_z
    # P(T > crit) + P(T < -crit) for T noncentral t(df, nc): scipy.stats.nct's cdf is this nctdtr
    return float((1.0 - _nct_cdf(df, nc, crit)) + _nct_cdf(df, nc, -crit))


def _nct_cdf(df: int, nc: float, t: float) -> float:
    """P(T <= t) for T noncentral t(df, nc): scipy.special.nctdtr, which returns NaN far in a tail
    for a large noncentrality (d_z 6 at 2 seeds, 1.23 at 1,000). There the same probability comes
    from T = (Z + nc) / sqrt(V / df): the normal cdf of t sqrt(V / df) - nc averaged over the
    chi-square quantiles of V (quadrature over u in (0, 1), each value between 0 and 1, so nothing
    cancels). A NaN taken as a number made the seed search stop at once (tests/test_report_compare.py)."""
    p = float(special.nctdtr(df, nc, t))
    if math.isfinite(p):
        return p
    from scipy import integrate  # only in the tails where nctdtr fails

    def at(u: float) -> float:
        return float(special.ndtr(t * math.sqrt(special.chdtri(df, u) / df) - nc))

    return float(integrate.quad(at, 0.0, 1.0, limit=200, epsabs=1e-13)[0])


def seeds_needed(d_z: float, power: float = POWER, alpha: float = 0.05) -> Optional[int]:
    """Smallest n with paired_t_power(d_z, n) >= power; None when d_z is 0 or n would exceed
    MAX_SEEDS_SEARCHED (the verdict then says which, and what the interval cannot rule out)."""
    if not math.isfinite(d_z) or d_z == 0:
        return None
    lo, hi = 2, 2
    while paired_t_power(abs(d_z), hi, alpha) < power:
        if hi >= MAX_SEEDS_SEARCHED:
            return None
        lo, hi = hi + 1, min(hi * 2, MAX_SEEDS_SEARCHED)  # the limit itself is tried: 8,192 doubled skipped 8,193-10,000
    while lo < hi:  # power grows with n: bisection
        mid = (lo + hi) // 2
        if paired_t_power(abs(d_z), mid, alpha) >= power:
            hi = mid
        else:
            lo = mid + 1
    return hi


def paired_t_test(d: np.ndarray) -> tuple[float, float]:
    """(t, two-sided p) of the paired t-test on the differences d: the computation of
    scipy.stats.ttest_rel (t = mean / sqrt(var_(n-1) / n), p = 2 P(T_(n-1) > |t|) with the Student-t
    cdf scipy.special.stdtr), without importing scipy.stats, which a folder with fewer than
    MIN_WILCOXON_N seeds per comparison needs for nothing else (tests/test_report_startup.py
    checks both against scipy.stats)."""
    n = len(d)
    mean = d.mean()
    t = mean / np.sqrt(np.mean((d - mean) ** 2) * (n / (n - 1)) / n)  # ttest_1samp's order of operations
    return float(t), float(2 * special.stdtr(n - 1, -abs(t)))


def _ties_snapped(d: np.ndarray) -> np.ndarray:
    """The differences with |d| values equal up to float rounding made exactly equal (the smallest of
    each group, sign kept), and those within rounding of 0 made 0: accuracies are counts over the test
    set, so 63/90 - 62/90 and 78/90 - 77/90 are the same difference, and the signed-rank test must give
    them one midrank (scipy treats them as distinct values otherwise). The tolerance is relative to each
    difference's own size (at least 1e-12 absolute): relative to the largest, one exploded run (a
    difference of 1e15) made it 1,000 and every other difference 0."""
    out = np.where(np.abs(d) <= SPREAD_TOL, 0.0, d)
    order = np.argsort(np.abs(out), kind="stable")
    start = None
    for i in order:
        size = abs(out[i])
        if start is None or size - start > SPREAD_TOL * max(1.0, size):
            start = size
        out[i] = math.copysign(start, out[i])
    return out


def paired_statistics(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict:
    """Every statistic of one paired comparison of A against B (aligned by seed)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    n = len(d)
    row: dict = {"n": n, "mean_diff": float(d.mean()) if n else math.nan}
    rounding = SPREAD_TOL * max(1.0, float(np.abs(d).max())) if n else 0.0
    if n and abs(row["mean_diff"]) <= rounding:
        # 0 up to rounding (-2/90, 0, +2/90 average to -1.7e-15): 0, with the spread's tolerance, so the
        # verdict says the mean difference is 0 instead of asking for more than 10,000 seeds at d_z 1e-15
        row["mean_diff"] = 0.0
    sd = float(d.std(ddof=1)) if n >= 2 else math.nan
    if n >= 2 and float(np.ptp(d)) <= rounding:
        sd = 0.0  # the same difference on every seed, up to rounding: no spread (verdict says so)
    row["sd_diff"] = sd
    if n >= 2 and sd > 0:
        half = special.stdtrit(n - 1, 0.5 + confidence / 2) * sd / math.sqrt(n)
        row["t_low"], row["t_high"] = row["mean_diff"] - half, row["mean_diff"] + half
        row["t_stat"], row["p_t"] = paired_t_test(d) if row["mean_diff"] != 0 else (0.0, 1.0)
        row["d_z"] = row["mean_diff"] / sd
    else:  # identical differences: no spread to test against, and no t interval either (its width sd / 0 x 0 is
        # no interval; [mean, mean] claimed a certainty the seeds do not give, docs/report.md "zero spread")
        row["t_low"] = row["t_high"] = math.nan
        row["t_stat"] = row["p_t"] = row["d_z"] = math.nan
    row["boot_low"], row["boot_high"], row["bootstrap"] = bootstrap_interval(d, confidence)
    snapped = _ties_snapped(d) if n else d
    # scipy's default zero_method="wilcox" (Wilcoxon 1945) drops zero differences, so the minimum counts
    # the others: 6 seeds with 2 ties are a 4-pair test, whose smallest two-sided p is 0.125
    if np.count_nonzero(snapped) >= MIN_WILCOXON_N:
        from scipy import stats

        w = stats.wilcoxon(snapped)
        row["wilcoxon_stat"], row["p_wilcoxon"] = float(w.statistic), float(w.pvalue)
    else:
        row["wilcoxon_stat"] = row["p_wilcoxon"] = math.nan
    return row


def _points(x: float, scale: float) -> str:
    """x in points (scale 100) with one decimal, or as many more (up to 6) as keep a value that is not 0
    from reading as 0: a significant difference of 1-3 test examples in 10,000 read "+0.0 points [+0.0,
    +0.0]"; other scales: 4 significant digits."""
    if scale != 100:
        return f"{x:+.4g}"
    digits = 1
    while digits < 6 and math.isfinite(x) and x != 0 and round(x * scale, digits) == 0:
        digits += 1
    if math.isfinite(x) and x != 0 and round(x * scale, digits) == 0:  # below 1e-6 points: significant digits
        return f"{x * scale:+.2g}"
    return f"{x * scale:+.{digits}f}"


def _seed_list(seeds: str) -> str:
    return ", ".join(str(seeds).split()) or "none"


def _p(p: float, alpha: float) -> str:
    """p with two significant digits, or more where two would print the test level itself or land on
    the other side of it (p = 0.1042 at alpha 0.1 printed "p=0.1" beside "not distinguishable"). alpha is
    1 - confidence, 0.050000000000000044 for 0.95: rounded, or "0.05" never equalled it."""
    alpha = round(alpha, 12)
    for digits in range(2, 18):
        text = f"{p:.{digits}g}"
        if not math.isfinite(p) or (float(text) != alpha and (float(text) < alpha) == (p < alpha)):
            return text
    return text


def _valueless(part: pd.DataFrame, wide: pd.DataFrame, variant: str) -> str:
    """'<variant> has no value on seeds 3, 4 (of its 5 seeds)' for the seeds the variant ran without a
    finite value; '' when it has a value on every seed it ran."""
    ran = sorted(part.loc[part["variant"] == variant, "seed"].unique())
    missing = [s for s in ran if not np.isfinite(wide.at[s, variant])]
    if not missing:
        return ""
    seeds = ", ".join(str(s) for s in missing)
    return f"{variant} has no value on seed{'s' if len(missing) > 1 else ''} {seeds} (of its {len(ran)} seeds)"


def verdict(row: dict, alpha: float = 0.05, scale: float = 100.0) -> str:
    """Plain-language verdict of one comparison row (after Holm: uses p_holm), followed by the seeds
    left out because a method ran without a value on them (diverged, say), its run failed (`failed`:
    'seed 1 of random failed (LayerCollapse)') or did not finish (`unfinished`: no COMPLETE and no
    failed.json, as a killed job leaves it), or the other method has no run of that seed (`unpaired`;
    with fewer than 2 shared seeds the verdict names each side's seeds instead): a comparison of the
    seeds a method survived would otherwise overstate it without a word."""
    text = _verdict(row, alpha, scale)
    parts = [row.get("valueless"), row.get("failed"), row.get("unfinished")] + ([row.get("unpaired")] if int(row["n"]) >= 2 else [])
    left_out = "; ".join(x for x in parts if isinstance(x, str) and x)
    return f"{text}; left out: {left_out}" if left_out else text


def _verdict(row: dict, alpha: float, scale: float) -> str:
    """The verdict proper. The interval it quotes is the row's Student-t interval, which Holm's
    correction does not adjust (the verdict says so): only the p-value, and so the claim of a
    direction, is corrected for the report's comparisons."""
    a, b, s, n = row["method"], row["baseline"], row["target_sparsity"], int(row["n"])
    unit = " points" if scale == 100 else ""
    setting, scope = row.get("setting"), row.get("scope")
    where = (f"on {scope} " if isinstance(scope, str) and scope else "") + f"at sparsity {s:g}"
    if row.get("metric", "accuracy") != "accuracy":  # --metric: the verdict names what it compares
        where = f"in {row.get('split', 'test')} {row['metric']} {where}"
    where += f" [{setting}]" if isinstance(setting, str) and setting else ""
    if isinstance(row.get("mixed"), str) and row["mixed"]:  # the key mixes configurations: no statistics from it
        return f"{a} vs {b} {where}: not compared, {row['mixed']}"
    if isinstance(row.get("no_value"), str) and row["no_value"]:  # a method diverged on every seed, say
        return f"{a} vs {b} {where}: not compared, {row['no_value']}"
    if n < 2:
        sides = f"{a} has seeds {_seed_list(row.get('seeds_a', ''))}; {b} has seeds {_seed_list(row.get('seeds_b', ''))}"
        shared = "no seed in common" if n == 0 else f"only seed {_seed_list(row.get('seeds', ''))} in common"
        return f"{a} vs {b} {where}: {shared}, no test possible ({sides})"
    if row["sd_diff"] == 0:  # t = mean / 0: no t-test, whatever rounding made of the spread
        if abs(row["mean_diff"]) <= SPREAD_TOL:
            return f"{a} vs {b} {where}: identical on all {n} seeds"
        same = f"{_points(row['mean_diff'], scale)}{unit} on every one of the {n} seeds"
        return f"{a} vs {b} {where}: {same} (no spread between seeds, so no t-test)"
    confidence = row.get("confidence", 0.95)
    confidence = 0.95 if not isinstance(confidence, float) or not math.isfinite(confidence) else confidence
    interval = (
        f"[{_points(row['t_low'], scale)}, {_points(row['t_high'], scale)}] "
        f"({percent(confidence)} t interval, not adjusted for multiple comparisons)"
    )
    p = row.get("p_holm", math.nan)
    if math.isfinite(p) and p < alpha:
        sign = ">" if row["mean_diff"] > 0 else "<"
        return f"{a} {sign} {b} {where}: {_points(row['mean_diff'], scale)}{unit} {interval}, p={_p(p, alpha)} (Holm), {n} seeds"
    d_z = row.get("d_z", math.nan)
    need = seeds_needed(d_z, alpha=alpha)
    widest = max(abs(row["t_low"]), abs(row["t_high"]))
    wide = f"the interval cannot rule out a difference of up to {_points(widest, scale).lstrip('+')}{unit}"
    family = row.get("family") or "the report's comparisons"
    if math.isfinite(d_z) and need is not None and need <= n:
        # 80 % power at n seeds means the uncorrected test rejected: Holm's correction made the difference
        hint = (
            f"{n} seeds give 80% power at the observed effect (d_z={d_z:.2g}); "
            f"p={_p(row.get('p_t', math.nan), alpha)} before Holm's correction over {family}"
        )
    elif math.isfinite(d_z) and need is not None:
        hint = f"need about {need} seeds for 80% power at the observed effect (d_z={d_z:.2g})"
        p_t = row.get("p_t", math.nan)
        if math.isfinite(p_t) and p_t < alpha:  # the uncorrected test rejected, yet about `need` > n seeds are needed
            hint += f"; p={_p(p_t, alpha)} before Holm's correction over {family}"
    elif math.isfinite(d_z) and d_z != 0:
        hint = f"more than {MAX_SEEDS_SEARCHED:,} seeds would be needed for 80% power at the observed effect (d_z={d_z:.2g}); {wide}"
    else:  # a mean difference of exactly 0: no effect to power a test for, and still a wide interval
        hint = f"the observed mean difference is 0, but {wide}"
    p_text = f", p={_p(p, alpha)} (Holm)" if math.isfinite(p) else ""
    return (
        f"{a} vs {b} {where}: not distinguishable with {n} seeds ({_points(row['mean_diff'], scale)}{unit} {interval}{p_text}); {hint}"
    )


def final_values(
    metrics: pd.DataFrame,
    metric: str = "accuracy",
    split: str = "test",
    phases: tuple[str, ...] = ("finetuned", "pruned"),
    completed: Optional[pd.DataFrame] = None,
) -> pd.DataFrame:
    """One value per run: `metric` on `split` of the final model of the run's condition (load.CONDITION:
    runs that differ only by seed), the first of `phases` at which any of the condition's runs recorded
    `metric` (by default its final sparse model: finetuned, else pruned), as summary.final_phase chooses
    it for the accuracy table (a metric recorded after pruning only is compared there). A run of the
    condition without a row of that phase (its value not a number, left out) gets a NaN value there, so
    that the verdicts name its seed as one without a value: before, its pruned accuracy was paired with
    the other method's finetuned one, mixing phases. `completed` (load.ResultsFolder.runs: run_id,
    experiment, seed of every completed run with a config): a completed run of an experiment some run
    has a value of, without any row of `metric` on `split` itself (its metrics.csv missing or cut to its
    header, its value recorded twice with different values and so left out; docs/report.md "Paired
    comparisons") gets a NaN value too, its row the experiment's other with its own run id and seed:
    before, it vanished, and the verdict said the other method's seed had "no run to pair with"."""
    from .load import condition_keys

    rank_of = {phase: len(phases) - i for i, phase in enumerate(phases)}
    rows = metrics[(metrics["metric"] == metric) & (metrics["split"] == split) & metrics["phase"].isin(phases)]
    if not len(rows):
        return rows
    keys = condition_keys(metrics)
    # the phases the condition's runs reached with this metric (any split): a metric recorded after pruning
    # only (a plugin's) is compared there, not called missing at `finetuned`
    same = metrics[metrics["metric"] == metric]
    reached = same["phase"].map(rank_of).fillna(0)
    best = (
        reached.groupby([same[k] for k in keys], dropna=False).transform("max") if keys else pd.Series(reached.max(), index=same.index)
    )
    rank = rows["phase"].map(rank_of)
    final = rows[(rank == best.loc[rows.index]).to_numpy()].drop_duplicates("run_id", keep="last")
    lacking = rows[~rows["run_id"].isin(set(final["run_id"]))].drop_duplicates("run_id")
    if len(lacking):  # the run's row of the final phase is gone: a seed without a value, never an earlier phase
        phase = best.loc[lacking.index].map({r: p for p, r in rank_of.items()})
        lacking = lacking.assign(phase=phase.to_numpy(), value=np.nan)
        final = pd.concat([final, lacking]).sort_index()
    if completed is not None and len(completed) and "experiment" in final.columns:
        lost = completed[~completed["run_id"].isin(set(final["run_id"])) & completed["experiment"].isin(set(final["experiment"]))]
        if len(lost):
            like = final.drop_duplicates("experiment").set_index("experiment").loc[lost["experiment"]].reset_index()
            like = like[final.columns].assign(run_id=lost["run_id"].to_numpy(), seed=lost["seed"].to_numpy(), value=np.nan)
            if "dense_value" in like.columns:
                like["dense_value"] = np.nan
            like.index = range(int(metrics.index.max()) + 1, int(metrics.index.max()) + 1 + len(like))
            final = pd.concat([final, like])
    return final


def check_baseline(
    values: pd.DataFrame,
    baseline: Optional[str],
    elsewhere: Iterable[str] = (),
    recorded_elsewhere: Iterable[str] = (),
    metric_name: str = "accuracy",
) -> Optional[str]:
    """The baseline of the comparisons given `final_values`: `baseline` when it is a method of the
    folder's completed runs (else ValueError naming the methods allowed), by default magnitude when
    present, else None (every pair of methods). `elsewhere`: the methods of the run directories that
    did not complete; while no run has completed, one of those is accepted too (the report then
    shows the failures). `recorded_elsewhere`: with --metric, the methods whose runs completed without a
    value of `metric_name` (named so, not as missing from the folder). prune-report calls it before it
    creates anything."""
    methods = sorted(values["method"].unique()) if len(values) else []
    if baseline is None:
        return next((b for b in DEFAULT_BASELINES if b in methods), None)
    if baseline in methods:
        return baseline
    elsewhere = sorted(set(elsewhere))
    if not methods and baseline in elsewhere:
        return baseline
    allowed = ", ".join(methods) if methods else (", ".join(elsewhere) + " (no run has completed)" if elsewhere else "none")
    why = "has no completed run in this folder" if baseline in elsewhere else "is not a method of this folder"
    if baseline in set(recorded_elsewhere):  # --metric: the method ran, but records no value of the metric compared
        why = f"records no {metric_name} for its final sparse model"
    raise ReportInputError(f"--baseline {baseline!r} {why}; allowed: {allowed}")


def check_split(metrics: pd.DataFrame, split: str) -> None:
    """ValueError when the folder's completed runs record no `split` accuracy (then nothing could be
    compared or summarised on it), naming the splits they do record."""
    if not len(metrics):
        return
    splits = sorted(metrics.loc[metrics["metric"] == "accuracy", "split"].astype(str).unique())
    if split not in splits:
        raise ReportInputError(
            f"--split {split!r}: no completed run in this folder records {split} accuracy; allowed: {', '.join(splits)}"
        )


# The splits the comparisons read by default (`--split`); a metric recorded on none of them (the model's cost
# on `model`, the Hessian's on `train`, a membership attack's on `membership`) is compared on its own split
CHOSEN_SPLITS = ("test", "val")
# Which value is the better one, for the metrics prune-cli records (docs/report.md "The metric compared"):
# the verdicts' > and < compare values, so a reader of "random < magnitude in membership mia_loss_auc" must
# know which is better there: closer to 0.5 (less leakage; `better_direction`); lower for loss, ece, latency
# and the pruned model's cost (its nonzero parameters and FLOPs)
HIGHER_IS_BETTER = (
    "accuracy",
    "top5_accuracy",
    "mean_class_recall",
    "worst_class_recall",
    "compression_ratio",
    "theoretical_speedup",
    "measured_speedup",
)
LOWER_IS_BETTER = ("loss", "ece", "latency_ms", "params_nonzero", "prunable_nonzero", "flops_sparse")


def better_direction(metric: str) -> str:
    """'higher' or 'lower' where prune-cli knows which value of `metric` is better, else '' (a plugin's
    scalar, a Hessian statistic, mia_member_loss: the report does not guess). A membership attack's AUC and
    accuracy (`mia_*_auc`, `mia_*_accuracy`): 'closer to 0.5', the less the model leaks its training set. Not
    'lower': an AUC of 0.40 ranks members below non-members, which an attacker reverses, so it leaks as much
    as 0.60."""
    if metric in HIGHER_IS_BETTER or metric.startswith("speedup_"):
        return "higher"
    if metric.startswith("mia_") and metric.endswith(("_auc", "_accuracy")):
        return "closer to 0.5"
    if metric in LOWER_IS_BETTER:
        return "lower"
    return ""


def check_metric(metrics: pd.DataFrame, metric: str, split: str) -> str:
    """The split `--metric NAME` is compared on: `split` when some completed run records NAME there for a
    final sparse model (finetuned or pruned); else, when NAME is recorded on exactly one split that is not
    one `--split` chooses (model, train, membership), that split: mia_loss_auc (split membership) or
    latency_ms (split model) were refused as absent from the test split, and could not be compared at all.
    Else ReportInputError before anything is written, naming the splits NAME is recorded on, or, when it
    is recorded nowhere, every metric it accepts: those recorded on `split`, then those recorded on exactly
    one split that `--split` does not choose, with that split ('compression_ratio (model split)'; the
    list named the first alone, though it accepted the others; docs/report.md "The metric compared")."""
    if not len(metrics) or metric == "accuracy":
        return split
    final = metrics[metrics["phase"].isin(("finetuned", "pruned"))]
    on = sorted(final.loc[final["metric"].astype(str) == metric, "split"].astype(str).unique())
    if split in on:
        return split
    if len(on) == 1 and on[0] not in CHOSEN_SPLITS:
        return on[0]
    if on:
        where = f"the {on[0]} split" if len(on) == 1 else f"the splits {', '.join(on)}"
        how = f" (--split {on[0]})" if len(on) == 1 else "; which one is meant is not guessed"
        raise ReportInputError(
            f"--metric {metric!r}: no completed run in this folder records it on the {split} split for its final sparse "
            f"model; it is recorded on {where}{how}"
        )
    names = sorted(final.loc[final["split"].astype(str) == split, "metric"].astype(str).unique())
    splits = final.assign(metric=final["metric"].astype(str), split=final["split"].astype(str)).groupby("metric")["split"].unique()
    elsewhere = [(name, on[0]) for name, on in sorted(splits.items()) if len(on) == 1 and on[0] not in CHOSEN_SPLITS]
    names += [f"{name} ({on} split)" for name, on in elsewhere if name not in names]
    raise ReportInputError(
        f"--metric {metric!r}: no completed run in this folder records it on the {split} split for its final sparse "
        f"model; allowed: {', '.join(names) or 'none'}"
    )


def variant_labels(values: pd.DataFrame) -> pd.Series:
    """Per row: the method's name; where the runs of one method name differ in their method options
    inside one (comparison key, sparsity), the name with those options (`magnitude
    [allocation=layerwise]`). A variant is a method of its own, never averaged with another. The
    options are the varying `method.*` config keys, or without run directories the context columns
    score, allocation and structure (prune_cli/results)."""
    options = [c for c in values.columns if c.startswith("method.") and c != "method.name"]
    options = options or [c for c in ("score", "allocation", "structure") if c in values.columns]
    labels = values["method"].astype(str)
    if not options or not len(values):
        return labels
    text = values[options].astype(object).where(values[options].notna(), ABSENT).astype(str)
    for _, rows in values.groupby(["comparison", "target_sparsity", "method"], sort=False):
        differing = [c for c in options if text.loc[rows.index, c].nunique() > 1]
        if differing:
            spelled = text.loc[rows.index, differing].apply(
                lambda r: ", ".join(f"{c.removeprefix('method.')}={v}" for c, v in r.items()), axis=1
            )
            labels.loc[rows.index] = labels.loc[rows.index] + " [" + spelled + "]"
    return labels


def setting_labels(values: pd.DataFrame) -> dict[tuple, str]:
    """Per (comparison key, sparsity): what tells it apart from the other comparison keys of its (dataset, model,
    sparsity), as `schedule=iterative` or `train.epochs=2, train.lr=0.05`; "" where it is alone. Two
    comparisons of one method pair at one sparsity (a sweep over schedules or training lengths) had
    word-for-word the same verdict, told apart only by a hash that no other table shows. The keys are
    the schedule column and the varying config keys a comparison key holds (not the method's or the
    sparsity's, prune_cli/results COMPARISON_FREE)."""
    from ..results import COMPARISON_FREE

    if not len(values) or "comparison" not in values.columns:
        return {}
    dotted = [c for c in values.columns if "." in c and c.split(".")[0] not in COMPARISON_FREE and c.split(".")[0] != "seed"]
    columns = [c for c in ("schedule",) if c in values.columns and "schedule.name" not in dotted] + dotted
    text = values[columns].astype(object).where(values[columns].notna(), ABSENT).astype(str)
    text = text.assign(comparison=values["comparison"].to_numpy())
    labels: dict[tuple, str] = {}
    group = [c for c in ("dataset", "model") if c in values.columns]
    for sparsity, part in text.groupby([*(values[c] for c in group), values["target_sparsity"]], sort=False):
        keys = part.drop_duplicates("comparison").set_index("comparison")
        if len(keys) < 2:
            continue
        for key, label in distinguishing_labels(keys[columns]).items():
            labels[key, sparsity[-1]] = label or f"comparison {key}"
    return labels


def distinguishing_labels(keys: pd.DataFrame) -> dict:
    """Per row of `keys` (index: a setting; columns: config keys as text, ABSENT where it lacks one): the
    keys whose values differ between the rows, as `data_pruning=el2n, data_pruning.keep=0.5` (a group's
    `.name` first). A row names only the keys it has where that still tells every row apart: the runs
    without data pruning listed EL2N's options as `<absent>`; else every differing key, ABSENT included."""
    differing = [c for c in keys.columns if keys[c].nunique() > 1]
    group_order: dict[str, int] = {}
    for c in differing:
        group_order.setdefault(c.split(".")[0], len(group_order))
    differing.sort(key=lambda c: (group_order[c.split(".")[0]], not c.endswith(".name")))  # data_pruning=el2n first
    full = {key: [(c, row[c]) for c in differing] for key, row in keys.iterrows()}
    own = {key: [(c, v) for c, v in pairs if v != ABSENT] for key, pairs in full.items()}  # keys it has
    if len(set(map(tuple, own.values()))) == len(own) and all(own.values()):
        full = own  # each setting told apart by its own keys: data_pruning=none lists no EL2N option
    return {key: ", ".join(f"{c.removesuffix('.name')}={v}" for c, v in pairs) for key, pairs in full.items()}


def compare_methods(
    metrics: pd.DataFrame,
    baseline: Optional[str] = None,
    metric: str = "accuracy",
    split: str = "test",
    confidence: float = 0.95,
    alpha: Optional[float] = None,
    failed: Optional[pd.DataFrame] = None,
    by: Optional[str] = None,
    family: str = "",
    unfinished: Optional[pd.DataFrame] = None,
    left_out: Optional[pd.DataFrame] = None,
    completed: Optional[pd.DataFrame] = None,
) -> pd.DataFrame:
    """The comparisons table: each method against `baseline` (default: magnitude when present, else
    every pair of methods) per (comparison key, sparsity), with Holm correction over all rows.
    `alpha`: the verdicts' test level, by default 1 - confidence, so that a verdict never asserts a
    direction while the interval it quotes contains 0 (--confidence 0.99 tested at 0.05 did).
    `failed`: the failed runs (`failed_runs`), named in the `failed` column and the verdict of the
    comparisons their seed is missing from; `unfinished` (the same table of the unfinished runs) in
    the `unfinished` column. A seed one side has a value on and the other never ran is named in `unpaired`,
    or, where the other's run of it completed but was left out for its config.yaml (`left_out`:
    `left_out_runs`), named so there ('seed 2 of random left out (no config.yaml)').
    `by` (--compare-by): instead of methods, the values of a config key or group the comparison key
    holds (`schedule`, `schedule.restart_from`, `train.epochs`), each method variant's arms against
    each other within the runs that agree on every other key (`_arms`); `baseline` is not used.
    `family`: the comparisons Holm's correction runs over, as the verdicts name it ("" : the report's).
    `completed`: the completed runs (load.ResultsFolder.runs), whose seeds without a row of the metric
    are seeds without a value (`final_values`), not seeds never run."""
    alpha = 1 - confidence if alpha is None else alpha
    if not len(metrics) or "comparison" not in metrics.columns:
        return pd.DataFrame()
    values = final_values(metrics, metric, split, completed=completed)
    arm_columns: list[str] = []
    if by is None:
        baseline = check_baseline(values, baseline)
        values = values.assign(variant=variant_labels(values))
    else:
        baseline = None
        values, arm_columns = _arms(values, by)
        failed = _regrouped(failed, values, arm_columns)
        unfinished = _regrouped(unfinished, values, arm_columns)
    settings = setting_labels(values.drop(columns=arm_columns + [c for c in _context_of(arm_columns) if c in values.columns]))
    out = []
    for (comparison, sparsity), part in values.groupby(["comparison", "target_sparsity"], sort=True):
        # several runs of one variant and seed of one configuration (a repeated or copied run) are averaged
        # first; runs of one seed from several configurations are not (mixing.py): those variants are not
        # compared. dropna=False keeps a variant whose values are all NaN (diverged on every seed), whose
        # comparisons the verdict names
        mixed = {k[0]: v for k, v in mixed_keys(part, ["variant"]).items()}
        wide = part.pivot_table(index="seed", columns="variant", values="value", aggfunc="mean", dropna=False)
        present = list(wide.columns)
        finite = np.isfinite(wide).sum()
        if by is not None:  # the arms of one method variant, each against each
            of = part.drop_duplicates("variant").set_index("variant")["method_variant"]
            pairs = [(a, b) for a, b in itertools.combinations(present, 2) if of[a] == of[b]]
        elif baseline is None:
            pairs = list(itertools.combinations(present, 2))
        else:  # every other variant against each variant of the baseline, and those against each other
            name = part.drop_duplicates("variant").set_index("variant")["method"]
            base = [v for v in present if name[v] == baseline]
            pairs = [(m, b) for b in base for m in present if m not in base] + list(itertools.combinations(base, 2))
        context = part.iloc[0] if by is None else _spanned(part, ("dataset", "model", "schedule"))
        failures = _failures_by_variant(part, wide, failed, comparison, sparsity, arm_columns)
        unfinishes = _failures_by_variant(part, wide, unfinished, comparison, sparsity, arm_columns, finished=False)
        ran = {v: set(part.loc[part["variant"] == v, "seed"]) for v in present}
        for a, b in pairs:
            both = wide[[a, b]][np.isfinite(wide[[a, b]]).all(axis=1)]  # an overflowed (inf) value is no value either
            row = {
                "family": family or ("" if by is None else f"the comparisons by {by}"),
                "comparison": comparison,
                "dataset": context.get("dataset"),
                "model": context.get("model"),
                "schedule": context.get("schedule"),
                "setting": settings.get((comparison, sparsity), ""),
                "target_sparsity": float(sparsity),
                "metric": metric,
                "split": split,
                "method": a,
                "baseline": b,
                "seeds": " ".join(str(s) for s in both.index),
                # each side's seeds with a value, which the verdict names when fewer than 2 are shared
                "seeds_a": " ".join(str(s) for s in wide.index[np.isfinite(wide[a])]),
                "seeds_b": " ".join(str(s) for s in wide.index[np.isfinite(wide[b])]),
                "mean_a": float(both[a].mean()) if len(both) else math.nan,
                "mean_b": float(both[b].mean()) if len(both) else math.nan,
                "no_value": "; ".join(
                    f"{v}'s values are all NaN (n finite = 0 of {part.loc[part['variant'] == v, 'seed'].nunique()} seeds)"
                    for v in (a, b)
                    if finite[v] == 0
                ),
                # seeds a method ran but has no value on (diverged, say): left out of the pairs, and named
                "valueless": "; ".join(filter(None, (_valueless(part, wide, v) for v in (a, b) if finite[v] > 0))),
                # seeds whose run of a or b failed (failed.json): not among the pairs, and named
                "failed": "; ".join(_texts(failures, v) for v in (a, b) if failures.get(v)),
                # seeds whose run of a or b did not finish (no COMPLETE, no failed.json: killed, out of memory)
                "unfinished": "; ".join(_texts(unfinishes, v) for v in (a, b) if unfinishes.get(v)),
                # seeds one side has a value on and the other never ran (nor failed or left unfinished)
                "unpaired": "; ".join(
                    filter(
                        None,
                        (
                            _unpaired_text(
                                wide,
                                mine,
                                other,
                                ran[other] | _seeds(failures, other) | _seeds(unfinishes, other),
                                _left_out_seeds(left_out, part, other, sparsity),
                            )
                            for mine, other in ((a, b), (b, a))
                        ),
                    )
                ),
            }
            row["mixed"] = "; ".join(
                f"{v}'s {mixed[v]['n_runs']} runs mix {mixed[v]['n_configurations']} configurations ({describe(mixed[v])}) "
                f"that the comparison key does not tell apart, so they are not averaged as repeated runs; {SEPARATE}"
                for v in (a, b)
                if v in mixed
            )
            if row["mixed"]:  # no statistics from a mean of different configurations
                both = both.iloc[:0]
                row.update(seeds="", mean_a=math.nan, mean_b=math.nan)
            row.update(paired_statistics(both[a].to_numpy(), both[b].to_numpy(), confidence))
            out.append(row)
    table = pd.DataFrame(out)
    if not len(table):
        return table
    table["p_holm"] = holm(table["p_t"])
    table["confidence"] = confidence
    # a folder of several (dataset, model) pairs: each verdict names its own, or two verdicts of one method
    # pair at one sparsity read word for word alike with different numbers
    pairs = table[["dataset", "model"]].astype(str).drop_duplicates()
    table["scope"] = (table["dataset"].astype(str) + "/" + table["model"].astype(str)) if len(pairs) > 1 else ""
    scale = 100.0 if metric == "accuracy" else 1.0
    table["verdict"] = [verdict(r, alpha, scale) for r in table.to_dict(orient="records")]
    return table.drop(columns=["family"])  # the verdicts' wording, not a column of comparisons.csv


def failed_runs(records: list[dict], configs: dict[str, dict]) -> pd.DataFrame:
    """One row per failed run whose config.yaml could be read (`records`: load.ResultsFolder.failed,
    `configs`: its failed_configs): run, seed, method, target_sparsity, comparison key, error_type and
    the config's keys as the comparison table's dotted columns hold them (text)."""
    from ..results import _result_items, comparison_key

    rows = []
    for record in records:
        cfg = configs.get(record["run"])
        method = cfg.get("method") if cfg is not None else None
        if not isinstance(method, dict) or "name" not in method or "seed" not in cfg or "sparsity" not in cfg:
            continue
        # every dotted config key (not seed or sparsity, columns of their own): --compare-by regroups failed runs too
        options = {k: v for k, v in _result_items(cfg).items() if "." in k}
        rows.append(
            {
                "run": record["run"],
                "seed": cfg["seed"],
                "method": str(method["name"]),
                "target_sparsity": float(cfg["sparsity"]),
                "comparison": comparison_key(cfg),
                "error_type": str(record.get("error_type", "?")),
                **options,
            }
        )
    return pd.DataFrame(rows)


def _texts(lost: dict, variant: str) -> str:
    return "; ".join(text for _, text in lost[variant])


def _seeds(lost: dict, variant: str) -> set:
    return {seed for seed, _ in lost.get(variant, [])}


def _unpaired_text(wide: pd.DataFrame, mine: str, other: str, accounted: set, left_out: Optional[dict] = None) -> str:
    """'seeds 3, 4 of magnitude have no run of random to pair with' for the seeds `mine` has a value on
    that `other` never ran (`accounted`: the seeds it ran, failed or left unfinished, named elsewhere);
    a seed whose run of `other` completed but was left out of the report (`left_out`: {seed: why}) is
    named so instead: 'seed 2 of random left out (no config.yaml)'; ''."""
    left_out = left_out or {}
    seeds = [s for s in wide.index[np.isfinite(wide[mine])] if s not in accounted]
    named = [f"seed {s} of {other} left out ({left_out[s]})" for s in seeds if s in left_out]
    seeds = [s for s in seeds if s not in left_out]
    if seeds:
        many = len(seeds) > 1
        listed = ", ".join(str(s) for s in seeds)
        named.append(f"seed{'s' if many else ''} {listed} of {mine} {'have' if many else 'has'} no run of {other} to pair with")
    return "; ".join(named)


def left_out_runs(root, names: Iterable[str], why: dict[str, str]) -> pd.DataFrame:
    """One row per completed run left out of the report for its config.yaml (`names`: run directories
    under `root`/runs; `why`: {name: 'no config.yaml', ...}): run, seed, method, target_sparsity, name
    and why, read from the context columns of the run's own metrics.csv, which hold them without the
    config. Its comparison key (every config key) cannot be known: such a run is attributed to every
    comparison of its method, sparsity and seed (`_left_out_seeds`). A run whose metrics.csv lacks them
    is not attributed (the report's header still names it)."""
    from pathlib import Path

    rows = []
    for name in names:
        try:
            head = pd.read_csv(Path(root) / "runs" / name / "metrics.csv", nrows=1)
        except (OSError, ValueError):
            continue
        if not len(head) or not {"seed", "method", "target_sparsity"} <= set(head.columns):
            continue
        first = head.iloc[0]
        try:
            seed, sparsity = first["seed"], float(first["target_sparsity"])
        except (TypeError, ValueError):
            continue
        seed = int(seed) if isinstance(seed, (int, np.integer)) or (isinstance(seed, float) and seed.is_integer()) else seed
        rows.append(
            {
                "run": name,
                "seed": seed,
                "method": str(first["method"]),
                "target_sparsity": sparsity,
                "name": str(first["name"]) if "name" in head.columns else None,
                "why": why[name],
            }
        )
    return pd.DataFrame(rows, columns=["run", "seed", "method", "target_sparsity", "name", "why"])


def _left_out_seeds(left_out: Optional[pd.DataFrame], part: pd.DataFrame, variant: str, sparsity) -> dict:
    """{seed: why} of the left-out runs (`left_out_runs`) of `variant`'s method at `sparsity`."""
    if left_out is None or not len(left_out):
        return {}
    method = part.loc[part["variant"] == variant, "method"].astype(str)
    if not len(method):
        return {}
    here = left_out[(left_out["method"] == method.iloc[0]) & np.isclose(left_out["target_sparsity"].astype(float), float(sparsity))]
    return {r.seed: r.why for r in here.itertuples()}


def _failures_by_variant(
    part: pd.DataFrame,
    wide: pd.DataFrame,
    failed: Optional[pd.DataFrame],
    comparison,
    sparsity,
    arm_columns: Sequence[str] = (),
    finished: bool = True,
) -> dict:
    """{variant: [(1, 'seed 1 of random failed (LayerCollapse)')]} for the failed runs (`failed_runs`) of one
    (comparison key, sparsity) `part` whose seed has no value of their variant. A failed run is of the
    variant whose runs have its method name and, where the method has several variants here, its values
    of the method options (and, with --compare-by, of the compared keys `arm_columns`) that tell them apart.
    `finished` False: the runs are unfinished ones ('seed 2 of magnitude did not finish')."""
    if failed is None or not len(failed):
        return {}
    here = failed[(failed["comparison"] == comparison) & np.isclose(failed["target_sparsity"], float(sparsity))]
    if not len(here):
        return {}
    names = part.drop_duplicates("variant").set_index("variant")["method"].astype(str)
    options = [c for c in part.columns if c.startswith("method.") and c != "method.name"] + list(arm_columns)

    def text(frame: pd.DataFrame) -> pd.DataFrame:
        return (
            pd.DataFrame({c: frame[c] if c in frame.columns else None for c in options}, index=frame.index)
            .astype(object)
            .fillna(ABSENT)
            .astype(str)
        )

    out = {}
    for variant, method in names.items():
        mine = here[here["method"] == method]
        if len(mine) and (names == method).sum() > 1 and options:  # the variant's own option values
            ref = text(part[part["variant"] == variant]).iloc[0]
            mine = mine[(text(mine) == ref).all(axis=1).to_numpy()]
        valued = set(wide.index[np.isfinite(wide[variant])]) if variant in wide.columns else set()
        mine = mine[~mine["seed"].isin(valued)].sort_values("seed")
        if len(mine):
            out[variant] = [
                (r.seed, f"seed {r.seed} of {variant} " + (f"failed ({r.error_type})" if finished else "did not finish"))
                for r in mine.itertuples()
            ]
    return out


def failed_lines(
    metrics: pd.DataFrame,
    failed: Optional[pd.DataFrame],
    metric: str = "accuracy",
    split: str = "test",
    unfinished: Optional[pd.DataFrame] = None,
) -> list[str]:
    """One line per (comparison key, sparsity, method) none of whose runs finished where other runs of
    that comparison key completed: such a method has no value to compare and would otherwise have no word
    beside the verdicts (the standards check lists the failed runs). Every run failed: 'not compared,
    every run failed: seed 0 (LayerCollapse), ...'; some or all did not finish (`unfinished`, the
    failed_runs table of the unfinished runs): 'not compared, no run finished: seed 0 (LayerCollapse),
    seed 1 did not finish' (before, a method whose every run was unfinished had no line at all)."""
    frames = [f.assign(finished=True) for f in (failed,) if f is not None and len(f)]
    frames += [f.assign(finished=False) for f in (unfinished,) if f is not None and len(f)]
    if not frames or not len(metrics) or "comparison" not in metrics.columns:
        return []
    lost = pd.concat(frames, ignore_index=True)
    values = final_values(metrics, metric, split)
    keys = set(values["comparison"])
    done = {(c, round(float(s), 12), str(m)) for c, s, m in zip(values["comparison"], values["target_sparsity"], values["method"])}
    lines = []
    for (comparison, sparsity, method), runs in lost.groupby(["comparison", "target_sparsity", "method"], sort=True):
        if comparison not in keys or (comparison, round(float(sparsity), 12), method) in done:
            continue
        runs = runs.sort_values(["seed", "finished"])
        seeds = ", ".join(
            f"seed {r.seed} ({r.error_type})" if r.finished else f"seed {r.seed} did not finish" for r in runs.itertuples()
        )
        how = "every run failed" if runs["finished"].all() else "no run finished"
        lines.append(f"{method} at sparsity {sparsity:g} (comparison {comparison}): not compared, {how}: {seeds}")
    return lines


def unpaired(
    metrics: pd.DataFrame,
    baseline: Optional[str] = None,
    metric: str = "accuracy",
    split: str = "test",
    failed: Optional[pd.DataFrame] = None,
) -> list[str]:
    """One line per (comparison key, sparsity) whose methods have no run of the baseline beside them:
    runs whose comparison keys differ are never paired, and the report says so rather than leaving
    those methods out without a word; where the baseline ran with the same key at other sparsities
    only, the line says that it was not run at this one, else it names the keys in which the nearest
    baseline runs differ (`_differing_keys`): a comparison key holds every config key but the
    method's and the sparsity, so a measurement-only metric enabled for some runs (`metrics.*`)
    splits them too, and the line said "the same data, model, schedule and training" differed."""
    if not len(metrics) or "comparison" not in metrics.columns:
        return []
    values = final_values(metrics, metric, split)
    baseline = check_baseline(values, baseline)
    if baseline is None:
        return []
    lines = []
    with_baseline = set(values.loc[values["method"] == baseline, "comparison"])
    for (comparison, sparsity), part in values.groupby(["comparison", "target_sparsity"], sort=True):
        methods = sorted(part["method"].astype(str).unique())
        if baseline in methods:
            continue
        ran_and_failed = failed_note(failed, baseline, sparsity, {"comparison": comparison})
        if ran_and_failed:  # its runs failed (LayerCollapse, say): run, but without a value
            why = f"{baseline} has no completed run at sparsity {sparsity:g}{ran_and_failed}"
        elif comparison in with_baseline:  # the same data, model and training, only not this sparsity
            why = f"{baseline} was not run at sparsity {sparsity:g}"
        else:
            differ = _differing_keys(values, part, values[values["method"] == baseline], baseline)
            why = (
                f"no {baseline} run with the same comparison key"
                + (f"; the nearest {baseline} runs differ in {differ}" if differ else "")
                + " (the Experiments table shows what differs)"
            )
        lines.append(f"{', '.join(methods)} at sparsity {sparsity:g} (comparison {comparison}): not paired, {why}")
    return lines


def _differing_keys(values: pd.DataFrame, part: pd.DataFrame, base: pd.DataFrame, baseline: str) -> str:
    """The keys of the comparison key (the schedule column and the varying config keys, as
    setting_labels reads them) whose values differ between the runs of `part` and the `baseline` runs
    of the comparison key nearest to them (the fewest differing keys), spelled `metrics.clash.enabled
    (random: true; magnitude: (absent))` (a disabled metric is no part of the key, prune_cli/results);
    "" where no column tells them apart."""
    from ..results import COMPARISON_FREE

    dotted = [c for c in values.columns if "." in c and c.split(".")[0] not in COMPARISON_FREE and c.split(".")[0] != "seed"]
    columns = [c for c in ("dataset", "model", "schedule") if c in values.columns and f"{c}.name" not in dotted] + dotted

    def text(frame: pd.DataFrame, column: str) -> str:
        shown = frame[column].astype(object).where(frame[column].notna(), "(absent)").astype(str)  # as the Experiments table
        return ", ".join(sorted(shown.unique()))

    here = {c: text(part, c) for c in columns}
    nearest: list[str] = []
    for _, runs in base.groupby("comparison", sort=True):
        differing = [c for c in columns if text(runs, c) != here[c]]
        if differing and (not nearest or len(differing) < len(nearest[1])):
            nearest = [runs, differing]
    if not nearest:
        return ""
    runs, differing = nearest
    methods = ", ".join(sorted(part["method"].astype(str).unique()))
    return "; ".join(f"{c} ({methods}: {here[c]}; {baseline}: {text(runs, c)})" for c in differing)


def compare_by_columns(columns: Iterable[str], key: str) -> list[str]:
    """The config columns `--compare-by KEY` names: KEY itself (`schedule.restart_from`) or, for a config
    group or node (`schedule`, `train`), every key under it (`schedule.name`, `schedule.rounds`, ...)."""
    return [c for c in columns if "." in c and (c == key or c.startswith(key + "."))]


def check_compare_by(metrics: pd.DataFrame, key: Optional[str], key_source: str = "config") -> None:
    """--compare-by KEY must name a config key, or a group of them, that varies between the folder's
    experiments and that a comparison key holds: not the method's options (variants of a method are
    compared already) nor the sparsity (each comparison holds it fixed). Else ReportInputError naming
    what is allowed, before anything is written."""
    from ..results import COMPARISON_FREE

    if key is None:
        return
    if key_source != "config":
        raise ReportInputError(
            f"--compare-by {key!r}: this folder holds only the shared CSVs (no run directories), whose rows carry no "
            "config keys to compare by; run prune-report on the results_dir that holds runs/"
        )
    dotted = sorted(c for c in metrics.columns if "." in c and c.split(".")[0] not in COMPARISON_FREE)
    if compare_by_columns(dotted, key):
        return
    why = (
        " (variants of a method are compared already, and each comparison holds the sparsity fixed)"
        if key.split(".")[0] in COMPARISON_FREE
        else ""
    )
    groups = sorted({c.split(".")[0] for c in dotted})
    allowed = ", ".join(groups + dotted) or "none: no config key but the method's and the sparsity varies between its experiments"
    what = _not_compared_by(metrics, key) or f"no config key of that name varies between this folder's experiments{why}"
    raise ReportInputError(f"--compare-by {key!r}: {what}; allowed: {allowed}")


def _not_compared_by(metrics: pd.DataFrame, key: str) -> str:
    """Why a method option that does vary is refused: '<key> varies only together with the method
    (magnitude: global; random: layerwise), ...' or that its variants within a method are compared
    already; '' for a key without two values. The refusal said no key of that name varied, which such a
    key does."""
    if key in ("sparsity", "target_sparsity"):  # not a method option: what every comparison holds fixed
        return f"each comparison holds the sparsity fixed ({key} is not a config key whose values can be paired)"
    if key == "seed":
        return "the seed is what the comparisons pair runs by (each pair is one seed's runs), not a key to compare"
    if not key.startswith("method.") and key != "method":
        return ""
    if key not in metrics.columns or "method" not in metrics.columns or metrics[key].nunique() < 2:
        return ""
    text = _as_text(metrics, [key])[key]
    per_method = text.groupby(metrics["method"].astype(str)).unique()
    if per_method.map(len).max() > 1:
        return f"{key} is an option of a method whose variants the method comparisons compare already"
    spelled = "; ".join(f"{m}: {values[0]}" for m, values in per_method.items())
    return (
        f"{key} varies only together with the method ({spelled}), so comparing its values would compare the methods, "
        "which the method comparisons do"
    )


def _as_text(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    columns = list(columns)
    present = frame.reindex(columns=columns)
    return present.astype(object).where(present.notna(), ABSENT).astype(str)


def _held(frame: pd.DataFrame, arm_columns: Sequence[str], held_columns: Sequence[str]) -> pd.Series:
    """Per row: the key of every other config key (`held_columns`), a comparison key without `arm_columns`."""
    from ..results import _digest

    text = _as_text(frame, held_columns)
    return pd.Series([_digest(dict(zip(held_columns, row))) for row in text.itertuples(index=False)], index=frame.index, dtype=object)


def _held_columns(values: pd.DataFrame, arm_columns: Sequence[str]) -> list[str]:
    from ..results import COMPARISON_FREE

    return [c for c in values.columns if "." in c and c.split(".")[0] not in COMPARISON_FREE and c not in arm_columns]


def _arms(values: pd.DataFrame, by: str) -> tuple[pd.DataFrame, list[str]]:
    """`final_values` regrouped for --compare-by: `comparison` becomes the key of every config key but the
    compared ones, so runs that differ only in them (and in the method and sparsity) share it; `variant`
    becomes the method variant with the compared keys' values that differ inside its group
    (`magnitude [schedule.name=iterative, schedule.rounds=5]`); `method_variant` keeps the method
    variant, since only arms of one method variant are paired. A seed's runs of two arms share the data,
    the initialisation and the dense model whenever the compared keys do not enter them (a schedule, a
    restart rule, fine-tuning options); comparing `train.*` or `dataset.*` values compares different
    dense models, which the paired difference then includes (docs/report.md)."""
    arm_columns = compare_by_columns(values.columns, by)
    group = _held(values, arm_columns, _held_columns(values, arm_columns))
    # a method's variants told apart inside the regrouped group (the method options that differ there):
    # labelled by the original comparison key, a global oneshot run and a layerwise iterative one were
    # both plain "magnitude", paired, and their whole difference put down to the schedule
    variant = variant_labels(values.assign(comparison=group))
    text = _as_text(values, arm_columns)
    labels = variant.copy()
    for _, rows in values.groupby([group, values["target_sparsity"], variant], sort=False):
        telling = _telling_keys(text.loc[rows.index, arm_columns])
        if telling:
            labels.loc[rows.index] = variant.loc[rows.index] + " [" + _arm_texts(text.loc[rows.index, telling]) + "]"
    return values.assign(
        method_variant=variant, variant=labels, comparison=group, original_comparison=values["comparison"]
    ), arm_columns


def _telling_keys(text: pd.DataFrame) -> list[str]:
    """The compared keys that tell the arms of `text` (one row per run, ABSENT where a run lacks a key)
    apart: every key that differs and that every arm has, then a key some arms lack only where it splits
    arms those keys do not (two iterative arms of 3 and 5 rounds beside a one-shot one); a group's `.name`
    first. `--compare-by schedule` listed every key of every schedule, mostly "(absent)", in each arm."""
    arms = text.drop_duplicates()
    differing = sorted((c for c in text.columns if arms[c].nunique() > 1), key=lambda c: not c.endswith(".name"))
    chosen = [c for c in differing if not (arms[c] == ABSENT).any()]
    for c in differing:
        told = arms[chosen].agg("\x1f".join, axis=1) if chosen else pd.Series("", index=arms.index)
        if c not in chosen and (arms[c].groupby(told).nunique() > 1).any():
            chosen.append(c)
    return [c for c in differing if c in chosen]


def _arm_texts(text: pd.DataFrame) -> pd.Series:
    """`key=value, ...` per row of `text` (the telling keys), a key the arm lacks left out where the arms
    stay told apart without it (`schedule.name=oneshot`, not `..., schedule.rounds=(absent)`)."""

    def spelled(keep_absent: bool) -> pd.Series:
        return text.apply(lambda r: ", ".join(f"{c}={v}" for c, v in r.items() if keep_absent or v != ABSENT), axis=1)

    own = spelled(False)
    arms = text.astype(str).agg("\x1f".join, axis=1)
    if (own != "").all() and own.groupby(arms).first().is_unique:
        return own
    return spelled(True)


def of_completed_configurations(runs: pd.DataFrame, comparisons: Iterable) -> pd.DataFrame:
    """The rows of `runs` (failed_runs: failed or unfinished runs) whose comparison key is among
    `comparisons`, those of the completed runs. A failed run of a configuration no completed run has
    (another train.lr, say) is no seed lost from any comparison or expected point: its comparison key,
    taken over every key of its config, is no completed run's (used by the verdicts by a key and by
    --expect's seeds_lost alike)."""
    if not len(runs) or "comparison" not in runs.columns:
        return runs.iloc[:0] if len(runs) else runs
    return runs[runs["comparison"].isin(set(comparisons))]


def _regrouped(failed: Optional[pd.DataFrame], values: pd.DataFrame, arm_columns: Sequence[str]) -> Optional[pd.DataFrame]:
    """The failed runs with the comparison key `_arms` gives the completed ones, so the verdicts by a
    key still name a seed whose run failed."""
    if failed is None or not len(failed):
        return failed
    failed = of_completed_configurations(failed, values["original_comparison"])
    return failed.assign(comparison=_held(failed, arm_columns, _held_columns(values, arm_columns)))


def unpaired_by(
    metrics: pd.DataFrame, by: str, metric: str = "accuracy", split: str = "test", failed: Optional[pd.DataFrame] = None
) -> list[str]:
    """One line per (other keys, sparsity, method variant) that ran with one value of the compared keys
    only: no arm to pair it with (a oneshot run at a sparsity no iterative run reached, say). Where runs
    of another value failed (`failed`: failed_runs), the line says so: they were run."""
    if not len(metrics) or "comparison" not in metrics.columns:
        return []
    values, arm_columns = _arms(final_values(metrics, metric, split), by)
    failed = _regrouped(failed, values, arm_columns)
    text = _as_text(values, arm_columns)
    lines = []
    for (group, sparsity, method), rows in values.groupby(["comparison", "target_sparsity", "method_variant"], sort=True):
        arms = text.loc[rows.index].drop_duplicates()
        if len(arms) == 1:
            spelled = ", ".join(f"{c}={v}" for c, v in arms.iloc[0].items())
            experiments = ", ".join(sorted(rows["experiment"].astype(str).unique())) if "experiment" in rows.columns else group
            lines.append(
                f"{method} at sparsity {sparsity:g} [{spelled}] (experiment {experiments}): not compared, no run of another "
                f"{by} value agrees with it on every other key (the Experiments table shows what differs)"
                + _failed_other_arms(failed, group, sparsity, str(rows["method"].iloc[0]), arms.iloc[0], by)
            )
    return lines


def _failed_other_arms(failed: Optional[pd.DataFrame], group, sparsity, method: str, arm: pd.Series, by: str) -> str:
    """'; 3 run(s) of another schedule value failed: LayerCollapse' for the failed runs of `method` in
    the regrouped `group` at `sparsity` whose compared keys differ from `arm`'s; '' when none."""
    if failed is None or not len(failed):
        return ""
    mine = failed[
        (failed["comparison"] == group)
        & (failed["method"] == method)
        & np.isclose(failed["target_sparsity"].astype(float), float(sparsity))
    ]
    other = mine[(_as_text(mine, list(arm.index)) != arm.to_numpy()).any(axis=1).to_numpy()] if len(mine) else mine
    if not len(other):
        return ""
    return f"; {len(other)} run(s) of another {by} value failed: {', '.join(sorted(other['error_type'].astype(str).unique()))}"


def _context_of(arm_columns: Sequence[str]) -> list[str]:
    """The context columns (dataset, model, schedule) whose config group --compare-by varies: in its
    comparisons they hold two values, not a setting of the group."""
    return [c for c in ("dataset", "model", "schedule") if any(a.startswith(c + ".") for a in arm_columns)]


def _spanned(part: pd.DataFrame, columns: Sequence[str]) -> dict:
    """Each context column's values in a --compare-by group, joined (`iterative, oneshot` when the
    schedule is what it compares), instead of its first row's."""
    return {c: ", ".join(sorted(part[c].astype(str).unique())) for c in columns if c in part.columns}


def without_metric(metrics: pd.DataFrame, metric: str, split: str) -> list[str]:
    """One line per method whose completed runs record their final sparse model's accuracy (on any
    split) but not `split` `metric` for it, in some or all of their (comparison key, sparsity)
    conditions: a metric plugin enabled for some methods only (`--metric`), or an experiment without a
    validation split (`dataset.val_fraction=0`, `metrics.splits=[test]`) in a `--split val` report.
    Those conditions drop out of the comparisons, and would otherwise go without a word. A method
    without the value anywhere gets one short line; one without it in some conditions names them."""
    if not len(metrics):
        return []
    final = metrics[metrics["phase"].isin(("finetuned", "pruned"))]
    keys = [c for c in ("comparison", "target_sparsity") if c in final.columns]
    ran = final.loc[final["metric"] == "accuracy", ["method", *keys]].astype(str).drop_duplicates()
    have = (
        final.loc[(final["split"].astype(str) == split) & (final["metric"] == metric), ["method", *keys]].astype(str).drop_duplicates()
    )
    missing = ran.merge(have, how="left", indicator=True).query("_merge == 'left_only'")
    lines = []
    why = f"no run records {split} {metric} for its final sparse model, not compared"
    for method, part in missing.groupby("method", sort=True):
        if method not in set(have["method"]) or len(keys) < 2:
            lines.append(f"{method}: {why}")
            continue
        for comparison, cells in part.groupby("comparison", sort=True):
            sparsities = ", ".join(f"{s:g}" for s in sorted(cells["target_sparsity"].astype(float).unique()))
            lines.append(
                f"{method} at sparsit{'y' if ', ' not in sparsities else 'ies'} {sparsities} (comparison {comparison}): {why}"
            )
    return lines


def failed_note(failed: Optional[pd.DataFrame], method: str, sparsity: float, where: Optional[dict] = None) -> str:
    """' (2 run(s) failed: LayerCollapse)' for the failed runs (`failed_runs`) of `method` at `sparsity`
    (and, in `where`, the config values `dataset.name`, `model.name` or `comparison` they must have);
    '' when none failed. A baseline "not run" whose runs failed was run: the line says so."""
    if failed is None or not len(failed):
        return ""
    mine = failed[(failed["method"] == method) & np.isclose(failed["target_sparsity"].astype(float), float(sparsity))]
    for column, value in (where or {}).items():
        mine = mine[mine[column].astype(str) == str(value)] if column in mine.columns else mine.iloc[:0]
    if not len(mine):
        return ""
    types = ", ".join(sorted(mine["error_type"].astype(str).unique()))
    return f" ({len(mine)} run(s) failed: {types})"
