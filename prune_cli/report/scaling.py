"""The pruning scaling law of Rosenfeld, Frankle, Carbin and Shavit, "On the Predictability of
Pruning Across Scales" (ICML 2021), fitted to a results folder by `prune-report`
(docs/scaling_law.md, which also says what of the paper could and could not be checked).

The paper's Equation 1 models the test error of a network pruned to density d (the fraction of
weights kept) from the error of the unpruned network, eps_np, with three free parameters:

    eps(d) = eps_np * | (d - j p (eps_up / eps_np)^(1/gamma)) / (d - j p) |^gamma,   j = sqrt(-1)

A low-error plateau (eps -> eps_np for d >> p (eps_up/eps_np)^(1/gamma)), a power-law region of
slope gamma, and a high-error plateau eps_up for d << p. The modulus of the complex ratio is
computed in real arithmetic: |a - j b|^2 = a^2 + b^2. The joint form replaces d by the invariant
m* = l^phi w^psi d, tying depth l and width w to density, with eps_up, gamma, p, phi and psi shared
by every (l, w, n) and eps_np the measured error of the dense network at that (l, w, n): the
training-set size n enters through eps_np only. When a family of runs varies the hidden width (w:
the mean of `model.widths`) or the depth (l: the number of weight layers, `len(model.widths) + 1`,
as ResNet-20 has 20; ResNet-20/32/56 are one family), an exponent psi or phi is fitted for it,
unless depth and width vary together so that their exponents cannot be told apart
(`separable_scales`).

A family is the set of completed runs whose configs agree on everything except the seed, the
sparsity and these scale keys (model widths, res_mlp's width and sections, the depth of a CIFAR
ResNet, dataset size keys, the fraction of the training split kept by data pruning). Per (scale,
density) the test error is averaged over seeds; eps_np is the seed mean of the runs' dense error
at that scale. A (scale, density) point at which one seed has runs of several configurations (mixing.py;
shared CSVs only; or run directories whose configs differ in scale values that give one scale, `SAME_SCALE`)
is left out of the fit, not averaged, and named in the row's `left_out`. The fit is least squares on the relative
deviations delta = (eps_hat - eps) / eps (scipy.optimize.least_squares, several starts, the best
kept), so that the low and high plateaus weigh alike; parameter standard errors come from the
Jacobian at the optimum, cov = s^2 (J^T J)^-1 with s^2 the residual variance (p is fitted as
log10 p; its error is carried back by the delta method). The fit error is reported as the paper
does: the mean mu and the standard deviation sigma of delta over the fitted points (with mean and
maximum of |delta| beside them).

A family is fitted only with at least (number of free parameters + 2) points, i.e. 5 densities for
Equation 1: fewer would be interpolated exactly (no residual left, no uncertainty); 2 residual
degrees of freedom are the fewest that give a variance estimate. Each scale that varies must
take at least 2 values. Skipped families are listed with the reason.

No torch: this module is part of prune-report."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from ..results import _digest, _result_items
from .compare import ABSENT, distinguishing_labels
from .levels import percent
from .mixing import CONFIGURATION, SEPARATE, rows_of, runs_of, without_mixed

EQUATION = "eps_np*|(m - j*p*(eps_up/eps_np)^(1/gamma)) / (m - j*p)|^gamma, m = d*w^psi*l^phi (Rosenfeld et al. 2021)"
# config keys that are scales of the law (not part of a family's identity)
WIDTH_KEY = "model.widths"
RES_MLP_KEYS = ("model.width", "model.blocks")  # res_mlp: the residual stream's width, its residual sections
SIZE_KEYS = ("dataset.num_samples", "dataset.samples_per_class", "dataset.max_train_samples")
KEEP_KEY = "data_pruning.keep"  # the fraction of the training split kept: the paper's subsampled training sets
SCALE_KEYS = frozenset({"sparsity", WIDTH_KEY, *RES_MLP_KEYS, *SIZE_KEYS, KEEP_KEY})
# CIFAR ResNet-<6n+2> (prune_cli/models/resnet.py): the depth is in the option's name, as in the
# paper's CIFAR-10 depth sweep; the options are one architecture family at different depths
RESNET = re.compile(r"resnet(\d+)")
SCALES = {"width": "psi_width", "depth": "phi_depth"}  # scale column -> its exponent's name
BASE_PARAMS = ("eps_up", "gamma", "p")
EXTRA_POINTS = 2  # points beyond the number of free parameters (residual degrees of freedom)
BOUND_MARGIN = 1e-4  # a parameter this close to a bound of the fit (fraction of its range) is at the bound
FAMILIES_PER_ROW = 2  # scaling_fit.png: two panels per family, this many families to a row


def pruned_error(density, eps_np, eps_up, gamma, p, scale=1.0):
    """Equation 1 of Rosenfeld et al. (2021) at invariant m = density * scale (arrays broadcast)."""
    m = np.asarray(density, dtype=float) * scale
    eps_np = np.asarray(eps_np, dtype=float)
    c = (eps_up / eps_np) ** (1.0 / gamma)
    return eps_np * ((m**2 + (p * c) ** 2) / (m**2 + p**2)) ** (gamma / 2.0)


@dataclass
class ScalingFit:
    """One family's fit: parameters and standard errors (NaN when skipped or not identifiable)."""

    status: str  # fitted | skipped
    reason: str = ""
    params: dict[str, float] = field(default_factory=dict)
    stderr: dict[str, float] = field(default_factory=dict)
    n_points: int = 0
    relative_errors: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scales: list[str] = field(default_factory=list)  # the scales whose exponents were fitted
    used: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # which input points were usable (usable_points)

    def row(self) -> dict:
        """Parameters, their standard errors and the fit error: the paper's mu and sigma (mean and
        standard deviation of delta = (eps_hat - eps) / eps over the points), and |delta|'s mean
        and maximum."""
        delta = self.relative_errors
        out: dict = {"status": self.status, "reason": self.reason, "n_points": self.n_points}
        for name, value in self.params.items():
            out[name] = value
            out[name + "_se"] = self.stderr.get(name, math.nan)
        fitted = self.status == "fitted" and len(delta) > 0
        out["mean_rel_deviation"] = float(delta.mean()) if fitted else math.nan
        out["std_rel_deviation"] = float(delta.std(ddof=0)) if fitted else math.nan
        out["mean_abs_rel_error"] = float(np.abs(delta).mean()) if fitted else math.nan
        out["max_abs_rel_error"] = float(np.abs(delta).max()) if fitted else math.nan
        return out


