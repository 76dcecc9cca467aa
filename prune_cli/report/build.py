"""`build_report`: the body of prune-report (the package docstring lists what it writes). Kept out of
prune_cli/report/__init__.py, which the `prune-report` entry point imports, so that the command
checks its arguments before it loads pandas and scipy. Imports neither scipy.stats nor matplotlib
(tests/test_report_startup.py): the figure worker (painter.py) is forked by `build_report` after
these imports, and would otherwise wait for them."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile

from concurrent.futures import Future
from pathlib import Path
from typing import Optional

import pandas as pd

from ..analysis.recall_distortion import summarise_across_seeds, summarise_classes_across_seeds
from ..core import processes
from ..core.atomic_io import atomic_write_csv, atomic_write_text
from .card import report_card
from .compare import (
    check_baseline,
    check_compare_by,
    better_direction,
    check_metric,
    check_split,
    compare_methods,
    failed_lines,
    failed_runs,
    final_values,
    left_out_runs,
    of_completed_configurations,
    unpaired,
    unpaired_by,
    without_metric,
)
from .disparate import disparate_markdown, pruning_identified_exemplars, worst_class_drops
from .expect import check_expected, check_values, expect_markdown, load_expected
from .achieved import run_sparsity
from .html import write_html
from .figures import PLOT_ORDER
from .inputs import ReportInputError, confidence_problem, out_problem, results_dir_problem
from .levels import percent
from .load import RUN_TABLES_READ, condition_keys, load_results, mixed_code_versions
from .mixing import left_out_notes, without_mixed
from .painter import PLOTS, SCALING, Painter
from .points import ntk_points
from .regions import regions_table
from .scaling import fit_families, scaling_points, summary_lines
from .summary import (
    accuracy_markdown,
    comparisons_markdown,
    dense_by_seed,
    experiments_markdown,
    final_phase,
    item,
    markdown_table,
    one_line,
    recall_distortion_rows,
    standards_check,
    summarise,
)


def _all_accuracy_mixed(summary: pd.DataFrame, split: str) -> bool:
    """Whether the final `split` accuracy has rows and every one is a condition left out by the mixing rule."""
    if not len(summary) or "mixed" not in summary.columns:
        return False
    final = final_phase(summary)
    acc = final[(final["metric"] == "accuracy") & (final["split"] == split)]
    return bool(len(acc)) and bool(acc["mixed"].notna().all())


def _without_runs(table: pd.DataFrame, runs: set[str]) -> pd.DataFrame:
    """`table` without the rows of `runs` (run ids)."""
    if not runs or not len(table) or "run_id" not in table.columns:
        return table
    return table[~table["run_id"].astype(str).isin(runs)]


def build_report(
    root: Path,
    out: Optional[Path] = None,
    confidence: float = 0.95,
    split: str = "test",
    plots: bool = True,
    baseline: Optional[str] = None,
    expect: Optional[str] = None,
    parallel: Optional[bool] = None,
    compare_by: Optional[str] = None,
    metric: str = "accuracy",
) -> dict[str, Path]:
    """Write every table and plot for the results folder `root`; returns {artifact name: path}.
    `baseline`: the method every other is compared with (default magnitude when present); a
    method not in the folder raises ValueError before anything is written, as does a `root` that is
    not a results_dir or an `out` that cannot be written (inputs.py). `expect`: an
    expected-values file or the name of one in configs/expected/ (expect.py); every point is
    marked inside / outside its band in expect.csv. `parallel`: draw the figures in a forked
    worker process while the statistics are computed (painter.py; default: when a second CPU is
    idle, painter.idle_cpu); False draws them in this process. The files are the same either way.
    `compare_by`: a config key or group that varies between the folder's experiments (`schedule`,
    `schedule.restart_from`): its values are compared too, seed by seed, in comparisons_by.csv and a
    section of summary.md (compare.py `_arms`); any other key raises ReportInputError first.
    `metric`: what the paired comparisons compare (default accuracy; `ece`, `loss`, a metric plugin's
    scalar): one the folder records on `split` for the final sparse model, else ReportInputError first."""
    if confidence_problem(confidence):
        raise ReportInputError(confidence_problem(confidence))
    root = Path(root)
    expected = load_expected(expect) if expect is not None else None
    problem = results_dir_problem(root)  # a run directory, a runs/ folder, an empty folder: nothing created
    if problem is None:
        problem = out_problem(out if out is not None else root / "report", default=out is None, root=root)
    if problem is not None:
        raise ReportInputError(problem)
    stage = Staging(Path(out) if out is not None else root / "report")
    with _stopped_by_signals():
        try:
            with Painter(parallel if plots else False) as painter:
                painter = painter if plots else None
                written = _build(root, stage, confidence, split, baseline, expected, expect, painter, compare_by, metric)
            written = stage.publish(written)
            remove_earlier_report(stage.out, written)
            return written
        finally:
            stage.discard()


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class _stopped_by_signals:
    """While a report is built, SIGTERM and SIGHUP (a SLURM time limit, a closed terminal) raise
    SystemExit(128 + signal) in this process, as Ctrl-C raises KeyboardInterrupt: build_report's clean-up
    then removes the staging folder, which the signals' default action (ending the process at once) left
    behind, and the exit code is the shell's for that signal. The figure worker (painter.py), forked while
    these handlers are set, inherits them: there a signal ends the process as by default, so that only
    this process cleans up and reports. The previous handlers are restored afterwards; nothing is changed
    off the main thread (signal handlers can only be set there)."""

    def __enter__(self):
        import threading

        self.previous: dict[int, object] = {}
        if threading.current_thread() is not threading.main_thread():
            return self
        owner = os.getpid()

        def stop(signum, frame):
            if os.getpid() != owner:  # the forked figure worker: end as the signal's default action does
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
                return
            raise SystemExit(128 + signum)

        for signum in STOP_SIGNALS:
            previous = signal.getsignal(signum)
            if previous is signal.SIG_DFL:  # an ignored signal (nohup) stays ignored; a caller's own handler stays
                self.previous[signum] = previous
                signal.signal(signum, stop)
        return self

    def __exit__(self, *exc) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)


STAGING_PREFIX = ".prune-report-"


def _staging_owner() -> str:
    """'<pid>@<host>~<pid namespace>@' of this process, the part of its staging folder's name after
    STAGING_PREFIX (a host name may hold '-', never '@' or '~'; core/processes.py says why the namespace)."""
    return f"{os.getpid()}@{processes.here()}@"


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the staging folders in `out` of reports on this host whose process has ended (a report
    killed outright, SIGKILL, could not remove its own); returns them. A folder of a report still
    running (another report into the same folder) or of another host or pid namespace (a shared file
    system, a container sharing the host's name: there a pid says nothing here) is left alone, as is
    one named otherwise."""
    host = processes.here()
    removed = []
    for folder in out.glob(STAGING_PREFIX + "*"):
        parts = folder.name[len(STAGING_PREFIX) :].split("@")
        if len(parts) != 3 or parts[1] != host or not parts[0].isdigit() or not folder.is_dir() or folder.is_symlink():
            continue
        pid = int(parts[0])
        if pid != os.getpid() and not processes.alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


