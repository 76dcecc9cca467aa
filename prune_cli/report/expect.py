"""`prune-report --expect`: check a results folder against the values a preset is expected to
reproduce (published numbers, or numbers measured here for the offline presets).

An expected-values file (configs/expected/<preset>.yaml, or any file of the same form) holds the
run `name` its runs carry (a preset sets `name` to its own name), where its numbers come from
(`source`, a paper and its table), and one entry per operating point:

    name: synflow_vgg16_cifar10
    source: Tanaka et al., NeurIPS 2020, Figure 6
    metric: accuracy          # default for every point (a metrics.csv metric)
    split: test
    phase: final              # final = finetuned, else pruned; or dense, pruned, finetuned, round_<r>, ...
    points:
      - {method: synflow, sparsity: 0.99, value: 0.9008, band: 0.005}

For each point the runs with that name, method (`method.name`) and target sparsity (and the
`match` config values, e.g. {schedule.restart_from: rewind}) are averaged over seeds; the point is
`inside` when |mean - value| <= band, `outside` otherwise, and `missing` without runs. Where those
runs are of more than one configuration (their experiment keys differ: two allocations of one
method, other epochs under the same name), the point is `ambiguous`: no mean of different
configurations is measured, and `note` names the keys that differ and advises `match:`. A phase,
metric, split, match key or method that is a typo (`check_values`) stops prune-report before it writes
anything; a point of runs not made yet is `missing`. A `config:` key no run has makes the points
`config_differs` (a key of a plugin or a Python schema is no typo), with a did-you-mean in the note.
`match:` and `config:` values are compared as values of the run's type (`_same`: a run's 0.0005 is
`5e-4`, its text "1e3" is not 1000), and may be nested as in a config.yaml. A folder of only the shared
CSVs is measured from its rows' name, method, target_sparsity and seed (`_configs_from_columns`).
"""

from __future__ import annotations

import difflib
import json
import math
import re
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd
import yaml

from ..core.paths import configs_dir
from ..core.stats import t_interval
from ..results import experiment_keys, flatten_config
from .compare import ABSENT, final_values
from .inputs import ReportInputError

FILE_KEYS = {"name", "source", "status", "notes", "metric", "split", "phase", "points", "preset", "config"}
# The metrics every run records (prune_cli/metrics/classification.py per split, cost.py on the model;
# tests/test_expect.py checks the names against that code); optional and plugin metrics are known from
# the rows of the folder's runs.
CORE_METRICS = (
    "accuracy", "loss", "ece", "top5_accuracy", "mean_class_recall", "worst_class_recall", "params_total", "params_nonzero",
    "params_prunable", "prunable_nonzero", "sparsity_prunable", "sparsity_total", "compression_ratio", "flops_dense",
    "flops_sparse", "theoretical_speedup",
)  # fmt: skip
# The splits rows are recorded on: metrics.splits (test, val), the model's cost, train (Hessian, pruning
# limit), membership inference
SPLITS = ("test", "val", "model", "train", "membership")
# The phases prune-run records: dense, pruned, finetuned, round_<r> (iterative schedules), step_<n>
# (gradual pruning); `final` is --expect's own (finetuned, else pruned)
PHASES = ("final", "dense", "pruned", "finetuned", "round_<r>", "step_<n>")
PHASE_PATTERN = re.compile(r"final|dense|pruned|finetuned|round_\d+|step_\d+")
POINT_KEYS = {"method", "sparsity", "value", "band", "metric", "split", "phase", "match", "source"}
FINAL = "final"


def expected_dir() -> Path:
    return configs_dir() / "expected"


def available() -> list[str]:
    return sorted(p.stem for p in expected_dir().glob("*.yaml"))


