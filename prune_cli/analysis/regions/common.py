"""Finding a network's nonlinearities with forward hooks, so one counter serves MLPs and CNNs.

A supported network is any composition of affine modules (Linear, Conv, BatchNorm in eval mode,
average pooling, flatten, dropout in eval mode, parameter-free shortcuts) with nn.ReLU and
nn.MaxPool1d/2d modules, each module instance used once per forward pass. Counting runs on a
float64 copy in eval mode. Activation pattern = sign of every ReLU input + argmax of every
max-pool window.
"""

from __future__ import annotations

import copy
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import PruneCliError
from ...models.graph import is_affine, is_nonlinear


class RegionsError(PruneCliError):
    """The network or the requested count is outside what a region counter supports."""


def prepare(model: nn.Module) -> nn.Module:
    """A float64 eval-mode copy; raises RegionsError naming any module that is not affine/ReLU/max-pool."""
    for name, module in model.named_modules():
        if is_affine(module):  # also a composite one that declares itself affine (parameter_free_affine)
            continue
        if len(list(module.children())) == 0 and not is_nonlinear(module):
            raise RegionsError(
                f"region counting supports networks built from Linear/Conv/BatchNorm/pooling/Flatten with "
                f"nn.ReLU and nn.MaxPool1d/2d; module '{name}' is {type(module).__name__}"
            )
    net = copy.deepcopy(model).double().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class _Stop(Exception):
    pass


class Tracer:
    """Forward hooks on every ReLU / max-pool: records their inputs (and outputs) in call order.

    `upto=l` stops the forward pass right after nonlinearity l has been seen (saves the rest)."""

    def __init__(self, net: nn.Module):
        self.net = net
        self.modules = [m for m in net.modules() if is_nonlinear(m)]
        if not self.modules:
            raise RegionsError("the network has no nn.ReLU or nn.MaxPool module, so it has one region")

    def run(self, x: torch.Tensor, upto: Optional[int] = None) -> list[tuple[nn.Module, torch.Tensor, torch.Tensor]]:
        records: list = []

        def hook(module, inputs, output):
            records.append((module, inputs[0], output))
            if upto is not None and len(records) > upto:
                raise _Stop

        handles = [m.register_forward_hook(hook) for m in self.modules]
        self.output = None
        try:
            self.output = self.net(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        seen = [id(r[0]) for r in records]
        if len(set(seen)) != len(seen):
            raise RegionsError(
                "a ReLU/max-pool module is used more than once per forward pass; region "
                "counting needs one module instance per position"
            )
        return records

    def count(self, example: torch.Tensor) -> int:
        return len(self.run(example[:1]))


def _pair(v, n: int) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


def pool_windows(module: nn.Module, x: torch.Tensor, out_shape: torch.Size, pad: float = -math.inf) -> torch.Tensor:
    """Values of every max-pool window, shape (N, C, K, L), padding as -inf (window max = output)."""
    if isinstance(module, nn.MaxPool1d):
        x = x.unsqueeze(2)
        k, s, p, d = (
            (1, _pair(module.kernel_size, 1)[0]),
            (1, _pair(module.stride or module.kernel_size, 1)[0]),
            (0, _pair(module.padding, 1)[0]),
            (1, _pair(module.dilation, 1)[0]),
        )
        out_hw = (1, out_shape[-1])
    else:
        k, s = _pair(module.kernel_size, 2), _pair(module.stride or module.kernel_size, 2)
        p, d = _pair(module.padding, 2), _pair(module.dilation, 2)
        out_hw = tuple(out_shape[-2:])
    n, c, h, w = x.shape
    extra = [max(0, (o - 1) * st + dl * (kk - 1) + 1 - (size + 2 * pp)) for o, st, dl, kk, size, pp in zip(out_hw, s, d, k, (h, w), p)]
    xp = F.pad(x, (p[1], p[1] + extra[1], p[0], p[0] + extra[0]), value=pad)
    cols = F.unfold(xp.reshape(n * c, 1, *xp.shape[2:]), k, dilation=d, stride=s)  # (N*C, K, L')
    windows = cols.reshape(n, c, cols.shape[1], -1)
    return windows[..., : out_hw[0] * out_hw[1]]


def check_windows(module, x, out) -> torch.Tensor:
    win = pool_windows(module, x, out.shape)
    if not torch.equal(win.max(dim=2).values, out.reshape(out.shape[0], out.shape[1], -1)):
        raise RegionsError(f"could not reproduce {module} with its windows (unsupported pooling options)")
    return win


def pattern(tracer: Tracer, x: torch.Tensor) -> torch.Tensor:
    """Activation pattern per row of x as an integer matrix: ReLU signs (0/1) then pool argmaxes."""
    parts = []
    for module, inp, out in tracer.run(x):
        if isinstance(module, nn.ReLU):
            parts.append((inp > 0).reshape(len(x), -1).to(torch.int64))
        else:
            parts.append(pool_windows(module, inp, out.shape).argmax(dim=2).reshape(len(x), -1))
    return torch.cat(parts, dim=1)


def model_hash(model: nn.Module) -> str:
    """Short content hash of the weights (logged beside every count)."""
    import hashlib

    h = hashlib.sha1()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]