def _required(scales: list[str]) -> int:
    return len(BASE_PARAMS) + len(scales) + EXTRA_POINTS


def separable_scales(points: pd.DataFrame, scales: list[str]) -> tuple[list[str], str]:
    """The scales whose exponents the family's architectures can tell apart, and why any other was
    left out. The law sees a scale only through log m* = phi log l + psi log w + log d, and p takes a
    constant factor, so the exponents are determined only when [1, log l, log w] over the distinct
    (l, w) of the family has full column rank. When depth is a power of width across the family,
    l = c w^k (every wider net deeper in proportion; any two architectures that differ in both),
    l^phi w^psi = c^phi w^(psi + k phi): one combined exponent. The least-squares Jacobian does not
    show this reliably (its finite differences leave the null direction a relative 1e-8 from zero),
    so it is decided exactly here. Scales are kept in order (width before depth); a scale that adds
    no rank is left out and its exponent is absorbed by the kept ones."""
    kept, dropped = [], []
    for s in scales:
        trial = [*kept, s]
        grid = points[trial].drop_duplicates().to_numpy(float)
        design = np.column_stack([np.ones(len(grid)), np.log(grid)])
        (kept if np.linalg.matrix_rank(design) == len(trial) + 1 else dropped).append(s)
    if not dropped:
        return kept, ""
    absorbed = " and ".join(SCALES[s] for s in kept)
    reason = "; ".join(
        f"{SCALES[s]} not fitted: across this family's architectures log {s} is a linear function of "
        f"log {' and log '.join(kept)} (for example every wider net is also deeper), so the exponents "
        f"cannot be told apart; {absorbed} carries the effect of both"
        for s in dropped
    )
    return kept, reason


def fit_scaling_law(points: pd.DataFrame, scales: Optional[list[str]] = None) -> ScalingFit:
    """Fit Equation 1 (or 2, with an exponent per column of `scales`: width, depth) to `points`
    with columns density, error, eps_np (and the scale columns). Never raises on bad data: returns
    a skipped fit with its reason."""
    used, left_out = usable_points(points)
    fit = _fit(points[used], list(scales or []), left_out)
    fit.used = used
    return fit


def usable_points(points: pd.DataFrame) -> tuple[np.ndarray, str]:
    """(which of `points` the law can be fitted to, the others named with the reason): a point needs a
    density, an error and a dense error (NaN: every seed's accuracy NaN, say), and an error and a dense
    error above 0, since the fit's relative deviation (eps_hat - eps) / eps is undefined at eps = 0 (a
    model right on every test example) and Equation 1's eps_up / eps_np at eps_np = 0. Each such point
    is left out, never the whole family."""
    values = points[["density", "error", "eps_np"]].to_numpy(float)
    finite = np.isfinite(values).all(axis=1)
    with np.errstate(invalid="ignore"):
        zero_error = finite & (values[:, 1] <= 0)
        zero_dense = finite & ~zero_error & (values[:, 2] <= 0)
    notes = []
    for mask, what in (
        (~finite, "without an error, a dense error or a density"),
        (zero_error, "with an error of 0, where the relative error is undefined"),
        (zero_dense, "with a dense error eps_np of 0, where the law's eps_up / eps_np is undefined"),
    ):
        if mask.any():
            gone = ", ".join(f"{x:g}" for x in points.loc[mask, "density"])
            notes.append(f"left out {int(mask.sum())} point(s) {what}: density {gone}")
    return finite & ~zero_error & ~zero_dense, "; ".join(notes)


def _joined(*reasons: str) -> str:
    return "; ".join(r for r in reasons if r)