def _bad(key: str, value: Any, allowed: str) -> ReportInputError:
    return ReportInputError(f"--expect: {key} = {value!r} is not allowed; expected {allowed}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_expected(spec: str) -> dict:
    """The checked content of an expected-values file: a path, or the name of a file in
    configs/expected/. Raises ReportInputError (a ValueError) naming the key, the value and what is allowed."""
    path = Path(spec)
    if not path.is_file():
        if "/" in spec or spec.endswith((".yaml", ".yml")) or spec not in available():
            allowed = "an expected-values file or one of: " + ", ".join(available())
            raise ReportInputError(f"--expect = {spec!r} is not allowed; expected {allowed}")
        path = expected_dir() / f"{spec}.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ReportInputError(f"--expect: {path} is not valid YAML: {e}") from None
    except UnicodeDecodeError as e:
        raise ReportInputError(f"--expect: {path} is not a text file (UTF-8 YAML expected): {e}") from None
    except OSError as e:
        raise ReportInputError(f"--expect: {path} cannot be read: {e}") from None
    if not isinstance(data, dict):
        raise _bad(str(path), type(data).__name__, "a mapping with keys " + ", ".join(sorted(FILE_KEYS)))
    unknown = set(data) - FILE_KEYS
    if unknown:
        raise _bad(f"{path}: key {sorted(unknown)[0]}", data[sorted(unknown)[0]], "one of the keys " + ", ".join(sorted(FILE_KEYS)))
    if not isinstance(data.get("name"), str):
        raise _bad(f"{path}: name", data.get("name"), "the run name of the preset's runs (a string)")
    if "config" in data:
        allowed = "a mapping of dotted config keys to the values the points were measured with"
        data["config"] = _dotted(f"{path}: config", data["config"], allowed)
    points = data.get("points")
    if not isinstance(points, list) or not points:
        raise _bad(f"{path}: points", points, "a non-empty list of {method, sparsity, value, band} entries")
    for i, p in enumerate(points):
        where = f"{path}: points[{i}]"
        if not isinstance(p, dict):
            raise _bad(where, p, "a mapping")
        unknown = set(p) - POINT_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise _bad(f"{where}.{key}", p[key], "one of the keys " + ", ".join(sorted(POINT_KEYS)))
        for key in ("value", "band"):
            if not _number(p.get(key)):
                raise _bad(f"{where}.{key}", p.get(key), "a finite number")
        if p["band"] < 0:
            raise _bad(f"{where}.band", p["band"], "a number >= 0 (the allowed absolute deviation)")
        if not _number(p.get("sparsity")) or not 0 <= p["sparsity"] < 1:
            raise _bad(f"{where}.sparsity", p.get("sparsity"), "a number in [0, 1)")
        if "match" in p:
            p["match"] = _dotted(f"{where}.match", p["match"], "a mapping of dotted config keys to values", empty=True)
    data["_path"] = str(path)
    return data


def _dotted(where: str, mapping: Any, allowed: str, empty: bool = False) -> dict[str, Any]:
    """A `config:` or `match:` as {dotted key: value}: a nested mapping (`{train: {epochs: 8}}`, the form of a
    config.yaml) is flattened into the dotted keys it stands for, as the runs' configs are. Before, a nested
    `config:` was compared as one key `train` that no run has, which matched nothing and passed every point.
    An empty mapping inside is a value (`match: {method.layer_densities: {}}`, a run's empty mapping), not
    a key to refuse; an empty `config:` itself is refused and an empty `match:` selects as none does, as before
    2026-12-04 (`empty`)."""
    if not isinstance(mapping, dict) or (not mapping and not empty):
        raise _bad(where, mapping, allowed)
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if not isinstance(key, str) or not key:
            raise _bad(f"{where} key", key, "a dotted config key (text)")
        if isinstance(value, dict) and value:
            for sub, leaf in _dotted(f"{where}.{key}", value, allowed).items():
                out[f"{key}.{sub}"] = leaf
        else:
            out[key] = value
    return out


_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_INTEGER = re.compile(r"[-+]?\d+")


def _lookup(config: Any, key: str) -> tuple[bool, Any]:
    """(found, value) of a dotted `key` in a run's nested config, the value as the run's config.yaml holds it
    (its type, which `_same` compares by; the flattened configs spell every leaf as text, and leave out an
    empty mapping). A key holding dots itself (`{"a.b": 1}`) is found too."""
    parts = key.split(".")
    for i in range(1, len(parts) + 1):
        head = ".".join(parts[:i])
        if isinstance(config, dict) and head in config:
            if i == len(parts):
                return True, config[head]
            found, value = _lookup(config[head], ".".join(parts[i:]))
            if found:
                return True, value
    return False, None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _same(run: Any, wanted: Any) -> bool:
    """Whether a run's config value is the file's `wanted` value; the run's type decides. Text is compared as
    text (str of the wanted value: a run named "1e3" is not `1000`, "1.10" is not `1.1`, a run's date text is
    YAML's date); a number as a number, text that is one parsed (YAML 1.1 reads `5e-4` as the text '5e-4'),
    integers exactly (seed 1733280001 is not 1733280000, which a relative 1e-9 took for one) and within a
    relative 1e-9 where a float is involved (2 and 2.0, 0.0005 and 5e-4); true/false exactly (true is not 1);
    null only null; lists and mappings element by element by the same rule."""
    if isinstance(run, (bool, np.bool_)):
        return isinstance(wanted, (bool, np.bool_)) and bool(run) == bool(wanted)
    if _is_number(run):
        if isinstance(wanted, str) and _NUMBER.fullmatch(wanted.strip()):
            text = wanted.strip()
            wanted = int(text) if _INTEGER.fullmatch(text) else float(text)
        if not _is_number(wanted):
            return False
        if isinstance(run, (int, np.integer)) and isinstance(wanted, (int, np.integer)):
            return int(run) == int(wanted)
        a, b = float(run), float(wanted)
        return a == b or math.isclose(a, b, rel_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    if isinstance(run, str):
        return not isinstance(wanted, (list, tuple, dict, type(None))) and str(wanted) == run
    if run is None:
        return wanted is None
    if isinstance(run, (list, tuple)):
        return isinstance(wanted, (list, tuple)) and len(run) == len(wanted) and all(map(_same, run, wanted))
    if isinstance(run, dict):
        if not isinstance(wanted, dict):
            return False
        by_name = {str(k): w for k, w in wanted.items()}  # YAML may read a key 1 as a number, a run's config as text
        return {str(k) for k in run} == set(by_name) and all(_same(v, by_name[str(k)]) for k, v in run.items())
    return run == wanted or str(run) == str(wanted)  # a type YAML reads (a date) that no rule above covers


def _text(value: Any) -> str:
    """A config value as the runs' flattened configs spell it (a mapping, an empty one too, as JSON; a YAML date
    as its text, which JSON would quote)."""
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    if not isinstance(value, (str, int, float, bool, list, tuple, type(None))):
        return str(value)
    return str(flatten_config(value).get(""))


def check_values(
    expected: dict,
    metrics: pd.DataFrame,
    configs: dict[str, dict],
    other_methods: Iterable[str] = (),
) -> None:
    """ReportInputError (exit 2, before prune-report writes anything) for a value of the expected-values
    file that is a typo rather than a point of runs not made yet: a phase, metric or split that prune-run
    never records and no run of the folder (`metrics`) has; a `match` key that is no config key of the
    folder's runs (`configs`; not checked without them, as in a folder of only the shared CSVs); a method
    that is neither one of prune-cli's (its method configs and scores) nor of a run of the folder
    (`other_methods`: those of failed and unfinished runs). The message names the key, the value and what
    is allowed, with the closest value. Before, each such point was `missing` ("got no runs"), as if its
    runs had not been made. A file-level `config` key is not checked here: keys of a plugin or a Python
    schema (dataset.cache_dir, train.l1) are set by no YAML and may be in no run of the folder, and a preset's
    key beside runs of another dataset is no typo; its points are `config_differs`, with a did-you-mean in
    the note (`_config_differs`)."""
    path = expected["_path"]
    column = {c: column_values(metrics, c) for c in ("phase", "metric", "split")}
    methods = sorted(
        {*_prune_cli_methods(), *column_values(metrics, "method"), *other_methods}
        | {str(cfg["method"]["name"]) for cfg in configs.values() if isinstance(cfg.get("method"), dict) and "name" in cfg["method"]}
    )
    config_keys = sorted({k for cfg in configs.values() for k in flatten_config(cfg)})

    def refuse(where: str, value: Any, allowed: str, choices: list[str]) -> None:
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.6)
        raise _bad(f"{path}: {where}", value, allowed + (f"; did you mean {close[0]!r}?" if close else ""))

    def check(where: str, key: str, value: Any) -> None:
        if key == "phase" and not PHASE_PATTERN.fullmatch(str(value)) and str(value) not in column["phase"]:
            shown = ", ".join(column["phase"]) or "none"
            refuse(
                where,
                value,
                f"a phase prune-run records ({', '.join(PHASES)}); the runs here have {shown}",
                [*PHASES, *column["phase"]],
            )
        if key == "metric" and str(value) not in CORE_METRICS and str(value) not in column["metric"]:
            known = sorted({*CORE_METRICS, *column["metric"]})
            refuse(where, value, "a metric of this folder's runs or one every run records: " + ", ".join(known), known)
        if key == "split" and str(value) not in SPLITS and str(value) not in column["split"]:
            known = sorted({*SPLITS, *column["split"]})
            refuse(where, value, "a split rows are recorded on: " + ", ".join(known), known)

    def config_key(where: str, key: str) -> None:
        # a key of an empty mapping (method.layer_densities: {}) is in no flattened config but is the run's
        if config_keys and key not in config_keys and not any(_lookup(cfg, key)[0] for cfg in configs.values()):
            top = str(key).split(".", 1)[0]
            near = [k for k in config_keys if k.split(".", 1)[0] == top]
            shown = (
                f"the {top}.* keys are {', '.join(near)}"
                if near
                else "its top-level keys are " + ", ".join(sorted({k.split(".", 1)[0] for k in config_keys}))
            )
            refuse(where, key, f"a dotted config key of this folder's runs (their config.yaml): {shown}", config_keys)

    for key in ("phase", "metric", "split"):
        if key in expected:
            check(key, key, expected[key])
    for i, p in enumerate(expected["points"]):
        for key in ("phase", "metric", "split"):
            if key in p:
                check(f"points[{i}].{key}", key, p[key])
        if p.get("method") is not None and str(p["method"]) not in methods:
            refuse(
                f"points[{i}].method",
                p["method"],
                "a method of prune-cli or of this folder's runs (a plugin's method is known once a run of it is in the folder): "
                + ", ".join(methods),
                methods,
            )
        for key in p.get("match") or {}:
            config_key(f"points[{i}].match", key)


def column_values(table: pd.DataFrame, column: str) -> list[str]:
    """The distinct values of `column` as text, sorted ([] without the column)."""
    return sorted(set(table[column].dropna().astype(str))) if column in table.columns else []


def _prune_cli_methods() -> set[str]:
    """The method names prune-run accepts without a plugin module on the command line: its method configs
    (configs/method/), the scores and method schemas its plugin index declares (read from the sources,
    nothing imported)."""
    from ..core import plugins

    names = {p.stem for p in (configs_dir() / "method").glob("*.yaml")}
    return names | set(plugins.names("score")) | (set(plugins.schema_names("method")) - {"base"})


def _selects(point: dict, config: dict, phase: str) -> bool:
    """Whether a run of `config` (already of the file's run name) is one of `point`'s: its method, target
    sparsity (any for a dense point) and `match` values."""
    method = config.get("method")
    return (
        (point.get("method") is None or (isinstance(method, dict) and method.get("name") == point["method"]))
        and (phase == "dense" or np.isclose(float(config.get("sparsity", math.nan)), point["sparsity"]))
        and all(_lookup(config, k)[0] and _same(_lookup(config, k)[1], v) for k, v in (point.get("match") or {}).items())
    )


def check_expected(
    expected: dict,
    metrics: pd.DataFrame,
    configs: dict[str, dict],
    confidence: float = 0.95,
    lost: Optional[dict[str, tuple[dict, str]]] = None,
    completed: Optional[pd.DataFrame] = None,
    key_source: str = "config",
    incomplete: Optional[dict[str, tuple[dict, str]]] = None,
) -> pd.DataFrame:
    """One row per expected point: the measured mean over seeds, its interval, and the status.
    `lost`: {run: (its config.yaml, 'failed (LayerCollapse)' or 'did not finish')} for the runs that did not
    complete, only those of a configuration a completed run has (build.py filters them with
    compare.of_completed_configurations, as the verdicts count them). A point's seed whose run is lost
    and that no completed run measures is named in `note` as the
    verdicts name it ('left out: seed 1 of random failed (LayerCollapse)') and counted in `seeds_lost`:
    its mean is of the surviving seeds only, which --expect-strict does not confirm (`strict_failures`).
    So is a seed whose value is not finite while others have one ('left out: random has no value on seed
    2 (of its 3 seeds)', the verdicts' words), and, for a `final` point, a seed whose completed run
    (`completed`: load.ResultsFolder.runs) lost every row of the metric (compare.final_values): before, the
    point was rated on the other seeds without a word (docs/report.md "Expected values").
    `key_source` "columns" (a folder of only the shared CSVs): the runs are known by their rows' name, method,
    target_sparsity and seed (`_configs_from_columns`); before, the points all read "missing" with no word
    why. Their rows hold no config keys: a file's `config:` is not checked there (each point's note says
    so: `config: not checked: ...`), and a point with `match:` cannot select runs (`missing`, its note says
    why), but the report is written (a refusal with exit 2 left none, where 2026-12-03 wrote one).
    `incomplete`: every run that failed or did not finish, {run: (config, why)}, unfiltered, for the note of
    a point whose runs of the file's name all failed."""
    by_columns = key_source == "columns"
    if by_columns:
        configs = _configs_from_columns(metrics)
    named = {run for run, cfg in configs.items() if cfg.get("name") == expected["name"]}
    unnamed = _unnamed(expected["name"], configs, incomplete or {}) if not named and configs else ""
    lost = {run: why for run, why in (lost or {}).items() if isinstance(why[0], dict) and why[0].get("name") == expected["name"]}
    out = []
    for p in expected["points"]:
        metric = p.get("metric", expected.get("metric", "accuracy"))
        split = p.get("split", expected.get("split", "test"))
        phase = p.get("phase", expected.get("phase", FINAL))
        runs = {r for r in named if _selects(p, configs[r], phase)}
        unchecked = []  # what a folder of only the shared CSVs cannot check, said on each point
        if by_columns and expected.get("config"):
            unchecked.append(UNCHECKED_CONFIG)
        if by_columns and p.get("match"):
            runs = set()
            unchecked.append("match: needs the runs' configs (runs/ folders)")
        if by_columns:
            dense_rows = metrics[
                metrics["run_id"].isin(runs)
                & (metrics["phase"] == "dense")
                & (metrics["metric"] == metric)
                & (metrics["split"] == split)
            ]
            dense_values = dense_rows.groupby("run_id")["value"].mean().to_dict()
            note = _columns_ambiguity({r: configs[r] for r in runs}, dense=phase == "dense", dense_values=dense_values)
        else:
            note = _ambiguity({r: configs[r] for r in runs}, dense=phase == "dense")
        ambiguous = bool(note)
        differs = "" if ambiguous or by_columns else _config_differs(expected, {r: configs[r] for r in runs}, configs)
        if ambiguous:  # no mean of different configurations: no rows to average
            runs = set()
        mine = metrics[metrics["run_id"].isin(runs)]
        ran = None
        if phase == FINAL:
            ran = completed[completed["run_id"].isin(runs)] if completed is not None and len(completed) else None
            rows = final_values(mine, metric, split, completed=ran)
        else:
            rows = mine[(mine["metric"] == metric) & (mine["split"] == split) & (mine["phase"] == phase)]
        per_seed = rows.groupby("seed")["value"].mean()
        recorded = bool(((metrics["metric"] == metric) & (metrics["split"] == split)).any())
        if not len(per_seed) and phase == FINAL and ran is not None and len(ran) and recorded:
            # every completed run of the point lost its rows of a metric this folder records: seeds without a
            # value, not "no runs" (a metric no run records yet stays missing)
            per_seed = pd.Series(np.nan, index=sorted(set(ran["seed"])), dtype=float)
        stats = t_interval(per_seed.to_numpy(float), confidence)
        mean = stats["mean"]
        valued = bool(np.isfinite(per_seed.to_numpy(float)).any())
        if not len(per_seed) and not ambiguous:
            note = unnamed
        if len(per_seed) and not valued:  # runs, but NaN (diverged) on every seed: nothing measured, nothing missed
            seeds = ", ".join(str(s) for s in per_seed.index)
            note = f"no finite {metric} on any of its {len(per_seed)} seeds ({seeds}): NaN, a run that diverged, say"
        if differs and valued:
            note = "; ".join(filter(None, (note, differs)))
        status = (
            "ambiguous"
            if ambiguous
            else "missing"
            if not len(per_seed)
            else "no_value"
            if not valued
            else "config_differs"
            if differs
            else "inside"
            if abs(mean - p["value"]) <= p["band"] + 1e-12
            else "outside"
        )
        measured = set(per_seed.index[np.isfinite(per_seed.to_numpy(float))]) if not ambiguous else set()
        gone = _lost_seeds(p, phase, lost, measured) if not ambiguous else []
        # seeds with a run but no finite value, while others have one: named as the verdicts name them
        nan_seeds = [s for s in per_seed.index if s not in measured] if valued else []
        if nan_seeds:
            who = p.get("method") or "the point's runs"
            many = len(nan_seeds) > 1
            listed = ", ".join(str(s) for s in nan_seeds)
            verb = "has" if p.get("method") else "have"
            text = f"{who} {verb} no value on seed{'s' if many else ''} {listed} (of its {len(per_seed)} seeds)"
            gone = [(s, text if i == 0 else "") for i, s in enumerate(nan_seeds)] + gone
        told = [text for _, text in gone if text and text not in note]  # not twice where `unnamed` names them
        if told:
            note = "; ".join(filter(None, (note, "left out: " + "; ".join(told))))
        note = "; ".join(filter(None, (note, *unchecked)))
        out.append(
            {
                "name": expected["name"],
                "method": p.get("method", ""),
                "sparsity": p["sparsity"],
                "match": match_text(p),
                "phase": phase,
                "metric": metric,
                "split": split,
                "expected": p["value"],
                "band": p["band"],
                "low": p["value"] - p["band"],
                "high": p["value"] + p["band"],
                "measured": mean,
                "n_seeds": stats["n_seeds"],
                "ci_low": stats["ci_low"],
                "ci_high": stats["ci_high"],
                "deviation": mean - p["value"] if valued else math.nan,
                "status": status,
                "seeds_lost": len({seed for seed, _ in gone}),
                "note": note,
                "source": p.get("source", expected.get("source", "")),
            }
        )
    return pd.DataFrame(out)


def _unnamed(name: str, configs: dict[str, dict], incomplete: dict[str, tuple[dict, str]]) -> str:
    """The note of a point when no completed run has the file's run `name`: the points match runs by their
    `name` (the preset's), and a folder of equivalent runs under another name read "got no runs" though it
    holds them. Where runs of that name failed or did not finish, it says so and names them (before: "no run is
    named special; ...; left out: seed 2 of random failed", which contradicted itself)."""
    others = ", ".join(sorted({str(cfg.get("name")) for cfg in configs.values()}))
    mine = sorted(
        (f"seed {cfg.get('seed')} of {_method_name(cfg)} {why}", run)
        for run, (cfg, why) in incomplete.items()
        if isinstance(cfg, dict) and cfg.get("name") == name
    )
    if not mine:
        return f"no run is named {name}; this folder's runs are named {others}"
    shown = "; ".join(text for text, _ in mine[:5]) + (f"; and {len(mine) - 5} more" if len(mine) > 5 else "")
    return f"every run named {name} failed or did not finish ({shown}); this folder's completed runs are named {others}"


def _method_name(config: dict) -> str:
    method = config.get("method")
    return str(method.get("name")) if isinstance(method, dict) else "?"


def _configs_from_columns(metrics: pd.DataFrame) -> dict[str, dict]:
    """{run_id: a config of what the rows of a folder of only the shared CSVs say of the run}: its name, seed,
    target sparsity and method, with its dataset, model, score, allocation, structure and schedule (the context
    columns), which is all `_selects` reads without `match:` (a point with one is `missing` there: check_expected)."""
    if not len(metrics) or not {"run_id", "name", "method", "target_sparsity"} <= set(metrics.columns):
        return {}
    first = metrics.drop_duplicates("run_id").set_index("run_id")

    def cell(row: Any, column: str) -> Any:
        value = row.get(column) if column in first.columns else None
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value

    out = {}
    for run, row in first.iterrows():
        seed = cell(row, "seed")
        out[str(run)] = {
            "name": str(cell(row, "name")),
            "seed": int(seed) if isinstance(seed, (int, float, np.integer, np.floating)) and float(seed).is_integer() else seed,
            "sparsity": float(row["target_sparsity"]),
            "method": {"name": str(row["method"]), **{k: cell(row, k) for k in ("score", "allocation", "structure")}},
            **{k: {"name": cell(row, k)} for k in ("dataset", "model", "schedule")},
        }
    return out


def _columns_ambiguity(configs: dict[str, dict], dense: bool = False, dense_values: Optional[dict] = None) -> str:
    """`_ambiguity` for runs known only by their rows' columns, which cannot see epochs, widths, learning rates
    or most method options: one seed with two runs of a pruned point (the same name, method and sparsity) may
    be two configurations, so it is `ambiguous` rather than averaged. For a dense point, whose dense model runs
    of other methods and sparsities share, a seed is ambiguous where its runs differ in the dataset or model
    column, or where their dense values (`dense_values`, {run: the point's dense value}) differ: runs of one
    dense model record one dense value, so different values are different dense models (train.epochs 2 and 3,
    say), which were averaged into a number of neither."""
    per_seed: dict[Any, list[str]] = {}
    for run, cfg in configs.items():
        per_seed.setdefault(cfg.get("seed"), []).append(run)
    for seed, runs in sorted(per_seed.items(), key=lambda item: str(item[0])):
        if dense:
            setups = {(str(configs[r]["dataset"]["name"]), str(configs[r]["model"]["name"])) for r in runs}
            if len(setups) > 1:
                shown = ", ".join(f"{d}/{m}" for d, m in sorted(setups))
                return (
                    f"seed {seed} has dense runs of {len(setups)} dataset/model pairs ({shown}); the shared CSVs cannot "
                    "tell them apart further: run prune-report on the results_dir that holds runs/ and choose one with `match:`"
                )
            values = {r: float(dense_values[r]) for r in runs if r in (dense_values or {})}
            if len({"nan" if math.isnan(v) else v for v in values.values()}) > 1:
                shown = ", ".join(f"{r}: {v:.6g}" for r, v in sorted(values.items()))
                return (
                    f"seed {seed} has dense runs of different dense values ({shown}), so of different dense models "
                    "(other epochs, widths or learning rates, say), whose configs the shared CSVs cannot tell apart: run "
                    "prune-report on the results_dir that holds runs/ and choose one with `match:`"
                )
            continue
        if len(runs) > 1:
            return (
                f"seed {seed} has {len(runs)} runs of this point ({', '.join(sorted(runs))}), which the shared CSVs cannot "
                "tell apart (their config.yaml, with epochs, widths and options, is not in this folder): run prune-report "
                "on the results_dir that holds runs/ and choose one with `match:`"
            )
    return ""


def match_text(point: dict) -> str:
    """A point's `match:` as text, 'method.allocation=layerwise; train.epochs=20' (its values as the runs'
    flattened configs spell them, which `_selects` compares; '; ' since a list value holds ', '), '' without
    one: points that differ only by `match:` were told apart nowhere in expect.csv, summary.md or the
    printed lines."""
    return "; ".join(f"{k}={_text(v)}" for k, v in (point.get("match") or {}).items())


def _config_differs(expected: dict, configs: dict[str, dict], folder: Optional[dict[str, dict]] = None) -> str:
    """'' unless the file's `config` (the values its points were measured with) disagrees with these runs:
    then 'measured with train.epochs=3; the expected values are of train.epochs=8'. A preset run with a
    changed option (`+experiment=expect_mnist1d train.epochs=3`) was marked inside or outside its bands
    as if it were the preset's. A key that no run of the `folder` has and that is close to one they have
    gets a hint ('train.epoch is in no run's config (did you mean train.epochs?)'): it may be a typo, or a
    key of a plugin or Python schema that these runs lack, so it is said, not refused."""
    wanted = {key: _text(value) for key, value in (expected.get("config") or {}).items()}
    seen: dict[str, set[str]] = {}
    for config in configs.values():
        for key in wanted:
            found, value = _lookup(config, key)
            if not found or not _same(value, expected["config"][key]):
                seen.setdefault(key, set()).add(_text(value) if found else ABSENT)
    if not seen:
        return ""
    ran = ", ".join(f"{k}={'/'.join(sorted(v))}" for k, v in seen.items())
    text = f"measured with {ran}; the expected values are of " + ", ".join(f"{k}={wanted[k]}" for k in seen)
    folder = configs if folder is None else folder
    keys = sorted({k for cfg in folder.values() for k in flatten_config(cfg)})
    for key in seen:
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.8)
        if close and not any(_lookup(cfg, key)[0] for cfg in folder.values()):
            text += f"; {key} is in no run's config (did you mean {close[0]}?)"
    return text


