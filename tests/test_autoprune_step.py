"""One whole optimizer step of AutoPrune's auxiliary parameters (prune_cli/pruning/train_time/
autoprune.py; docs/training_time.md, "AutoPrune"), against the rule computed by hand from dL/dT:

    m <- m - aux_lr * (dL/dT * sgn(w) * h'(m) + reg * h'(m)),   dL/dw = dL/dT * 1[m > 0],

where dL/dT is the gradient of the cross-entropy with respect to the gated weights T = w * 1[m > 0]
as plain leaf tensors of an ungated copy of the network (no hook involved), and h' the leaky-ReLU
surrogate (1 where m > 0, `leak` elsewhere)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.func import functional_call

from conftest import FAST
from prune_cli.pruning import PruneContext, select_prunable
from prune_cli.pruning.train_time import HookContext
from prune_cli.pruning.train_time.autoprune import AutoPruneHook
from tests.helpers import Chain, composed

OPTIONS = ["schedule=autoprune", "schedule.aux_lr=0.7", "schedule.reg=0.05", "schedule.leak=0.2"]


def test_one_step_of_the_auxiliary_parameters_equals_the_rule_by_hand():
    torch.manual_seed(0)
    model = Chain(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    cfg = copy.deepcopy(composed([*FAST, "dataset.input_dim=5", "sparsity=0.5", *OPTIONS]))
    prune = PruneContext(method=cfg.method, generator=torch.Generator().manual_seed(0), config=cfg)
    hook = AutoPruneHook(HookContext(cfg, prune, tuple(select_prunable(model, cfg.method)), 0.5))
    hook.start(model)
    with torch.no_grad():  # some gates closed, some exactly at 0 (closed), the rest open
        for m in hook.aux.values():
            m.copy_(torch.randn_like(m) * 0.3)
            m.view(-1)[:3] = 0.0
    m0 = {n: m.detach().clone() for n, m in hook.aux.items()}
    w0 = {n: p.detach().clone() for n, p in model.named_parameters() if n in hook.aux}
    x, y = torch.randn(9, 5), torch.randint(0, 3, (9,))

    # by hand: dL/dT on an ungated copy whose gated weights are leaf tensors
    gated = {n: (w0[n] * (m0[n] > 0)).requires_grad_(True) for n in w0}
    loss = F.cross_entropy(functional_call(copy.deepcopy(model), gated, (x,)), y)
    d_t = dict(zip(gated, torch.autograd.grad(loss, list(gated.values()))))

    # the hook's step: forward, backward, before_step (the auxiliary SGD step)
    model.zero_grad()
    F.cross_entropy(hook.forward(model, x), y).backward()
    hook.before_step(model, 0)

    for n in m0:
        surrogate = torch.where(m0[n] > 0, torch.ones_like(m0[n]), torch.full_like(m0[n], 0.2))
        expected = m0[n] - 0.7 * (d_t[n] * torch.sign(w0[n]) * surrogate + 0.05 * surrogate)
        assert torch.allclose(hook.aux[n].detach(), expected, rtol=1e-5, atol=1e-7), n
        weight = dict(model.named_parameters())[n]
        assert torch.allclose(weight.grad, d_t[n] * (m0[n] > 0), rtol=1e-5, atol=1e-7), n  # not regularized
        assert torch.equal(weight.detach(), w0[n])  # before_step leaves the weights to the run's optimizer