class Staging:
    """Where a report is written before it is moved into its folder `out`: a hidden folder inside it,
    on the same file system, so that each file's move is a rename. A report that stops part-way (an
    error, a Ctrl-C, SIGTERM or SIGHUP) then leaves the earlier report as it was, not new tables beside
    an earlier or missing summary.md, and no folder where there was none (`discard`). The folder's name
    holds the process id and host of its report (`.prune-report-<pid>@<host>@*`), so that a later report
    can remove it if the process was killed outright (`remove_stale_staging`)."""

    def __init__(self, out: Path):
        self.out = out
        self.path: Optional[Path] = None
        self.created: list[Path] = []  # the folders `open` made, innermost first
        self.published = False

    def open(self) -> Path:
        """Create `out` (and its missing parents) and the staging folder in it; returns the latter."""
        missing = self.out
        while not missing.exists():
            self.created.append(missing)
            missing = missing.parent
        self.out.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(self.out)
        self.path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX + _staging_owner(), dir=self.out))
        return self.path

    def publish(self, written: dict[str, Path]) -> dict[str, Path]:
        """Move every written file into `out`, summary.md and report.html last; returns their new paths."""
        last = ("summary.md", "report.html")
        order = [n for n in written if n not in last] + [n for n in last if n in written]
        moved = {}
        for name in order:
            target = self.out / written[name].name
            os.replace(written[name], target)
            moved[name] = target
        self.published = True
        return {name: moved[name] for name in written}

    def discard(self) -> None:
        """Remove the staging folder, and after a failure the folders `open` created, where empty."""
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
        if not self.published:
            for folder in self.created:
                try:
                    folder.rmdir()
                except OSError:
                    break


