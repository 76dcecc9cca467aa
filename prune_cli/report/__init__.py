"""`prune-report RESULTS_DIR`: turn a results folder into summary tables, plots and an
evaluation-standards check (analysis.md section 4, R1-R8).

Reads the per-run files of every completed run (results_dir/runs/<run id>/, the source of truth;
the shared CSVs are only used when there are no run directories), joins each run with the dense
baseline of the same seed, aggregates over seeds (mean, std, n, Student-t confidence interval) and
writes into RESULTS_DIR/report/ (or --out):

  summary.csv             one row per (condition, phase, split, metric): n_seeds, mean, std, ci_low,
                          ci_high, ci_half, dense_mean, delta_mean (value - dense, per seed), delta_ci_*
  comparisons.csv         paired comparisons of each method with the baseline per (comparison key,
                          sparsity): mean difference, t and bootstrap intervals, t / Wilcoxon tests,
                          Cohen's d_z, Holm-adjusted p, verdict (compare.py, docs/report.md)
  report_card.csv         which evaluation recommendations of Blalock et al. (MLSys 2020) the folder
                          meets, and what is missing (card.py)
  summary.md              experiments, report card, verdicts, accuracy / compression tables, intensification table, the standards check
  intensification.csv     recall-distortion statistics over seeds (analysis/recall_distortion.py)
  per_class_summary.csv   per-class recall changes over seeds, with intervals
  worst_class.csv         per condition: the worst class's recall change and the per-model worst
                          change, with intervals (disparate.py)
  pie.csv                 pruning-identified exemplars (Hooker et al. 2019): test examples whose
                          modal prediction over the pruned seeds differs from the dense seeds'
                          however ties are broken (disjoint sets of most frequent labels)
  pie_per_class.csv       their counts per class and condition
  standards.txt           the evaluation-standards check (also printed)
  scaling_fit.csv / .png  the pruning scaling law of Rosenfeld et al. (ICML 2021) fitted per family of
                          runs, parameters ± standard error and fit error, data vs fit (scaling.py)
  report.html             summary.md on one self-contained page, figures embedded (html.py)
  *.png                   accuracy_vs_compression, recall_change_vs_dense, regions_vs_sparsity,
                          hessian_density, ntk_vs_width (each when its data exists)

Once it has written its own files, it removes those of these files (build.REPORT_FILES) that it did
not write, so that none of an earlier report stays behind (and says which); other files in the folder
are left alone, and a report that fails part-way leaves the earlier one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["build_report", "main"]


def __getattr__(name: str):
    """`build_report` is prune_cli.report.build.build_report, imported on first use (see build.py)."""
    if name == "build_report":
        from .build import build_report

        return build_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _cannot_write(err: OSError, out: Path) -> None:
    """A file the report could not write or read (a full disk, a quota, a permission): one line naming it and
    why, exit 2, as prune-run says it (docs/robustness.md, "a full disk"), not tracebacks and exit 1; the
    staging folder is removed and an earlier report stays as it was (build.Staging). The report's own writes
    name their file (core/atomic_io), as it would be in `out` (not in the staging folder, removed by then); a full
    disk's error that still names none is put on the folder `out`.
    Any other error naming no file is not the environment's refusal: raised as it is."""
    import errno

    from ..core.errors import cannot_use
    from .build import STAGING_PREFIX

    where = err.filename if err.filename else (out if err.errno in (errno.ENOSPC, errno.EDQUOT) else None)
    if where is None:
        raise err
    inside = Path(where).relative_to(out).parts if Path(where).is_relative_to(out) else ()
    if inside and inside[0].startswith(STAGING_PREFIX):  # the staging folder is gone: the file as the report names it
        where = out.joinpath(*inside[1:])
    print(f"prune-report: error: {cannot_use(where, err)}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="prune-report",
        description=(
            "Summarise a prune-run results folder: seed-aggregated tables (mean, std, n, t-interval), "
            "plots, and an evaluation-standards check."
        ),
    )
    parser.add_argument("results_dir", type=Path, help="the results_dir of prune-run (holds runs/)")
    # a string, not a Path: Path("") is ".", and an empty --out must be refused, not the current directory
    parser.add_argument("--out", default=None, help="output folder (default RESULTS_DIR/report)")
    parser.add_argument(
        "--confidence",
        type=float,
        default=0.95,
        help="confidence level c of the intervals; the verdicts test at 1 - c (default 0.95: at 0.05)",
    )
    parser.add_argument("--split", default="test", choices=["test", "val"], help="split of the tables and plots")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument(
        "--baseline",
        default=None,
        help="method every other method is compared with, seed by seed (default: magnitude when present, else all pairs)",
    )
    parser.add_argument(
        "--metric",
        default="accuracy",
        help="what the paired comparisons compare (default accuracy; e.g. ece, loss, a metric plugin's scalar; "
        "one recorded on a single other split, such as mia_loss_auc or latency_ms, is compared there)",
    )
    parser.add_argument(
        "--compare-by",
        default=None,
        metavar="KEY",
        help="also compare the values of a config key or group that varies between experiments, seed by seed "
        "(e.g. schedule, schedule.restart_from, train.epochs): comparisons_by.csv",
    )
    parser.add_argument(
        "--expect",
        default=None,
        metavar="FILE_OR_PRESET",
        help="expected values (a file, or a name in configs/expected/): mark each point inside/outside its band (expect.csv)",
    )
    parser.add_argument(
        "--expect-strict",
        action="store_true",
        help="with --expect: exit 1 when a point is outside its band, of another configuration, was not run, has no value "
        "or is ambiguous, or when its mean leaves out a seed that failed, did not finish or has no value",
    )
    args = parser.parse_args(argv)
    if args.expect_strict and args.expect is None:
        parser.error("--expect-strict needs --expect FILE_OR_PRESET")
    from .inputs import confidence_problem

    if confidence_problem(args.confidence):
        parser.error(confidence_problem(args.confidence))
    if args.expect is not None:  # the values first, then the folders (build_report's order)
        from .expect import load_expected

        from .inputs import ReportInputError

        try:
            load_expected(args.expect)
        except ReportInputError as e:
            parser.error(str(e))
    from .inputs import out_problem, results_dir_problem

    problem = results_dir_problem(args.results_dir)
    if problem is None:
        problem = out_problem(
            args.out if args.out is not None else args.results_dir / "report", default=args.out is None, root=args.results_dir
        )
    if problem is not None:  # before any work: nothing read, nothing created
        parser.error(problem)
    from .build import build_report  # pandas, scipy: imported here, after the arguments are checked
    from .inputs import ReportInputError

    try:
        written = build_report(
            args.results_dir,
            Path(args.out) if args.out is not None else None,
            args.confidence,
            args.split,
            plots=not args.no_plots,
            baseline=args.baseline,
            expect=args.expect,
            compare_by=args.compare_by,
            metric=args.metric,
        )
    except ReportInputError as e:
        parser.error(str(e))
    except OSError as e:
        _cannot_write(e, Path(args.out) if args.out is not None else args.results_dir / "report")
    import pandas as pd

    from .expect import strict_failures

    print((written["standards.txt"]).read_text(), end="")
    card = pd.read_csv(written["report_card.csv"], keep_default_na=False)
    print(f"Report card (Blalock et al., MLSys 2020): {int(card['met'].sum())} of {len(card)} recommendations met")
    for r in card.itertuples():
        print(f"  [{'x' if r.met else ' '}] {r.recommendation}" + (f": missing {r.missing}" if r.missing else ""))
    failures = 0
    if args.expect is not None:
        if "expect.csv" not in written:
            print(f"Expected values ({args.expect}): no completed runs to check")
            failures = 1
        else:
            table = pd.read_csv(written["expect.csv"])
            counts = table["status"].value_counts()
            ambiguous, no_value = counts.get("ambiguous", 0), counts.get("no_value", 0)
            print(
                f"Expected values ({args.expect}): {counts.get('inside', 0)} inside, {counts.get('outside', 0)} outside, "
                f"{counts.get('missing', 0)} missing"
                + (f", {ambiguous} ambiguous" if ambiguous else "")
                + (f", {no_value} without a value" if no_value else "")
                + (f", {counts.get('config_differs', 0)} of another configuration" if counts.get("config_differs", 0) else "")
                + f" of {len(table)} points"
            )
            lost = table["seeds_lost"].fillna(0) > 0 if "seeds_lost" in table.columns else False
            # every point not inside, and those inside on the surviving seeds only (a seed's run failed, or it has no value)
            text = {"method": object, "note": object, "match": object}  # columns that may be all NaN (float)
            shown = table[(table["status"] != "inside") | lost].astype(text)
            for r in shown.fillna({"method": "any method", "note": "", "match": ""}).itertuples():
                match = f" [{r.match}]" if r.match else ""  # points that differ only by `match:` told apart
                where = f"{r.method} at sparsity {r.sparsity:g}{match} ({r.phase} {r.metric})"
                if r.status == "ambiguous":
                    print(f"  {r.status}: {where}: {r.note}")
                    continue
                got = {"missing": f"no runs{f' ({r.note})' if r.note else ''}", "no_value": r.note}.get(
                    r.status, f"{r.measured:.4g} ({r.n_seeds} seeds)"
                )
                left_out = f"; {r.note}" if r.status in ("inside", "outside", "config_differs") and r.note else ""
                print(f"  {r.status}: {where}: expected {r.expected:g} ± {r.band:g}, got {got}{left_out}")
            failures = strict_failures(table)
    print("written: " + ", ".join(str(p) for p in written.values()))
    if args.expect_strict and failures:
        print(
            f"prune-report: {failures} expected point(s) outside their band, missing, without a value, ambiguous, of "
            "another configuration or "
            "measured without a seed that failed or did not finish or that has no value (--expect-strict)",
            file=sys.stderr,
        )
        raise SystemExit(1)