def _fit(points: pd.DataFrame, scales: list[str], left_out: str) -> ScalingFit:
    """fit_scaling_law on the usable points (`left_out`: why the others are not)."""
    from scipy.optimize import least_squares

    d = points["density"].to_numpy(float)
    eps = points["error"].to_numpy(float)
    eps_np = points["eps_np"].to_numpy(float)
    for s in scales:
        if points[s].nunique() < 2:
            return ScalingFit("skipped", _joined(f"{s} takes a single value", left_out), n_points=len(points))
        if not np.all(np.isfinite(points[s].to_numpy(float))) or np.any(points[s].to_numpy(float) <= 0):
            return ScalingFit("skipped", _joined(f"{s} missing or not positive", left_out), n_points=len(points))
    scales, confounded = separable_scales(points, scales)
    need = _required(scales)
    names = list(BASE_PARAMS) + [SCALES[s] for s in scales]
    if len(points) < need:
        few = (
            f"{len(points)} (scale, density) points; the fit needs at least {need} "
            f"({len(names)} free parameters + {EXTRA_POINTS} for a residual variance)"
        )
        return ScalingFit("skipped", _joined(few, left_out), n_points=len(points))
    if np.any(eps_np >= 1) or np.any(d <= 0):
        return ScalingFit("skipped", _joined("an unpruned error of 1 or a density of 0", left_out), n_points=len(points))
    logs = {s: np.log(points[s].to_numpy(float)) for s in scales}

    def unpack(theta):
        eps_up, gamma, log_p = theta[:3]
        log_scale = sum(theta[3 + i] * logs[s] for i, s in enumerate(scales)) if scales else 0.0
        return eps_up, gamma, 10.0**log_p, np.exp(log_scale)

    def residuals(theta):
        eps_up, gamma, p, scale = unpack(theta)
        return pruned_error(d, eps_np, eps_up, gamma, p, scale) / eps - 1.0

    low_up = float(eps_np.max()) * (1 + 1e-6)
    lower = [low_up, 1e-2, -8.0] + [-5.0] * len(scales)
    upper = [max(1.0, low_up * (1 + 1e-6)), 50.0, 3.0] + [5.0] * len(scales)
    best = None
    with np.errstate(all="ignore"):
        for up0 in (min(float(eps.max()) * 1.05, 1.0),):
            for gamma0 in (0.5, 2.0):
                for log_p0 in (-3.0, -1.5):
                    start = np.clip([up0, gamma0, log_p0] + [0.0] * len(scales), lower, upper)
                    start[0] = min(max(start[0], lower[0]), upper[0])
                    try:
                        res = least_squares(residuals, start, bounds=(lower, upper), x_scale="jac", max_nfev=2000)
                    except ValueError:
                        continue
                    if np.isfinite(res.cost) and (best is None or res.cost < best.cost):
                        best = res
    if best is None:
        return ScalingFit("skipped", _joined("the least-squares fit did not converge", left_out), n_points=len(points))
    theta = best.x
    rel = residuals(theta)
    dof = len(points) - len(theta)
    # A parameter at a bound (for example gamma run to 50 by a step-like curve, as a deep MLP's at
    # high sparsity) is not determined by the points and the local quadratic model behind the
    # Jacobian errors does not hold there: it gets no standard error, the others are computed with
    # it held fixed.
    margin = BOUND_MARGIN * np.subtract(upper, lower)  # the solver stops a hair inside a bound it runs to
    near = (theta - np.asarray(lower) <= margin) | (np.asarray(upper) - theta <= margin)
    free = (np.asarray(best.active_mask) == 0) & ~near
    jac = best.jac[:, free]
    se = np.full(len(theta), math.nan)
    with np.errstate(all="ignore"):
        cov = np.linalg.pinv(jac.T @ jac) * float(rel @ rel) / dof
        se[free] = np.sqrt(np.clip(np.diag(cov), 0, None))
        rank = np.linalg.matrix_rank(jac)
    params = {"eps_up": float(theta[0]), "gamma": float(theta[1]), "p": float(10.0 ** theta[2])}
    stderr = {"eps_up": float(se[0]), "gamma": float(se[1]), "p": float(params["p"] * math.log(10) * se[2])}
    for i, s in enumerate(scales):
        params[SCALES[s]] = float(theta[3 + i])
        stderr[SCALES[s]] = float(se[3 + i])
    n_free = int(free.sum())
    reason = "" if rank == n_free else f"parameters not all identifiable from these points (Jacobian rank {rank} of {n_free})"
    if not reason and free[1]:  # gamma free: its slope needs points between the plateaus
        reason = _plateaus_only(d * unpack(theta)[3], params, eps_np)
    if reason:
        stderr = {k: math.nan for k in stderr}
    bound = ", ".join(f"{names[i]} = {params[names[i]]:.3g}" for i in np.flatnonzero(~free))
    at_bound = f"at a bound of the fit, so without a standard error: {bound}" if bound else ""
    reason = "; ".join(r for r in (confounded, left_out, at_bound, reason) if r)
    return ScalingFit("fitted", reason, params, stderr, len(points), rel, scales)