# Every file a report writes into its folder (docs/report.md "Output folder"). A report first removes
# those of an earlier one, so that none it does not write again (a comparison whose runs are gone, the
# figures of a run with plots before --no-plots, expect.csv before a run without --expect) is left
# beside the new report; any other file in the folder is left alone.
REPORT_FILES = (
    "comparisons.csv",
    "comparisons_by.csv",
    "summary.csv",
    "intensification.csv",
    "per_class_summary.csv",
    "worst_class.csv",
    "pie.csv",
    "pie_per_class.csv",
    "expect.csv",
    "report_card.csv",
    "standards.txt",
    "scaling_fit.csv",
    "scaling_fit.png",
    "summary.md",
    "report.html",
    *PLOT_ORDER,
)


def remove_earlier_report(out: Path, written: dict[str, Path]) -> list[Path]:
    """Remove the files of REPORT_FILES from `out` that this report did not write (files and links only,
    never a folder), once it has written its own: a report that fails or is stopped part-way leaves the
    earlier one in place. Says which it removed; returns them."""
    removed = []
    for name in REPORT_FILES:
        path = out / name
        if name not in written and (path.is_symlink() or path.is_file()):
            path.unlink()
            removed.append(path)
    if removed:
        names = ", ".join(p.name for p in removed)
        print(f"prune-report: removed {names} of an earlier report (this report does not write them)", file=sys.stderr)
    return removed