def _lost_seeds(point: dict, phase: str, lost: dict[str, tuple[dict, str]], measured: set) -> list[tuple[Any, str]]:
    """(seed, 'seed 1 of random failed (LayerCollapse)') for `point`'s runs in `lost` whose seed has no value
    from a completed run (`measured`), sorted by seed."""
    gone = []
    for config, why in lost.values():
        seed = config.get("seed")
        if seed in measured or not _selects(point, config, phase):
            continue
        method = config["method"].get("name") if isinstance(config.get("method"), dict) else point.get("method")
        gone.append((seed, f"seed {seed} of {method} {why}"))
    return sorted(gone, key=lambda g: (str(type(g[0])), g[0], g[1]))


# What a dense model depends on: DENSE_KEYS of prune_cli/run/dense_cache.py (without the seed, the
# replicate), with data pruning and non-default accelerator settings, which it also hashes. Not
# imported from there: that module imports torch, which prune-report does not.
DENSE_CONFIG = ("dataset", "model", "train", "data_pruning", "accel")


def _ambiguity(configs: dict[str, dict], dense: bool = False) -> str:
    """'' unless one seed has runs of several configurations (the report's rule, report/mixing.py: runs
    of one experiment key differ only by seed, name or keys that cannot change results), else what
    differs and how to choose one with `match:`. Runs of other seeds that differ (a seed run again with
    `device=cpu`) are measured together, as the report's other tables do. `dense`: a dense-phase point,
    whose dense model runs of other methods, sparsities and schedules share: there only the keys the
    dense model depends on (DENSE_CONFIG) make a configuration."""
    if len(configs) < 2:
        return ""
    keys, _ = experiment_keys(configs)
    cols = [c for c in keys.columns if c not in ("experiment", "comparison")]
    if dense:
        cols = [c for c in cols if c.split(".", 1)[0] in DENSE_CONFIG]
    values = keys[cols].astype(object).where(keys[cols].notna(), ABSENT).astype(str)
    n = len(values.drop_duplicates()) if cols else 1
    seeds = pd.Series({run: str(cfg.get("seed")) for run, cfg in configs.items()}).reindex(values.index)
    per_seed = values.apply(lambda row: "\x1f".join(row), axis=1).groupby(seeds).nunique() if cols else pd.Series(dtype=int)
    if n < 2 or not (per_seed > 1).any():
        return ""
    varying = [c for c in cols if values[c].nunique() > 1]
    differ = ", ".join(f"{k} ({', '.join(sorted(values[k].unique()))})" for k in varying)
    example = ", ".join(f"{k}: {sorted(values[k].unique())[0]}" for k in varying)
    return (
        f"the {len(configs)} runs of this point are of {n} configurations, differing in {differ}; "
        f"add `match:` with the values of one (e.g. {{{example}}})"
    )