def _plateaus_only(m: np.ndarray, params: dict[str, float], eps_np: np.ndarray) -> str:
    """Why gamma and p are not determined, or "": fewer than 2 points (invariants m, dense errors
    eps_np) inside the fitted power-law region [p, p (eps_up / eps_np)^(1/gamma)]. Points on the
    plateaus alone (the same error at every density) are fitted as well by any p beyond them with a
    gamma to match, so the Jacobian's tight standard errors there mean nothing."""
    low = params["p"]
    high = low * (params["eps_up"] / eps_np) ** (1.0 / params["gamma"])
    inside = int(np.sum((m >= low) & (m <= high)))
    if inside >= 2:
        return ""
    return (
        f"{inside} point(s) inside the fitted power-law region [{low:.3g}, {float(np.max(high)):.3g}] of the invariant: "
        "the points lie on the plateaus, which do not determine gamma and p (no standard errors)"
    )


# ---------------------------------------------------------------------------- the results folder


def _family_items(cfg: dict, items: Optional[dict[str, str]] = None) -> dict[str, str]:
    """The config values that make a family: the experiment key's items of the results package
    (prune_cli/results) without the law's scale keys (`items`: the config's `_result_items`, when
    already computed)."""
    items = _result_items(cfg) if items is None else items
    items = {k: v for k, v in items.items() if k not in SCALE_KEYS}
    if RESNET.fullmatch(str(items.get("model.name", ""))):
        items["model.name"] = "resnet"  # ResNet-20, -32, -56: one family, depth a scale
    return items


def _family(cfg: dict, items: Optional[dict[str, str]] = None) -> str:
    """`f-` and the digest of `_family_items`. The prefix keeps the CSV column text: a bare digest such
    as 41e66475 reads back from scaling_fit.csv as the number 4.1e66476 (inf)."""
    return "f-" + _digest(_family_items(cfg, items))


# the keys the family's title already shows (method / dataset / model / schedule)
TITLE_KEYS = frozenset({"method.name", "dataset.name", "model.name", "schedule.name"})


def family_settings(items: dict[str, dict[str, str]]) -> dict[str, str]:
    """Per family (its `_family_items`): the config keys in which it differs from the other families,
    as `data_pruning=el2n, data_pruning.proxies=4` (compare.distinguishing_labels): two families of
    one method, data, model and schedule were told apart only by their hashes."""
    if len(items) < 2:
        return {family: "" for family in items}
    keys = pd.DataFrame.from_dict(items, orient="index")
    keys = keys[[c for c in keys.columns if c not in TITLE_KEYS]]
    return distinguishing_labels(keys.astype(object).where(keys.notna(), ABSENT).astype(str))


def _architecture(model: dict) -> dict:
    """width and depth l of a model config, where the config determines them. l counts weight
    layers, as the paper's ResNet-20 has 20: an MLP's hidden layers + the output layer (width: the
    mean of `widths`); res_mlp's stem, two Linear layers per residual section and classifier
    (width: `width`); a CIFAR ResNet-<6n+2>'s 6n + 2 (no width key: every ResNet here has the
    same channel widths). Other models have neither."""
    number = (int, float)
    widths = model.get("widths")
    if isinstance(widths, list) and widths and all(isinstance(w, number) for w in widths):
        return {"width": float(np.mean(widths)), "depth": float(len(widths) + 1)}
    width, blocks = model.get("width"), model.get("blocks")
    if isinstance(width, number) and isinstance(blocks, number):
        return {"width": float(width), "depth": float(2 * blocks + 2)}
    resnet = RESNET.fullmatch(str(model.get("name", "")))
    return {"depth": float(resnet.group(1))} if resnet else {}


