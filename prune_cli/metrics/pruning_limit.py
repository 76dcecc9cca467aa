"""`metrics.pruning_limit`: predicted vs actual one-shot pruning limit of the dense model
(Zhang et al., NeurIPS 2024 / arXiv 2306.05857 v1 code; analysis.md section 2).

Runs in the dense phase only (the prediction is a property of the trained dense weights w*).
Predicted: epsilon (std of the minibatch training objective), SLQ spectrum of the training-loss
Hessian, R(rho) to global magnitude pruning of the run's prunable weights, the self-consistent
ratio rho_hat and the crossings of the two Jensen (trace) curves (Tr|H|: a lower bound of rho_hat;
Tr H from Hutchinson: a heuristic, analysis/limit.py). Actual: the dense model
pruned one-shot at every grid ratio, without fine-tuning, evaluated on `split`.

Rows (metrics.csv): split=train: limit_eps, limit_hessian_dim, limit_trace_hutchinson,
limit_trace_abs_slq, limit_flat_fraction, limit_rho_hat, limit_R_at_rho_hat,
limit_rho_hat_bound_abs, limit_rho_hat_bound_hutch; split=<split>: limit_actual_strict,
limit_actual_tol_<d>pp. Table pruning_limit_sweep.csv: split, rho, R, accuracy, loss, rho_pred,
bound_abs, bound_hutch. Cost: `ratios` evaluations of `split`, one pass over the training set
for epsilon, lanczos_num x lanczos_iter + hutchinson_probes HVPs over `samples` examples.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from omegaconf import DictConfig

from ..core import interrupts
from ..core.checks import check as require, seed_option
from ..core.config_base import config_schema
from ..core.errors import ConfigError
from . import MetricContext, MetricResult, register_metric
from .hessian import HVP_MODES, AtSafePoints, check_positive_ints


@config_schema("metric", "pruning_limit")
@dataclass
class PruningLimitConfig:
    hashed_when_disabled: ClassVar[bool] = True  # its node is in every run id, even disabled (as before metric plugins)
    enabled: bool = False
    ratios: int = 200  # sweep / prediction grid: rho = i / ratios, i = 0 .. ratios - 1
    split: str = "test"  # split the no-fine-tuning sweep is evaluated on
    eps_batch_size: int = 128  # minibatch size of the loss whose std is epsilon
    samples: int = 0  # training examples for the Hessian; 0 = the whole training split (as the paper)
    batch_size: int = 256  # examples per HVP chunk
    hvp: str = "recompute"  # recompute (memory of one chunk) | reuse_graph (faster, memory of all samples)
    lanczos_iter: int = 128
    lanczos_num: int = 1
    hutchinson_probes: int = 32
    flat_fraction: float = 0.0  # fraction f of flat directions (the authors use 0 for FC nets)
    tolerances: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.5, 1.0])  # accuracy drops (pp)
    seed: int = 0

    @staticmethod
    def check_training_examples(cfg: DictConfig, examples: int, exact: bool) -> None:
        """epsilon is the spread of the loss over minibatches of the training split: one batch gives 0
        and a meaningless prediction (prune_cli/run/prevalidate.py check_data_sizes; `exact=False`:
        `examples` is an upper bound, so a failure is certain either way)."""
        size = cfg.metrics.pruning_limit.eps_batch_size
        require(
            size < examples,
            "metrics.pruning_limit.eps_batch_size",
            size,
            f"at most {examples - 1}, so that the {'' if exact else 'at most '}{examples} training examples make at least 2 "
            "minibatches (epsilon is the spread of the loss over them)",
        )

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        node = cfg.metrics.pruning_limit
        check_positive_ints(
            node,
            "metrics.pruning_limit",
            {
                "ratios": 2,
                "eps_batch_size": 1,
                "samples": 0,
                "batch_size": 1,
                "lanczos_iter": 1,
                "lanczos_num": 1,
                "hutchinson_probes": 1,
            },
        )
        seed_option(cfg, "metrics.pruning_limit.seed")
        if node.split not in ("train", "val", "test"):
            raise ConfigError("metrics.pruning_limit.split", node.split, "one of train, val, test")
        if node.hvp not in HVP_MODES:
            raise ConfigError("metrics.pruning_limit.hvp", node.hvp, "one of " + ", ".join(HVP_MODES))
        f = node.flat_fraction
        if not (isinstance(f, (int, float)) and 0 <= f < 1):
            raise ConfigError("metrics.pruning_limit.flat_fraction", f, "a number in [0, 1)")
        tol = list(node.tolerances)
        if not all(isinstance(t, (int, float)) and math.isfinite(t) and t >= 0 for t in tol):
            raise ConfigError("metrics.pruning_limit.tolerances", tol, "a list of accuracy drops in points, each >= 0")
        # the row names analysis/limit.py `tolerance_key` gives (tol_<d:g>pp), formatted here: importing
        # prune_cli.analysis (torch, the Hessian code) would slow every command that only checks a config
        names = [f"tol_{t:g}pp" for t in tol]
        if len(set(names)) != len(names):  # one row per name: a second tolerance of that name was lost without a word
            raise ConfigError(
                "metrics.pruning_limit.tolerances",
                tol,
                "a list of accuracy drops in points, each >= 0, each once as its row name prints it "
                f"(limit_actual_tol_<d:g>pp; these name rows {', '.join(sorted({n for n in names if names.count(n) > 1}))} "
                "more than once, so one would be lost)",
            )


@register_metric("pruning_limit")
def pruning_limit_metric(ctx: MetricContext, phase: str, node: DictConfig) -> MetricResult:
    if phase != "dense":
        return MetricResult()
    from ..analysis.hessian import HessianOperator, spectrum, training_subset
    from ..analysis.limit import actual_limits, keep_counts, loss_std, magnitude_order, masks_at, prediction, ratio_grid
    from ..training import evaluate

    model = copy.deepcopy(ctx.model).eval()
    named = dict(model.named_parameters())
    weights = [named[n] for n in ctx.prunable]
    l1 = ctx.train.get("l1", 0.0)
    l1_weights = [m.weight for _, m in model.prunable_layers()]
    eps = loss_std(
        model,
        ctx.data.train_x,
        ctx.data.train_y,
        node.eps_batch_size,
        torch.Generator().manual_seed(node.seed),
        ctx.data.augment,
        penalty=(lambda: l1 * sum(w.abs().sum() for w in l1_weights)) if l1 else None,
    )
    x, y = training_subset(ctx.data.train_x, ctx.data.train_y, node.samples, node.seed)
    op = AtSafePoints(HessianOperator(model, x, y, node.batch_size, hvp=node.hvp))  # a stop signal ends it at an HVP
    spec = spectrum(op, node.lanczos_iter, node.lanczos_num, node.hutchinson_probes, torch.Generator().manual_seed(node.seed))
    del op
    rhos = ratio_grid(node.ratios)
    pred = prediction(weights, rhos, eps, spec, node.flat_fraction)

    dense = [w.detach().clone() for w in weights]
    order = magnitude_order(dense)
    ex, ey = ctx.data.split(node.split)
    accuracy, losses = [], []
    with torch.no_grad():
        for keep in keep_counts(rhos, sum(w.numel() for w in dense)):
            interrupts.check()  # a safe point between the sweep's evaluations (prune_cli/core/interrupts.py)
            for w, d, m in zip(weights, dense, masks_at(dense, order, keep)):
                w.copy_(d * m.to(d.device))
            ev = evaluate(model, ex, ey, ctx.eval_batch_size)
            accuracy.append(float((ev.predictions == ev.targets).double().mean()))
            losses.append(ev.loss)
    actual = actual_limits(rhos, torch.tensor(accuracy, dtype=torch.float64), list(node.tolerances))

    train_values = {
        "limit_eps": eps,
        "limit_hessian_dim": spec.dim,
        "limit_trace_hutchinson": spec.trace_hutchinson,
        "limit_trace_abs_slq": pred["trace_abs_slq"],
        "limit_flat_fraction": node.flat_fraction,
        "limit_rho_hat": pred["rho_hat"],
        "limit_R_at_rho_hat": pred["R_at_rho_hat"],
        "limit_rho_hat_bound_abs": pred["rho_hat_bound_abs"],
        "limit_rho_hat_bound_hutch": pred["rho_hat_bound_hutch"],
    }
    scalars = [{"split": "train", "metric": k, "value": float(v)} for k, v in train_values.items()]
    scalars += [{"split": node.split, "metric": f"limit_actual_{k}", "value": v} for k, v in actual.items()]
    sweep = [
        {
            "split": node.split,
            "rho": float(r),
            "R": float(pred["R"][i]),
            "accuracy": accuracy[i],
            "loss": losses[i],
            "rho_pred": float(pred["rho_pred"][i]),
            "bound_abs": float(pred["bound_abs"][i]),
            "bound_hutch": float(pred["bound_hutch"][i]),
        }
        for i, r in enumerate(rhos)
    ]
    return MetricResult(scalars=scalars, tables={"pruning_limit_sweep.csv": sweep})