def _build(
    root: Path,
    stage: Staging,
    confidence: float,
    split: str,
    baseline: Optional[str],
    expected,
    expect: Optional[str],
    painter: Optional[Painter],
    compare_by: Optional[str] = None,
    metric: str = "accuracy",
) -> dict[str, Path]:
    """build_report's body: each figure is handed to `painter` as soon as its data exists (None: no plots).
    Every file is written into `stage`'s folder, opened once the checks have passed (they create nothing)."""
    figures: dict[str, Future] = {}

    def draw(name: str, function: str, *args, module: str = PLOTS) -> None:
        if painter is not None:
            figures[name] = painter.submit(module, function, *args)

    folder = load_results(root)
    metrics = folder.table("metrics.csv")
    check_split(metrics, split)  # a split no run records, or a bad baseline: nothing created
    # the split the comparisons read: --split, or the one split a metric such as mia_loss_auc is recorded on
    compared = check_metric(metrics, metric, split)
    values = final_values(metrics, metric, compared) if len(metrics) and "comparison" in metrics.columns else pd.DataFrame()
    ran = set(metrics["method"].astype(str)) if len(metrics) else set()
    check_baseline(values, baseline, folder.incomplete_methods, ran, f"{compared} {metric}")  # among the methods with a value of it
    check_compare_by(metrics, compare_by, folder.key_source)
    if expected is not None:  # a typo in the expected values (a phase, metric, split, match key, method): nothing created
        check_values(expected, metrics, folder.configs, folder.incomplete_methods)
    out = stage.open()
    # The figures' data first, in the order the worker draws them, so that it is not left waiting
    # while this process imports scipy.stats for the comparisons (docs/report.md "Speed").
    # a run without metrics.csv is left out of every figure too (RUN_TABLES_READ), not only of the tables
    no_metrics = {run.split(" (")[0] for run in folder.without_table().get("metrics.csv", [])}
    regions = _without_runs(folder.table("regions.csv"), no_metrics)
    # each run's achieved sparsity: the regions and recall figures draw a condition that missed its target
    # where it reached, as the accuracy figure does (achieved.py)
    sparsity = run_sparsity(metrics) if len(metrics) else None
    draw("regions_vs_sparsity.png", "regions_vs_sparsity", regions, out, confidence, sparsity)
    draw("hessian_density.png", "hessian_density", _without_runs(folder.table("hessian_density.csv"), no_metrics), out)
    if len(metrics):
        ntk = metrics[metrics["metric"].astype(str).str.startswith("ntk_")]  # all that ntk_vs_width reads
        draw("ntk_vs_width.png", "ntk_vs_width", ntk, folder.configs if len(ntk) else {}, out, confidence)
    summary = summarise(metrics, confidence) if len(metrics) else pd.DataFrame()
    dense_seeds = dense_by_seed(metrics, split)
    draw("accuracy_vs_compression.png", "accuracy_vs_compression", summary, out, split, folder.key_source == "config", dense_seeds)
    rd = _without_runs(recall_distortion_rows(folder), no_metrics)
    rd_split = rd[(rd["split"] == split) & (rd["phase"] != "dense")] if len(rd) else rd
    per_class, rd_notes = pd.DataFrame(), []
    if len(rd_split):  # a condition whose seed has runs of several configurations is left out (mixing.py)
        condition = condition_keys(rd_split)
        kept, mixed = without_mixed(rd_split, condition)
        rd_notes = left_out_notes(mixed, condition, rd_split)
        rd_split = kept
    if len(rd_split):
        keys = condition_keys(rd_split) + ["split", "phase"]
        per_class = summarise_classes_across_seeds(rd_split, keys=keys, confidence=confidence)
        draw("recall_change_vs_dense.png", "recall_change_vs_dense", per_class, out, sparsity)
    scaling_md, scaling_files = _scaling(folder, out, split, confidence, draw)  # its files join `written` after the plots are drawn

    # `written` in the order of the previous versions (the command prints it)
    written: dict[str, Path] = {}
    failed = failed_runs(folder.failed, folder.failed_configs)  # named in the verdicts their seeds are missing from
    unfinished = failed_runs([{"run": run} for run in folder.unfinished], folder.unfinished_configs)  # and these
    # completed runs left out for their config.yaml: named where their seed has no partner, and in --expect
    why_left_out = {
        **{name: "no config.yaml" for name in folder.without_config},
        **{n: "config.yaml unreadable" for n in folder.bad_config},
    }
    left_out = left_out_runs(root, list(why_left_out), why_left_out)
    family = "the method comparisons of this report" if compare_by is not None else ""
    # what the comparisons of methods and those of --compare-by's values share: the metric, the test level,
    # and the seeds left out (failed, unfinished, left out for their config.yaml)
    # and the completed runs, whose seeds without a value (a metrics.csv cut to its header) are not seeds never run
    common = dict(
        metric=metric,
        split=compared,
        confidence=confidence,
        failed=failed,
        unfinished=unfinished,
        left_out=left_out,
        completed=folder.runs,
    )
    comparisons = compare_methods(metrics, baseline, family=family, **common)
    if len(comparisons):
        atomic_write_csv(comparisons, out / "comparisons.csv")
        written["comparisons.csv"] = out / "comparisons.csv"
    by_table = pd.DataFrame()
    if compare_by is not None:
        by_table = compare_methods(metrics, by=compare_by, **common)
        if len(by_table):
            atomic_write_csv(by_table, out / "comparisons_by.csv")
            written["comparisons_by.csv"] = out / "comparisons_by.csv"
    if len(summary):
        atomic_write_csv(summary, out / "summary.csv")
        written["summary.csv"] = out / "summary.csv"
    intens = worst = pd.DataFrame()
    if len(rd_split):
        intens = summarise_across_seeds(rd_split, keys=keys, confidence=confidence)
        worst = worst_class_drops(rd_split, confidence)
        atomic_write_csv(intens, out / "intensification.csv")
        atomic_write_csv(per_class, out / "per_class_summary.csv")
        atomic_write_csv(worst, out / "worst_class.csv")
        written.update(
            {
                "intensification.csv": out / "intensification.csv",
                "per_class_summary.csv": out / "per_class_summary.csv",
                "worst_class.csv": out / "worst_class.csv",
            }
        )
    pie, pie_classes, pie_notes = pruning_identified_exemplars(folder, split)
    if len(pie_classes):
        atomic_write_csv(pie, out / "pie.csv")
        atomic_write_csv(pie_classes, out / "pie_per_class.csv")
        written.update({"pie.csv": out / "pie.csv", "pie_per_class.csv": out / "pie_per_class.csv"})

    expectations = None
    if expected is not None:
        lost = {
            r["run"]: (folder.failed_configs[r["run"]], f"failed ({r.get('error_type', '?')})")
            for r in folder.failed
            if r["run"] in folder.failed_configs
        }
        lost.update({run: (config, "did not finish") for run, config in folder.unfinished_configs.items()})
        incomplete = dict(lost)  # all of them: a point's note says when the runs of the file's name all failed
        # only runs of a configuration a completed run has, as the verdicts count them
        completed = metrics["comparison"] if "comparison" in metrics.columns else []
        kept = {r for runs in (failed, unfinished) for r in of_completed_configurations(runs, completed).get("run", [])}
        lost = {run: why for run, why in lost.items() if run in kept}
        # a run left out for its config.yaml: attributed by its metrics.csv's method, sparsity and seed (no
        # match: keys, which need the config)
        for r in left_out.itertuples():
            config = {"name": r.name, "method": {"name": r.method}, "seed": r.seed, "sparsity": r.target_sparsity}
            lost[r.run] = (config, f"left out ({r.why})")
        expectations = (
            check_expected(expected, metrics, folder.configs, confidence, lost, folder.runs, folder.key_source, incomplete)
            if len(metrics)
            else None
        )
        if expectations is not None:
            atomic_write_csv(expectations, out / "expect.csv")
            written["expect.csv"] = out / "expect.csv"

    card = report_card(metrics, folder.runs, split, failed)
    atomic_write_csv(card, out / "report_card.csv")
    written["report_card.csv"] = out / "report_card.csv"

    # each line one line: a config value with a line break in a label must not end the code block or add a line
    standards = [one_line(line) for line in standards_check(folder, summary, split, failed)]
    atomic_write_text(out / "standards.txt", "\n".join(standards) + "\n")  # a full disk: an error naming the file
    written["standards.txt"] = out / "standards.txt"

    md = [
        f"# Report: {one_line(root)}",
        "",
        f"Completed runs: {len(folder.configs) or metrics.get('run_id', pd.Series()).nunique()}" + _left_out_count(folder) + "; "
        f"failed: {len(folder.failed)}; unfinished: {len(folder.unfinished)}. Means over seeds ± std; "
        f"{percent(confidence)} Student-t intervals.",
        "",
    ]
    if folder.without_config:
        md += [
            one_line(
                f"Left out, completed but without the config.yaml that holds their experiment key: {', '.join(folder.without_config)}."
            ),
            "",
        ]
    if folder.bad_config:
        md += [
            one_line(
                "Left out, completed but with a config.yaml that cannot be read (their experiment key): "
                + "; ".join(f"{name} ({why})" for name, why in folder.bad_config.items())
                + "."
            ),
            "",
        ]
    lacking = folder.without_table()
    if lacking:
        md += [
            one_line(
                "Completed runs without a table they write, left out of what reads it: "
                + "; ".join(f"{name} ({RUN_TABLES_READ[name]}): {', '.join(runs)}" for name, runs in lacking.items())
                + "."
            ),
            "",
        ]
    for name, rows in folder.text_values.items():
        if rows:
            md += [one_line(f"{name} rows whose value is not a number, left out: {'; '.join(rows)}."), ""]
    for name, rows in folder.repeated.items():
        if rows:
            twice = f"{name} rows recorded twice with different values, that metric of that run left out: {'; '.join(rows)}."
            md += [one_line(twice), ""]
    if folder.skipped:
        md += [one_line("Run directories not read: " + "; ".join(f"{name} ({why})" for name, why in folder.skipped.items()) + "."), ""]
    mixed_code = mixed_code_versions(folder)
    if mixed_code:
        md += [
            "Seeds made by different code, averaged as they are (their numbers may differ by more than the seed; "
            "to compare like with like, rerun the experiment's seeds with one version, in a fresh results_dir): "
            + one_line("; ".join(mixed_code))
            + ".",
            "",
        ]
    if len(folder.runs):
        source = (
            ""
            if folder.key_source == "config"
            else (
                " Only the shared CSVs are here (no run directories): experiments are told apart by their"
                " context columns, not by options such as epochs, widths or accel.precision; where one seed has runs of several"
                " configurations (config_hash) under one key, that key is not averaged (the verdicts and tables say so)."
            )
        )
        md += [
            "## Experiments",
            "",
            "Runs with the same experiment key differ only by seed; shown: the config keys that vary in this folder." + source,
            "",
            experiments_markdown(folder),
            "",
        ]
    met = int(card["met"].sum())
    md += [
        f"## Report card (Blalock et al., MLSys 2020): {met} of {len(card)} recommendations met",
        "",
        markdown_table(card.assign(met=card["met"].map({True: "yes", False: "no"}))),
        "",
    ]
    if expectations is not None:
        md += ["## Expected values", "", expect_markdown(expectations, expected), ""]
    alone = unpaired(metrics, baseline, metric, split=compared, failed=failed) + failed_lines(
        metrics, failed, metric, split=compared, unfinished=unfinished
    )
    alone += without_metric(metrics, metric, compared)
    direction = _direction_lines(metric, compared, split)
    if len(comparisons) or alone:
        family = "the method comparisons of this report" if compare_by is not None else "all the comparisons of this report"
        shown = comparisons_markdown(comparisons, confidence, family) if len(comparisons) else ""
        title = one_line("## Paired comparisons" + (f" ({compared} {metric})" if metric != "accuracy" else ""))
        md += [title, "", *direction, *[f"- {item(line)}" for line in alone], *([""] if alone else []), shown, ""]
    if compare_by is not None:
        alone = unpaired_by(metrics, compare_by, metric, split=compared, failed=failed) + without_metric(metrics, metric, compared)
        shown = comparisons_markdown(by_table, confidence, "the comparisons of this section") if len(by_table) else ""
        md += [
            one_line(f"## Paired comparisons by {compare_by}" + (f" ({compared} {metric})" if metric != "accuracy" else "")),
            "",
            *direction,
            one_line(
                f"Each method's runs with different values of {compare_by} and the same value of every other key, paired by "
                "seed (comparisons_by.csv; --baseline applies to the method comparisons only)."
                + (
                    f" The values of {compare_by} enter the data or the dense model's training, so each arm has a dense model "
                    "of its own, and the paired difference includes theirs."
                    if compare_by.split(".")[0] in ("dataset", "train", "data_pruning", "model")
                    else ""
                )
            ),
            "",
            *[f"- {item(line)}" for line in alone],
            *([""] if alone else []),
            shown or "No method ran with two values of it under otherwise equal keys.",
            "",
        ]
    if len(summary):
        md += [f"## Accuracy ({split} split, final sparse model)", "", accuracy_markdown(summary, split), ""]
    if len(intens) or rd_notes:
        shown = [markdown_table(_intensification_table(intens)), ""] if len(intens) else []
        md += ["## Recall distortion (intensification statistics over seeds)", "", *shown, *[f"- {item(n)}" for n in rd_notes], ""]
    disparate = disparate_markdown(worst, pie_classes, summary, split)
    if disparate or pie_notes or rd_notes:
        md += [
            "## Disparate impact",
            "",
            "Recall changes in accuracy points against the dense model of the same seed; worst class = the lowest mean "
            "change over seeds (its interval ignores that it was selected), per-model worst = each seed's own lowest change. "
            + _pie_text(split, "pie.csv" in written, folder.key_source == "config"),
            "",
            disparate,
            *[f"\n- {item(n)}" for n in rd_notes + pie_notes],
            "",
        ]
    md += scaling_md
    md += ["## Evaluation standards", "", "```", *standards, "```", ""]

    if "scaling_fit.png" in figures and (path := figures["scaling_fit.png"].result()) is not None:
        scaling_files["scaling_fit.png"] = path
    written.update(scaling_files)
    drawn = {name: path for name in PLOT_ORDER if name in figures and (path := figures[name].result()) is not None}
    written.update(drawn)
    drawn.update({k: v for k, v in scaling_files.items() if k.endswith(".png")})  # embedded in report.html too
    # the figure's points left out (a seed with runs of several configurations, mixing.py): said under its list
    regions_points = regions_table(regions) if painter is not None else None
    plot_notes = regions_points.notes if regions_points is not None else []
    if regions_points is not None and len(regions_points.table) and "regions_vs_sparsity.png" not in drawn:
        plot_notes = ["regions_vs_sparsity.png is not drawn: no run's regions were counted"] + plot_notes
    ntk_drawn = ntk_points(metrics, folder.configs) if painter is not None and len(metrics) else None
    plot_notes += ntk_drawn.notes if ntk_drawn is not None else []
    if painter is not None and "accuracy_vs_compression.png" not in drawn and _all_accuracy_mixed(summary, split):
        plot_notes.append(
            "accuracy_vs_compression.png is not drawn: every condition's runs mix configurations for one seed and are not "
            "averaged (the accuracy table says which)"
        )
    if drawn or plot_notes:
        md += ["## Plots", ""] + [f"![{name}]({path.name})" for name, path in drawn.items()] + [""]
        md += [f"- {item(n)}" for n in plot_notes] + ([""] if plot_notes else [])
    atomic_write_text(out / "summary.md", "\n".join(md))
    written["summary.md"] = out / "summary.md"
    written["report.html"] = write_html("\n".join(md), out, f"prune-report: {root}", figures=drawn)  # only these are embedded
    return written