def expect_markdown(table: pd.DataFrame, expected: dict) -> str:
    from .summary import markdown_table, one_line

    counts = table["status"].value_counts()
    head = (
        f"Expected values: {expected['_path']} (runs named `{expected['name']}`); source: {expected.get('source', '?')}"
        + (f"; status: {expected['status']}" if expected.get("status") else "")
        + f". {counts.get('inside', 0)} inside, {counts.get('outside', 0)} outside, "
        + f"{counts.get('missing', 0)} missing"
        + (f", {counts.get('ambiguous', 0)} ambiguous" if counts.get("ambiguous", 0) else "")
        + (f", {counts.get('no_value', 0)} without a value" if counts.get("no_value", 0) else "")
        + (f", {counts.get('config_differs', 0)} of another configuration" if counts.get("config_differs", 0) else "")
        + f" of {len(table)} points"
        + (
            f"; {_short(table)} measured without a seed that failed or did not finish or that has no value (the note names it)"
            if _short(table)
            else ""
        )
        + "."
    )
    cols = ["method", "sparsity", "phase", "metric", "expected", "band", "measured", "n_seeds", "deviation", "status"]
    if "match" in table.columns and (table["match"].fillna("") != "").any():  # points told apart by `match:` only
        cols.insert(2, "match")
    shown = table[cols + (["note"] if "note" in table.columns and (table["note"].fillna("") != "").any() else [])]
    return one_line(head) + "\n\n" + markdown_table(shown)  # the file's source and status on the line of the head