# The training splits the report knows without loading any data (no torch here): mnist1d keeps
# int(train_split x 10 floor(num_samples / 10)) of its examples for training (the mnist1d package's
# make_dataset, train_split 0.8; prune_cli/data/mnist1d.py), synthetic samples_per_class of each of its
# num_classes (prune_cli/data/synthetic.py), the image datasets their published training split
# (prune_cli/data/vision.py SOURCES; tests/test_scaling_joint.py checks that these agree).
MNIST1D_TRAIN_SPLIT, MNIST1D_CLASSES = 0.8, 10
PUBLISHED_TRAIN = {"mnist": 60000, "fashion_mnist": 60000, "cifar10": 50000, "cifar100": 50000}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _training_split(data: dict) -> tuple[Optional[int], Optional[list[int]]]:
    """(examples of the dataset's training split after `dataset.imbalance`, their count per class or None
    when unknown) as the dataset config determines them; (None, None) when it does not (a long tail over
    classes of unknown size, a dataset without a size). A dataset the report does not know (a plugin's)
    is taken to train on its `num_samples`, or `samples_per_class` of each of its `num_classes`."""
    name = data.get("name")
    per_class: Optional[list[int]] = None
    total: Optional[int] = None
    classes = data.get("num_classes", 3 if name == "synthetic" else None)
    if name == "mnist1d" and _number(data.get("num_samples")):
        total = int((int(data["num_samples"]) // MNIST1D_CLASSES) * MNIST1D_CLASSES * MNIST1D_TRAIN_SPLIT)
    elif name in PUBLISHED_TRAIN:
        total = PUBLISHED_TRAIN[name]
    elif _number(data.get("samples_per_class")) and _number(classes):
        per_class = [int(data["samples_per_class"])] * int(classes)
    elif _number(data.get("num_samples")):
        total = int(data["num_samples"])
    imbalance = data.get("imbalance", "none")
    counts = data.get("class_counts")
    if imbalance == "counts" and isinstance(counts, list) and counts and all(_number(c) for c in counts):
        per_class = [int(c) for c in counts]
    elif imbalance not in (None, "none"):
        return None, None  # a long tail of classes whose sizes the config does not give
    if per_class is not None:
        return sum(per_class), per_class
    return total, None


def training_examples(cfg: dict) -> float:
    """The number of examples a run of `cfg` trains on, as prune_cli/data/splits.py `build_splits` and
    data pruning take them: the dataset's training split (`_training_split`), a random subset of
    `dataset.max_train_samples` of it where that is smaller, less the stratified validation split
    (round(val_fraction x n) of each class's n), then `data_pruning.keep` of what is left
    (round(keep x N), at least 1). Exact where each class's count is known (synthetic, imbalance=counts,
    no subset); otherwise the validation split is rounded once over all classes instead of per class,
    which may differ from the count trained on by up to half an example per class. NaN when the config
    does not determine it."""
    data = cfg.get("dataset") or {}
    total, per_class = _training_split(data)
    if total is None:
        return math.nan
    cap = data.get("max_train_samples")
    if _number(cap) and cap < total:
        total, per_class = int(cap), None  # a random subset: its class counts are drawn
    val = data.get("val_fraction", 0.1)
    if not _number(val):
        return math.nan
    trained = sum(n - int(round(val * n)) for n in (per_class if per_class is not None else [total]))
    pruning = cfg.get("data_pruning") or {}
    keep = pruning.get("keep", 1.0) if pruning.get("name", "none") != "none" else 1.0
    return float(max(1, round(keep * trained))) if _number(keep) else math.nan


def _run_scales(cfg: dict) -> dict:
    """width and depth (`_architecture`); dataset_size: the training examples (`training_examples`), so
    that every size key (num_samples, samples_per_class, max_train_samples, data_pruning.keep) that
    changes what a run trains on gives it its own size, and each size its own eps_np."""
    out = _architecture(cfg.get("model") or {})
    out["dataset_size"] = training_examples(cfg)
    return out


def _error(accuracy) -> float:
    """1 - accuracy; an overflowed value (inf) is missing, as in the summary's tables."""
    error = 1.0 - float(accuracy)
    return error if math.isfinite(error) else math.nan


def scaling_points(
    metrics: pd.DataFrame, configs: dict[str, dict], split: str = "test", items: Optional[dict[str, dict[str, str]]] = None
) -> pd.DataFrame:
    """One row per run: family, scales, achieved density, final-phase error and dense error.
    `items`: run_id -> its config's `_result_items` (prune_cli.results.Results.items), when known."""
    items = items or {}
    if not len(metrics) or not {"run_id", "phase", "split", "metric", "value"} <= set(metrics.columns):
        return pd.DataFrame()
    rank = metrics["phase"].map({"finetuned": 2, "pruned": 1}).fillna(0)
    final = metrics[rank == rank.groupby(metrics["run_id"]).transform("max")]
    final = final[final["phase"].isin(["finetuned", "pruned"])]
    acc = final[(final["metric"] == "accuracy") & (final["split"] == split)].drop_duplicates("run_id").set_index("run_id")
    if not len(acc):
        return pd.DataFrame()
    dense = metrics[(metrics["phase"] == "dense") & (metrics["metric"] == "accuracy") & (metrics["split"] == split)]
    dense = dense.drop_duplicates("run_id").set_index("run_id")["value"]
    sparsity = final[(final["metric"] == "sparsity_prunable") & (final["split"] == "model")].drop_duplicates("run_id")
    sparsity = sparsity.set_index("run_id")["value"]
    identity = [k for k in (CONFIGURATION, "config_hash") if k in acc.columns]  # mixing.configuration_ids reads them
    rows = []
    for run, r in acc.iterrows():
        cfg = configs.get(run)
        dense_acc = dense.get(run, r.get("dense_value", math.nan))
        s = sparsity.get(run, r.get("target_sparsity", math.nan))
        context = {k: r.get(k, "") for k in ("dataset", "model", "method", "schedule")}
        own = _family_items(cfg, items.get(run)) if cfg is not None else None
        family = "f-" + _digest(own) if own is not None else "/".join(str(v) for v in context.values())
        rows.append(
            {
                "family": family,
                **context,
                **(_run_scales(cfg) if cfg is not None else {"dataset_size": math.nan}),
                "run_id": run,
                "seed": r.get("seed"),
                "density": 1.0 - float(s),
                "target_density": 1.0 - float(r.get("target_sparsity", s)),
                "error": _error(r["value"]),
                "eps_np": _error(dense_acc),
                **{k: r.get(k) for k in identity},
                "keyed_by_config": cfg is not None,  # False: the family is the context columns (shared CSVs only)
                "family_items": own,
            }
        )
    return pd.DataFrame(rows)


def fit_families(points: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit every family: (one row per family for scaling_fit.csv, the seed-mean points with the fit's
    prediction for the plot). A point at which one seed has runs of several configurations (mixing.py:
    with only the shared CSVs a family is its context columns, which hold no train.epochs) is left out,
    its runs and their dense errors with it, and the row's `left_out` says which and why."""
    rows, fitted = [], []
    settings = {}
    if "family_items" in points.columns:  # run directories known: the keys that tell the families apart
        known = points.dropna(subset=["family_items"]).drop_duplicates("family")
        settings = family_settings(dict(zip(known["family"], known["family_items"])))
    for family, every in points.groupby("family", sort=True):
        scale_cols = [c for c in ("width", "depth", "dataset_size") if c in every.columns]
        at_scale = [c for c in scale_cols if every[c].notna().all()]
        # a point per (scale, target density): seeds may reach different densities (bernoulli sampling)
        every = every.assign(target=every["target_density"].round(12).fillna(every["density"]))
        runs, mixed = without_mixed(every, at_scale + ["target"])
        left_out = "; ".join(f"{_point(at_scale, key)}: its {runs_of(info)}" for key, info in mixed.items())
        runs, several = _without_several_dense_models(runs, at_scale)
        left_out = "; ".join(x for x in (left_out, *several) if x)
        first = every.iloc[0]
        head = {
            "family": family,
            "dataset": first["dataset"],
            "model": ", ".join(sorted(every["model"].astype(str).unique(), key=_natural)),  # resnet20, resnet32, resnet56
            **{k: first[k] for k in ("method", "schedule")},
            "setting": settings.get(family, ""),  # the config keys that tell it from the other families
        }
        if not len(runs):
            reason = (
                "no point left: at every (scale, density) point one seed has runs of several configurations"
                if not several
                else "no point left: every point's runs mix configurations or dense models (left_out)"
            )
            rows.append(_row(head, ScalingFit("skipped", reason).row(), left_out))
            continue
        # n counts the seeds with an error at the point (nunique skips NaN), as the mean and std do: a
        # diverged seed counted there narrowed the plot's confidence bar (docs/report.md)
        valued = runs.assign(valued_seed=runs["seed"].where(runs["error"].notna()))
        mean = valued.groupby(at_scale + ["target"], dropna=False).agg(
            density=("density", "mean"), error=("error", "mean"), error_std=("error", "std"), n_seeds=("valued_seed", "nunique")
        )
        # the dense error of a scale is the mean over its seeds: a seed's runs share one dense model, and a
        # seed run at more densities must not weigh more (each seed's runs averaged first)
        per_seed = runs.groupby(at_scale + ["seed"], dropna=False)["eps_np"].mean()
        eps_np = per_seed.groupby(level=list(range(len(at_scale))), dropna=False).mean() if at_scale else per_seed.mean()
        mean = mean.reset_index()
        mean = mean.merge(eps_np.rename("eps_np").reset_index(), on=at_scale) if at_scale else mean.assign(eps_np=eps_np)
        scales = [s for s in ("width", "depth") if s in at_scale and mean[s].nunique() > 1]
        varying = [c for c in at_scale if mean[c].nunique() > 1]  # each value of these has its own eps_np
        fit = fit_scaling_law(mean.drop(columns="target"), scales)
        scales = fit.scales if fit.status == "fitted" else scales
        # the counts are of the runs that are fitted: those with an error at a point the fit could use
        # (usable_points: not a point without an error or with an error of 0), as docs/scaling_law.md says
        mean = mean[fit.used]
        fitted_runs = valued[valued["valued_seed"].notna()].merge(mean[at_scale + ["target"]], on=at_scale + ["target"])
        mean = mean.drop(columns="target")
        row = _row(
            head,
            fit.row(),
            left_out,
            scales=", ".join(["density", *scales]),
            varies=", ".join(["density", *varying]),
            n_dense_errors=int(mean.groupby(varying).ngroups) if varying else int(len(mean) > 0),
            n_runs=len(fitted_runs),
            n_seeds=int(fitted_runs["seed"].nunique()),
            n_densities=int(fitted_runs["target"].nunique()),  # achieved ones differ by rounding per width
        )
        rows.append(row)
        if fit.status == "fitted":
            scale = np.exp(sum(fit.params[SCALES[s]] * np.log(mean[s].to_numpy(float)) for s in scales)) if scales else 1.0
            p = fit.params
            predicted = pruned_error(mean["density"], mean["eps_np"], p["eps_up"], p["gamma"], p["p"], scale)
            fitted.append(
                mean.assign(
                    family=family, predicted=predicted, scale=scale, label=_title(row), group_keys=",".join(varying), **fit.params
                )
            )
    return pd.DataFrame(rows), (pd.concat(fitted, ignore_index=True) if fitted else pd.DataFrame())


def _without_several_dense_models(runs: pd.DataFrame, at_scale: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """(`runs` less those of each scale at which one seed's runs carry more than one dense value, a note
    per such scale). With only the shared CSVs (`keyed_by_config` False) a family is its context
    columns, which hold no train.epochs or dataset options: its runs at one scale can come from several
    dense models (2 epochs at some densities, 6 at others) although no (scale, density) point mixes
    configurations. The runs of one dense model carry one dense value (the dense cache; a seed's dense
    phase); averaging several into one eps_np gives the dense error of no network (mixing.py), so those
    runs are left out, not pooled. A family read from run directories is the runs' whole config minus
    the law's scales: its seed's runs at one scale share their dense configuration, and differing dense
    values are copies of it (averaged, as mixing.py's rule allows)."""
    unkeyed = ~runs["keyed_by_config"].fillna(False).astype(bool) if "keyed_by_config" in runs.columns else None
    part = runs if unkeyed is None else runs[unkeyed.to_numpy()]
    if not len(part):
        return runs, []
    values = part.assign(_dense=part["eps_np"].astype(float).round(9))
    per_seed = values.groupby(at_scale + ["seed"], dropna=False)["_dense"].nunique()
    bad = per_seed[per_seed > 1]
    if not len(bad):
        return runs, []
    drop = pd.Series(False, index=runs.index)
    notes = []
    for key, seeds in bad.reset_index().groupby(at_scale, dropna=False)["seed"] if at_scale else [((), bad.reset_index()["seed"])]:
        key = key if isinstance(key, tuple) else (key,)
        here = rows_of(runs, at_scale, key) if at_scale else pd.Series(True, index=runs.index)
        drop |= here
        seeds = sorted(seeds.tolist())
        most = int(bad.max()) if not at_scale else int(bad.loc[key].max())
        which = f"seed {seeds[0]} has" if len(seeds) == 1 else f"seeds {', '.join(str(x) for x in seeds)} each have"
        where = ", ".join(f"{name} {float(v):g}" for name, v in zip(at_scale, key)) if at_scale else "every density"
        notes.append(
            f"the dense errors of {where}: its {int(runs.loc[here, 'run_id'].nunique())} runs come from several dense "
            f"models (distinct dense values; {which} runs of {most}), whose errors are not averaged into one eps_np"
        )
    return runs[~drop.to_numpy()], notes


def _row(head: dict, fit: dict, left_out: str, **counts) -> dict:
    """A scaling_fit.csv row: the family's context, its counts (0 where none given), the fit, every
    parameter (NaN when not fitted), `left_out` (the points that mix configurations) and the equation."""
    row = {**head, "scales": "density", "varies": "density", "n_dense_errors": 0, "n_runs": 0, "n_seeds": 0, "n_densities": 0}
    row.update(counts)
    row.update(fit)
    for name in [*BASE_PARAMS, *SCALES.values()]:
        row.setdefault(name, math.nan)
        row.setdefault(name + "_se", math.nan)
    row["left_out"] = left_out
    row["equation"] = EQUATION
    return row


def _point(at_scale: list[str], key: tuple) -> str:
    """'width 64, density 0.5': a point of a family (`key`: its values of `at_scale` and the target density)."""
    return ", ".join(f"{name} {float(v):g}" for name, v in zip([*at_scale, "density"], key))


def _natural(name: str) -> tuple:
    """Sort key that puts resnet56 before resnet110."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _title(row: dict) -> str:
    setting = row.get("setting")
    setting = f" [{setting}]" if isinstance(setting, str) and setting else ""
    return f"{row['method']} / {row['dataset']} / {row['model']} / {row['schedule']}{setting} ({row['family']})"


def _fmt(value: float, se: float) -> str:
    return f"{value:.3g} ± {se:.2g}" if math.isfinite(se) else f"{value:.3g} (± n/a)"


def summary_lines(table: pd.DataFrame) -> list[str]:
    """summary.md: one line per family (parameters ± standard error and the fit error, or why it was skipped)."""
    lines = ["## Pruning scaling law (Rosenfeld et al., ICML 2021, Eq. 1-2)", ""]
    from .summary import bullet_line  # a family's label holds config values: never a line of its own

    for row in table.to_dict(orient="records"):
        lines += [bullet_line(line) for line in _family_lines(row)]
    return lines + ["", "Equation, parameters and the points needed: docs/scaling_law.md; table: scaling_fit.csv.", ""]


# The other way configurations of one family meet at a point (audit of 2026-12-03): their scale values differ
# but give the same scale, w being the mean of model.widths and l their number plus one.
SAME_SCALE = "give them scales that differ (w is the mean of model.widths, l their number + 1: [32,32] and [48,16] are one scale)"


def _family_lines(row: dict) -> list[str]:
    """A family's line in summary.md and, below it, the points left out because they mix configurations."""
    left_out = row.get("left_out")
    below = []
    if isinstance(left_out, str) and left_out:
        below = [
            f"  - {row['method']} / {row['dataset']} / {row['model']} / {row['schedule']}: left out of the fit, not averaged "
            f"as repeated runs (the family does not tell their configurations apart): {left_out}; {SEPARATE}, or, where "
            f"they are kept, {SAME_SCALE}"
        ]
    densities = "1 density" if row["n_densities"] == 1 else f"{row['n_densities']} densities"
    head = f"- {_title(row)}, {densities}, {row['n_seeds']} seed(s): "
    if row["status"] != "fitted":
        return [head + f"not fitted: {row['reason']}", *below]
    names = [name for name in [*BASE_PARAMS, *SCALES.values()] if math.isfinite(row[name])]
    params = [f"{name} = {_fmt(row[name], row[name + '_se'])}" for name in names]
    fit_error = (
        f"relative deviation mu = {row['mean_rel_deviation']:.1%}, sigma = {row['std_rel_deviation']:.1%} "
        f"(mean |delta| {row['mean_abs_rel_error']:.1%}, max {row['max_abs_rel_error']:.1%}) "
        f"over {row['n_points']} points, {row['n_dense_errors']} dense error(s) eps_np"
    )
    return [head + ", ".join(params) + "; " + fit_error + (f"; {row['reason']}" if row["reason"] else ""), *below]


def plot_fits(fitted: pd.DataFrame, out: Path, split: str = "test", confidence: float = 0.95) -> Optional[Path]:
    """Two panels per fitted family. Left: error against density (log-log), the seed means (error
    bars: the Student-t interval of the seed mean at `confidence`, prune-report's --confidence, as in
    every other figure; before, the std over seeds) and the fitted law, one colour per (width, depth, dataset size) that has
    its own eps_np. Right: fitted against measured error with the identity line, the paper's view
    of a joint fit over all scales."""
    if not len(fitted):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogFormatter

    from .plots import _half, _legend, _save, one_seed_points

    plain = FuncFormatter(lambda v, _: f"{v:g}")

    class PlainMinor(LogFormatter):
        """Minor tick labels as plain numbers, only where matplotlib's LogFormatter labels them (an axis
        spanning under one decade; a subset of the ticks): before, every minor tick was labelled and
        the labels overlapped."""

        def __call__(self, x, pos=None):
            return f"{x:g}" if super().__call__(x, pos) else ""

    families = list(dict.fromkeys(fitted["family"]))
    fig, axes = plt.subplots(1, 2 * len(families), squeeze=False)
    for i, family in enumerate(families):
        ax, diag = axes[0, 2 * i], axes[0, 2 * i + 1]
        part = fitted[fitted["family"] == family]
        keys = [k for k in part["group_keys"].iloc[0].split(",") if k]
        groups = part.groupby(keys) if keys else [((), part)]
        for j, (key, g) in enumerate(groups):
            key = key if isinstance(key, tuple) else (key,)
            tag = ", ".join(f"{k}={v:g}" for k, v in zip(keys, key))
            g = g.sort_values("density")
            color = f"C{j % 10}"
            half = _half(pd.DataFrame({"n": g["n_seeds"], "sd": g["error_std"]}), confidence)  # NaN for one seed: no bar
            ax.errorbar(
                g["density"].to_numpy(float),
                g["error"].to_numpy(float),
                yerr=half,  # NaN: no bar, where a zero-length one read as seeds that agree; the point is hollow
                fmt="o",
                ms=3,
                color=color,
                label=tag or "data",
            )
            one_seed_points(ax, g["density"], g["error"], g["n_seeds"], color, "o", ms=3)
            first = g.iloc[0]
            grid = np.geomspace(g["density"].min() / 1.5, min(1.0, g["density"].max() * 1.5), 200)
            curve = pruned_error(grid, first["eps_np"], first["eps_up"], first["gamma"], first["p"], first["scale"])
            ax.plot(grid, curve, "-", lw=1, color=color)
            diag.plot(g["error"], g["predicted"], "o", ms=3, color=color)
        low = min(part["error"].min(), part["predicted"].min()) / 1.05
        high = max(part["error"].max(), part["predicted"].max()) * 1.05
        diag.plot([low, high], [low, high], "k--", lw=0.8)
        for a in (ax, diag):
            a.set_yscale("log")
            a.yaxis.set_major_formatter(plain)
            a.yaxis.set_minor_formatter(PlainMinor(labelOnlyBase=False))
        ax.set_xscale("log")
        diag.set_xscale("log")
        for a in (ax, diag):
            a.xaxis.set_major_formatter(plain)
            a.xaxis.set_minor_formatter(PlainMinor(labelOnlyBase=False))
        ax.set_xlabel("density (fraction of prunable weights kept)")
        ax.set_ylabel(f"{split} error (seed means ± {percent(confidence)} CI; lines: fit)")
        ax.set_title(part["label"].iloc[0], fontsize=8, y=1.0)
        diag.set_xlabel(f"measured {split} error")
        diag.set_ylabel(f"fitted {split} error")
        diag.set_title("fit vs measurement (dashed: equality)", fontsize=8, y=1.0)
        _legend(ax, 7)
    return _save(fig, out / "scaling_fit.png", per_row=2 * FAMILIES_PER_ROW)