def _direction_lines(metric: str, compared: str, split: str) -> list[str]:
    """With --metric: which value is better (a verdict's > and < compare values: "random < magnitude" in
    loss is the better model), and the split compared when it is not --split's; [] for accuracy."""
    if metric == "accuracy":
        return []
    better = better_direction(metric)
    if better == "closer to 0.5":  # a membership attack's AUC or accuracy: below 0.5 leaks as much as above it
        text = f"{metric} closer to 0.5 is better (less leakage of the training set; below 0.5 an attacker reverses the attack); "
    elif better:
        text = f"{better.capitalize()} {metric} is better; "
    else:
        text = f"Which {metric} is better is not known to the report; "
    text += "a verdict's > and < compare the values."
    if compared != split:
        text += f" {metric} is recorded on the {compared} split only, so it is compared there (not on --split {split})."
    return [one_line(text), ""]  # the metric's name is the folder's


def _pie_text(split: str, written: bool, run_dirs: bool) -> str:
    """What the Disparate impact section says of the PIEs: the split they are of and their files where
    this report wrote them, else what computing them needs (a folder of the shared CSVs alone has no
    predictions); it named pie.csv and test examples whatever was written."""
    what = (
        f"{split} examples whose modal prediction over the pruned seeds differs from the dense seeds' however ties are "
        "broken: the two sets of most frequent labels are disjoint (Hooker et al. 2019"
    )
    if written:
        return f"PIEs: {what}; pie.csv, per class in pie_per_class.csv)."
    if not run_dirs:
        return (
            f"PIEs ({what}) need the run directories' saved predictions (predictions.npz): this folder has only the "
            "shared CSVs, so none are listed."
        )
    return f"PIEs ({what}): none computed, no condition saved {split} predictions of its pruned and dense models (predictions.npz)."