def _short(table: pd.DataFrame) -> int:
    """The points measured on fewer seeds than were run: a seed's run failed or did not finish, or it has no value."""
    return int((table["seeds_lost"].fillna(0) > 0).sum()) if "seeds_lost" in table.columns else 0


# the note of a point whose file `config:` a folder of only the shared CSVs cannot check (`strict_failures`)
UNCHECKED_CONFIG = "config: not checked: this folder holds no run configs (runs/ folders)"


def strict_failures(table: Optional[pd.DataFrame]) -> int:
    """Points that --expect-strict rejects: outside the band, missing (a point not run is not
    confirmed), config_differs (its runs are not of the configuration the expected values were measured
    with), ambiguous (runs of several configurations match it), no_value (its runs have no
    finite value: not confirmed either), or measured without a seed whose run failed or did not finish
    or that has no value (`seeds_lost`): a mean of the surviving seeds, inside its band or not, leaves out exactly the seeds
    on which the method may do worst; nor a point whose file's `config:` could not be checked (a folder of only
    the shared CSVs: `UNCHECKED_CONFIG` in its note), whose runs may be of another configuration."""
    if table is None:
        return 0
    rejected = table["status"].isin(["outside", "missing", "ambiguous", "no_value", "config_differs"])
    if "note" in table.columns:
        rejected |= table["note"].astype(object).fillna("").astype(str).str.contains(UNCHECKED_CONFIG, regex=False)
    if "seeds_lost" in table.columns:
        rejected |= table["seeds_lost"].fillna(0) > 0
    return int(rejected.sum())
