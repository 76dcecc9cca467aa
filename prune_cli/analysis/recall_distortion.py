"""Recall distortion and intensification (Good et al., NeurIPS 2022; docs/analysis.md).

Per class c of a model at pruning level t (t = 0: the dense model of the same seed):

    recall_t^c = correct_t^c / support^c,   accuracy_t = sum_c correct_t^c / N
    rho_t^c    = (recall_t^c - accuracy_t) / accuracy_t        (normalised recall)
    T_t^c      = rho_0^c - rho_t^c                             (the authors' per-class statistic, as coded)
    intensified: sign(rho_0^c) * (rho_t^c - rho_0^c) > 0       (undefined where rho_0^c = 0)

Model level (`alpha_t_ours` is OUR estimator of the paper's E[alpha_t], not the paper's):

    alpha_t_ours = sum_c rho_0^c rho_t^c / sum_c (rho_0^c)^2   (through-origin LS slope of rho_t on rho_0)
    I_t          = mean_c sign(rho_0^c) (rho_t^c - rho_0^c)
    frac_intensified = share of classes (rho_0 != 0) that intensified

The plain class mean of rho is degenerate (support-weighted it is exactly 0), so it is never reported.
rho_0 is itself noisy, so alpha < 1 and I < 0 are expected even without a pruning effect; compare with the
randomisation null (`randomisation_null`), not with 1 or 0.

Run time: one extra evaluation pass of the dense model per recorded phase and split (plus the phase's own
pass); the randomisation null costs O(n_perm x images x models) array operations, offline.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from ..core.identity import HASH_EXCLUDED, decided_schedule


FORMULA_VERSION = "rd_v1"  # rho = (recall - acc) / acc; T = rho_0 - rho_t; alpha_t_ours = LS slope
STATISTICS = ("alpha_t_ours", "I_t", "frac_intensified")


# ----------------------------------------------------------------------------- formulas


def class_counts(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(correct per class, support per class) from integer labels and predictions."""
    labels, preds = np.asarray(labels), np.asarray(preds)
    support = np.bincount(labels, minlength=num_classes).astype(float)
    correct = np.bincount(labels[labels == preds], minlength=num_classes).astype(float)
    return correct, support