def _left_out_count(folder) -> str:
    """' (and 1 left out: no config.yaml)' after the count of completed runs, for each reason a completed
    run was not read; '' when none was left out."""
    parts = [f"{len(folder.without_config)} left out: no config.yaml"] if folder.without_config else []
    parts += [f"{len(folder.bad_config)} left out: config.yaml unreadable"] if folder.bad_config else []
    return f" (and {'; '.join(parts)})" if parts else ""


def _intensification_table(intens: pd.DataFrame) -> pd.DataFrame:
    """The Recall distortion section's table: the final phases of intensification.csv, its main columns."""
    t = intens[(intens["phase"].isin(["finetuned", "pruned"]))]
    shown = ("experiment", "method", "schedule", "target_sparsity", "phase", "statistic", "n_seeds", "mean", "ci_low", "ci_high")
    return t[[c for c in shown if c in t.columns]]


def _scaling(folder, out: Path, split: str, confidence: float, draw) -> tuple[list[str], dict[str, Path]]:
    """The pruning scaling law (report/scaling.py): fit it to every family, write scaling_fit.csv,
    hand its figure to `draw` (the painter); return the summary.md lines and the files."""
    items = folder.results.items if folder.results is not None else None
    points = scaling_points(folder.table("metrics.csv"), folder.configs, split, items)
    if not len(points):
        return [], {}
    table, fitted = fit_families(points)
    written = {"scaling_fit.csv": out / "scaling_fit.csv"}
    atomic_write_csv(table, written["scaling_fit.csv"])
    draw("scaling_fit.png", "plot_fits", fitted, out, split, confidence, module=SCALING)
    return summary_lines(table), written