def normalised_recall(correct: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(recall, accuracy, rho) over the last axis (classes); leading axes are independent models.

    A class without examples has recall and rho NaN; accuracy 0 gives rho NaN (rho is undefined)."""
    correct, support = np.asarray(correct, float), np.asarray(support, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = correct / support
        accuracy = correct.sum(-1) / support.sum(-1)
        rho = (recall - accuracy[..., None]) / accuracy[..., None]
    return recall, accuracy, rho


def intensification(rho0: np.ndarray, rhot: np.ndarray) -> dict[str, np.ndarray]:
    """alpha_t_ours, I_t and frac_intensified over the last axis (classes), vectorised over leading axes.

    Classes where rho_0 or rho_t is undefined (NaN) are left out of every statistic."""
    rho0, rhot = np.broadcast_arrays(np.asarray(rho0, float), np.asarray(rhot, float))
    valid = np.isfinite(rho0) & np.isfinite(rhot)
    r0, rt = np.where(valid, rho0, 0.0), np.where(valid, rhot, 0.0)
    n = valid.sum(-1)
    signed = np.sign(r0) * (rt - r0)
    defined = valid & (r0 != 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = (r0 * rt).sum(-1) / (r0 * r0).sum(-1)
        i_t = signed.sum(-1) / n
        frac = ((signed > 0) & defined).sum(-1) / defined.sum(-1)
    return {"alpha_t_ours": alpha, "I_t": i_t, "frac_intensified": frac}


def per_class_rows(correct: np.ndarray, support: np.ndarray, dense_correct: np.ndarray, is_dense: bool = False) -> list[dict]:
    """One row per class: recall, rho and their change against the dense model of the same seed.

    For the dense model itself (`is_dense`) the intensification indicator is left empty."""
    recall, acc, rho = normalised_recall(correct, support)
    recall0, acc0, rho0 = normalised_recall(dense_correct, support)
    rows = []
    for c in range(len(support)):
        defined = bool(np.isfinite(rho0[c]) and np.isfinite(rho[c]) and rho0[c] != 0) and not is_dense
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = rho[c] / rho0[c] if defined or (is_dense and rho0[c] != 0) else math.nan
        rows.append(
            {
                "class": c,
                "support": int(support[c]),
                "correct": int(correct[c]),
                "recall": float(recall[c]),
                "accuracy": float(acc),
                "rho": float(rho[c]),
                "dense_correct": int(dense_correct[c]),
                "dense_recall": float(recall0[c]),
                "dense_accuracy": float(acc0),
                "dense_rho": float(rho0[c]),
                "delta_recall": float(recall[c] - recall0[c]),
                "delta_rho": float(rho[c] - rho0[c]),
                "T": float(rho0[c] - rho[c]),
                "rho_ratio": float(ratio),
                "intensified": bool(np.sign(rho0[c]) * (rho[c] - rho0[c]) > 0) if defined else None,
                "formula_version": FORMULA_VERSION,
            }
        )
    return rows


# ----------------------------------------------------------------------------- across seeds


DEFAULT_KEYS = (
    "name",
    "dataset",
    "model",
    "method",
    "score",
    "allocation",
    "structure",
    "schedule",
    "target_sparsity",
    "split",
    "phase",
)


def per_model_statistics(rows: pd.DataFrame, keys: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """alpha_t_ours, I_t, frac_intensified for every model (one run x split x phase) in recall_distortion rows.

    rho is recomputed from the `recall`, `accuracy`, `dense_recall`, `dense_accuracy` columns, so the rows
    of any formula version can be used. Returns one row per model with `keys`, `seed`, `run_id` (if present)
    and the three statistics."""
    keys = [k for k in (DEFAULT_KEYS if keys is None else keys) if k in rows.columns]
    model_keys = keys + [k for k in ("seed", "run_id") if k in rows.columns and k not in keys]
    if not len(rows):
        return pd.DataFrame(columns=model_keys + list(STATISTICS))
    # The models' rows as slices of arrays sorted by (model, class): a pandas group and sort per model
    # took most of prune-report's time on 1,000 runs (scripts/bench_report.py).
    model = rows.groupby(model_keys, dropna=False, sort=True).ngroup().to_numpy()
    order = np.lexsort((rows["class"].to_numpy(), model))
    starts = np.flatnonzero(np.r_[True, np.diff(model[order]) != 0])
    recall, accuracy, dense_recall, dense_accuracy = (
        rows[c].to_numpy(float)[order] for c in ("recall", "accuracy", "dense_recall", "dense_accuracy")
    )
    identity = rows[model_keys].iloc[order[starts]].to_dict(orient="records")
    out = []
    for ident, lo, hi in zip(identity, starts, np.r_[starts[1:], len(order)]):
        with np.errstate(divide="ignore", invalid="ignore"):  # a collapsed model (accuracy 0): rho is undefined, NaN
            rho = (recall[lo:hi] - accuracy[lo:hi]) / accuracy[lo:hi]
            rho0 = (dense_recall[lo:hi] - dense_accuracy[lo:hi]) / dense_accuracy[lo:hi]
        stats = intensification(rho0, rho)
        out.append({**ident, **{k: float(v) for k, v in stats.items()}})
    return pd.DataFrame(out, columns=model_keys + list(STATISTICS))


def _t_interval(values: np.ndarray, confidence: float) -> dict[str, float]:
    """n, mean, sd and the Student-t interval of the finite values (see prune_cli.core.stats.t_interval)."""
    from ..core.stats import t_interval

    stats = t_interval(values, confidence)
    return {
        "n_seeds": stats["n_seeds"],
        "mean": stats["mean"],
        "sd": stats["std"],
        "ci_low": stats["ci_low"],
        "ci_high": stats["ci_high"],
        "confidence": confidence,
    }


def _condition_keys(rows: pd.DataFrame, keys: Optional[Sequence[str]]) -> list[str]:
    return [k for k in (DEFAULT_KEYS if keys is None else keys) if k in rows.columns]


def summarise_across_seeds(rows: pd.DataFrame, keys: Optional[Sequence[str]] = None, confidence: float = 0.95) -> pd.DataFrame:
    """Mean over seeds of each model-level statistic with a Student-t confidence interval.

    `rows`: recall_distortion.csv rows (any number of runs; needs seed, class, recall, accuracy,
    dense_recall, dense_accuracy). `keys`: the columns that define one condition (default: name, dataset,
    model, method, score, allocation, structure, schedule, target_sparsity, split, phase, where present);
    every other run in the same condition counts as one seed; runs repeating a seed are averaged first
    (a seed is one independent unit, however often it was run). Output: one row per condition and statistic
    with n_seeds, mean, sd, ci_low, ci_high (mean -/+ t_{(1+confidence)/2, n-1} sd / sqrt(n); NaN for n < 2).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    per_model = per_model_statistics(rows, keys)
    keys = _condition_keys(rows, keys)
    if "seed" in per_model.columns and "seed" not in keys:
        per_model = per_model.groupby(keys + ["seed"], dropna=False, sort=True)[list(STATISTICS)].mean().reset_index()
    out = []
    for group, df in per_model.groupby(keys, dropna=False, sort=True) if keys else [((), per_model)]:
        base = dict(zip(keys, group if isinstance(group, tuple) else (group,)))
        for stat in STATISTICS:
            out.append(
                {**base, "statistic": stat, **_t_interval(df[stat].to_numpy(float), confidence), "formula_version": FORMULA_VERSION}
            )
    return pd.DataFrame(out)


PER_CLASS_QUANTITIES = ("recall", "dense_recall", "delta_recall", "rho", "dense_rho", "delta_rho", "T")


def summarise_classes_across_seeds(rows: pd.DataFrame, keys: Optional[Sequence[str]] = None, confidence: float = 0.95) -> pd.DataFrame:
    """Per class: mean over seeds of recall, rho, their dense values and changes, and T, with t-intervals.

    Same input and `keys` as `summarise_across_seeds`; rho is recomputed from the recall/accuracy columns.
    Runs repeating a seed are averaged first (recall, accuracy and their dense values), so that n_seeds
    counts seeds, not rows: a run listed twice, or run twice, is one seed. Output: one row per
    condition, class and quantity, plus `frac_intensified_seeds` (share of seeds in which the class
    intensified, over the seeds where that is defined)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    keys = _condition_keys(rows, keys)
    inputs = ["recall", "accuracy", "dense_recall", "dense_accuracy"]
    if "seed" in rows.columns and "seed" not in keys:
        df = rows.groupby(keys + ["class", "seed"], dropna=False, sort=True)[inputs].mean().reset_index()
    else:
        df = rows.copy()
    df["rho"] = (df["recall"] - df["accuracy"]) / df["accuracy"]
    df["dense_rho"] = (df["dense_recall"] - df["dense_accuracy"]) / df["dense_accuracy"]
    df["delta_recall"] = df["recall"] - df["dense_recall"]
    df["delta_rho"] = df["rho"] - df["dense_rho"]
    df["T"] = df["dense_rho"] - df["rho"]
    signed = np.sign(df["dense_rho"]) * df["delta_rho"]
    df["_intensified"] = np.where(np.isfinite(signed) & (df["dense_rho"] != 0), (signed > 0).astype(float), np.nan)
    out = []
    for group, part in df.groupby(keys + ["class"], dropna=False, sort=True):
        base = dict(zip(keys + ["class"], group if isinstance(group, tuple) else (group,)))
        flags = part["_intensified"].to_numpy(float)
        flags = flags[np.isfinite(flags)]
        for quantity in PER_CLASS_QUANTITIES:
            out.append(
                {
                    **base,
                    "quantity": quantity,
                    **_t_interval(part[quantity].to_numpy(float), confidence),
                    "frac_intensified_seeds": float(flags.mean()) if len(flags) else math.nan,
                    "formula_version": FORMULA_VERSION,
                }
            )
    return pd.DataFrame(out)


# ----------------------------------------------------------------------------- randomisation null


def randomisation_null(
    predictions: pd.DataFrame,
    reference: str = "dense",
    n_perm: int = 10_000,
    seed: int = 0,
    num_classes: Optional[int] = None,
    max_batch_elements: int = 20_000_000,
) -> pd.DataFrame:
    """Randomisation test of the intensification statistics (Good et al. 2022; docs/analysis.md).

    `predictions`: one row per (unit, model, image) with columns `model`, `image_index`, `label`, `pred`
    and optionally `seed` (independent units, e.g. seeds; each must hold the same set of models, one of
    them `reference`). Under the null, the models' predictions for one image are exchangeable: every
    permutation shuffles each image's predictions across the models of its unit. The statistics of each
    non-reference model (alpha_t_ours, I_t, frac_intensified, and T per class) are averaged over the units
    where the observed statistic is defined (as in `summarise_across_seeds`), in the observed value and in
    every permutation alike; a permutation where one of those units' statistic is undefined is dropped.

    Returns one row per (model, statistic, class) with observed, null_mean, null_sd, n_perm (permutations
    used), n_units (units averaged), p_value = min(1, 2 (1 + min(#null <= obs, #null >= obs)) / (1 + n_perm)),
    the authors' code's p_value_code = 2 min(#<=, #>=) / n_perm, and formula_version.
    """
    if n_perm < 1:
        raise ValueError(f"n_perm must be a positive integer, got {n_perm}")
    df = predictions if "seed" in predictions.columns else predictions.assign(seed=0)
    models = sorted(df["model"].unique(), key=lambda m: (m != reference, str(m)))
    if reference not in models or len(models) < 2:
        raise ValueError(f"predictions need the reference model {reference!r} and at least one other model")
    others = models[1:]
    C = int(num_classes if num_classes is not None else df["label"].max() + 1)
    if df.duplicated(["seed", "model", "image_index"]).any():
        raise ValueError("predictions hold more than one row for some (seed, model, image_index)")
    rng = np.random.default_rng(seed)
    units = []
    for unit, u in df.groupby("seed", sort=True):
        wide = u.pivot(index="image_index", columns="model", values="pred")
        labels = u.groupby("image_index")["label"].first().reindex(wide.index).to_numpy()
        if set(wide.columns) != set(models) or wide.isna().any().any():
            raise ValueError(f"unit seed={unit}: every image needs a prediction from each of the models {models}")
        Z = (wide[models].to_numpy() == labels[:, None]).astype(np.float64)  # (N, K) correct
        onehot = np.eye(C)[labels]  # (N, C)
        units.append((Z, onehot, onehot.sum(0)))

    def stats_of(correct, support):  # correct: (..., K, C) -> dict of (..., K-1) and T (..., K-1, C)
        _, _, rho = normalised_recall(correct, support)
        out = intensification(rho[..., :1, :], rho[..., 1:, :])
        out["T"] = rho[..., :1, :] - rho[..., 1:, :]
        return out

    # Each statistic (of each model, and class for T) is averaged over the units where its observed value is
    # defined (a unit whose dense model is 100 % accurate has every rho_0 = 0, so no alpha), as in
    # summarise_across_seeds; each permutation averages over the same units, so that it is compared like for
    # like, and is undefined (dropped) where one of them is.
    per_unit = [stats_of(np.einsum("nk,nc->kc", Z, onehot), support) for Z, onehot, support in units]
    defined = {k: [np.isfinite(u[k]) for u in per_unit] for k in per_unit[0]}
    n_defined = {k: np.sum(masks, axis=0) for k, masks in defined.items()}
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = {k: sum(np.where(m, u[k], 0.0) for m, u in zip(defined[k], per_unit)) / n_defined[k] for k in per_unit[0]}
    null: dict[str, list[np.ndarray]] = {}
    largest = max(Z.size for Z, _, _ in units)
    done = 0
    while done < n_perm:
        b = max(1, min(n_perm - done, max_batch_elements // largest))
        acc: dict[str, np.ndarray] = {}
        for u, (Z, onehot, support) in enumerate(units):
            N, K = Z.shape
            perm = np.argsort(rng.random((b, N, K)), axis=2)  # an independent shuffle per image
            Zp = np.take_along_axis(np.broadcast_to(Z, (b, N, K)), perm, axis=2)
            for k, v in stats_of(np.einsum("bnk,nc->bkc", Zp, onehot), support).items():
                acc[k] = acc.get(k, 0) + np.where(defined[k][u], v, 0.0)  # NaN stays NaN where the unit counts
        for k, v in acc.items():
            with np.errstate(invalid="ignore", divide="ignore"):
                null.setdefault(k, []).append(v / n_defined[k])
        done += b
    rows = []
    for stat in (*STATISTICS, "T"):
        obs, dist = observed[stat], np.concatenate(null[stat], axis=0)  # (K-1[, C]), (n, K-1[, C])
        classes = [None] if stat != "T" else list(range(C))
        for m, model in enumerate(others):
            for c in classes:
                o = obs[m] if c is None else obs[m, c]
                d = dist[:, m] if c is None else dist[:, m, c]
                d = d[np.isfinite(d)]
                if not np.isfinite(o) or len(d) == 0:
                    p, p_code = math.nan, math.nan
                else:
                    le, ge = int((d <= o).sum()), int((d >= o).sum())
                    p = min(1.0, 2 * (1 + min(le, ge)) / (1 + len(d)))
                    p_code = 2 * min(le, ge) / len(d)
                rows.append(
                    {
                        "model": model,
                        "statistic": stat,
                        "class": c,
                        "observed": float(o),
                        "null_mean": float(d.mean()) if len(d) else math.nan,
                        "null_sd": float(d.std(ddof=1)) if len(d) > 1 else math.nan,
                        "n_perm": int(len(d)),
                        "n_units": int(n_defined[stat][m] if c is None else n_defined[stat][m, c]),
                        "p_value": p,
                        "p_value_code": p_code,
                        "formula_version": FORMULA_VERSION,
                    }
                )
    return pd.DataFrame(rows)


# Config keys that neither change a run's dense model nor tell two pruned models apart: the replicate, the
# label, and where results go (HASH_EXCLUDED); `method` and `sparsity` name the pruned model.
_NOT_SETUP = ("seed", "name", "method", "sparsity", *HASH_EXCLUDED)


def _setups(configs: dict[str, dict]) -> tuple[dict[str, str], list[str]]:
    """Per run, the text of its config without _NOT_SETUP (what its dense model depends on), and the
    top-level keys in which the runs' setups differ."""
    setups = {run: {k: v for k, v in cfg.items() if k not in _NOT_SETUP} for run, cfg in configs.items()}
    for s in setups.values():  # a null lr_rewind as the value it stands for (saved as false before)
        if isinstance(s.get("schedule"), dict):
            s["schedule"] = decided_schedule(s["schedule"])
    keys = sorted({k for s in setups.values() for k in s})
    differ = [k for k in keys if len({json.dumps(s.get(k), sort_keys=True, default=str) for s in setups.values()}) > 1]
    return {run: json.dumps(s, sort_keys=True, default=str) for run, s in setups.items()}, differ


def _method_labels(configs: dict[str, dict]) -> dict[str, str]:
    """Per run, "" when every run has the same method config, else a prefix naming its method: the name,
    and a short digest of its options where two configs share a name (magnitude global vs layerwise)."""
    texts = {run: json.dumps(cfg.get("method"), sort_keys=True, default=str) for run, cfg in configs.items()}
    if len(set(texts.values())) <= 1:
        return dict.fromkeys(configs, "")
    names = {run: str((cfg.get("method") or {}).get("name", "method")) for run, cfg in configs.items()}
    shared = {n for n in names.values() if len({t for r, t in texts.items() if names[r] == n}) > 1}
    return {
        run: f"{names[run]}[{hashlib.sha256(texts[run].encode()).hexdigest()[:6]}] " if names[run] in shared else f"{names[run]} "
        for run in configs
    }


def load_predictions(run_dirs: Iterable[Path], split: str = "test", phases: Optional[Iterable[str]] = None) -> pd.DataFrame:
    """Per-image predictions of the runs as one long table: each run's predictions file
    (prune_cli/core/predictions.py), and the preds_<phase>_<split>.npz copies that older versions of
    the metric wrote (read for the phases the file lacks). `phases`: the phases to keep (default all).
    Good et al.'s randomisation null pools the dense model and the final (fine-tuned) compressions of
    one dense model: `phases=("dense", "finetuned")`; the un-fine-tuned `pruned` models, far less
    accurate, widen the null (docs/analysis.md).

    Columns: seed, run_id, target_sparsity, phase, model, image_index, label, pred; `model` is "dense"
    for the dense phase (kept once per seed: the runs of a seed share their dense model) and
    "<target_sparsity>/<phase>" otherwise (prefixed by the method, "random 0.9/finetuned", when the runs'
    method configs differ), ready for `randomisation_null`. The runs must share one setup (every config
    value but seed, name, method, sparsity and where results go): runs of several setups have several dense
    models per seed, and keeping one of them paired other runs' pruned models with a dense model they were
    not pruned from (ValueError naming the keys that differ). Copies of one run (same config) are read once."""
    from ..core.predictions import read_predictions

    keep = None if phases is None else {phases} if isinstance(phases, str) else set(phases)  # "dense" is one phase
    run_dirs = [Path(d) for d in run_dirs]
    configs = {d.name: OmegaConf.to_container(OmegaConf.load(d / "config.yaml")) for d in run_dirs}
    setups, differ = _setups(configs)
    if len(set(setups.values())) > 1:
        raise ValueError(
            f"the {len(run_dirs)} runs come from {len(set(setups.values()))} setups (they differ in {', '.join(differ)}): "
            "a seed's dense model is shared only by the runs of one setup; pass the runs of one"
        )
    prefixes = _method_labels(configs)
    parts, seen = [], set()
    for run_dir in run_dirs:
        cfg = configs[run_dir.name]
        saved = read_predictions(run_dir, split).get(split, {"label": None, "phases": {}})
        saved_phases = {phase: (saved["label"], pred) for phase, pred in saved["phases"].items()}
        for path in sorted(run_dir.glob(f"preds_*_{split}.npz")):  # an older run's own copies
            phase = path.name[len("preds_") : -len(f"_{split}.npz")]
            if phase not in saved_phases:
                with np.load(path) as z:
                    saved_phases[phase] = (z["label"], z["pred"])
        seen.update(saved_phases)
        for phase, (label, pred) in sorted(saved_phases.items()):
            if keep is not None and phase not in keep:
                continue
            part = pd.DataFrame(
                {"image_index": np.arange(len(label)), "label": np.asarray(label, np.int64), "pred": np.asarray(pred, np.int64)}
            )
            model = "dense" if phase == "dense" else f"{prefixes[run_dir.name]}{cfg['sparsity']:g}/{phase}"
            parts.append(part.assign(seed=cfg["seed"], run_id=run_dir.name, target_sparsity=cfg["sparsity"], phase=phase, model=model))
    missing = sorted(keep - seen) if keep is not None else []
    if missing:  # a typo ("finetune") would leave out every model of that phase without a word
        raise ValueError(
            f"phases {', '.join(missing)} are in none of the {len(run_dirs)} runs' predictions (split {split}); "
            f"the runs have {', '.join(sorted(seen)) or 'no predictions'}"
        )
    if not parts:
        return pd.DataFrame(columns=["seed", "run_id", "target_sparsity", "phase", "model", "image_index", "label", "pred"])
    df = pd.concat(parts, ignore_index=True)
    df = df.drop_duplicates(["seed", "model", "image_index"], keep="first")  # a copy of a run, or the shared dense model
    return df[["seed", "run_id", "target_sparsity", "phase", "model", "image_index", "label", "pred"]]
