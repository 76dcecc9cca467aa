"""NTK-parameterised ReLU MLP with the random-pruning rescale multiplier (Yang & Wang, AISTATS 2023; docs/analysis.md).

Each layer stores W ~ N(0, 1) unscaled and computes F.linear(x, M*W) * sigma_w / sqrt(fan_in * q).
Pruning zeroes weights in place (the project's masks), so M*W is the weight itself. The keep
probability q is read from the layer's own weight: q = fraction of nonzero entries, i.e. the
realised density of the mask (q = 1 for a dense layer, 1 - p after Bernoulli(1 - p) random
pruning). The multiplier therefore follows the mask the pruner produced (structures removing whole
units are refused with the rescale: a kept unit's fan-in is whole, see `check`), with no extra state
to keep in sync, and it scales the parameter gradients too, which is what restores the NTK
(a value rescale of the surviving weights would restore the forward variance only). With
rescale=false the multiplier is sigma_w / sqrt(fan_in) and the kernel shrinks by about q^L.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from ..core.checks import check_widths
from ..core.config_base import ModelConfig, config_schema, may_zero_weights
from ..core.errors import ConfigError
from . import MODELS
from .base import PrunableNet


# structures that remove whole output units (rows) and keep the others' fan-in whole
WHOLE_UNITS = ("channel", "channel_group")


@config_schema("model", "ntk_mlp")
@dataclass
class NTKMLPConfig(ModelConfig):
    widths: list[int] = field(default_factory=lambda: [512, 512])  # hidden widths
    sigma_w: float = math.sqrt(2.0)  # hidden-layer weight multiplier (He); the output layer uses 1
    sigma_b: float = 0.0  # bias multiplier; 0 = no bias parameters (the theory's setting)
    rescale: bool = True  # multiply by 1/sqrt(q), q = realised density of each layer's weight

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        check_widths(cfg, f"{key}.widths")
        node = OmegaConf.select(cfg, key)
        for name in ("sigma_w", "sigma_b"):
            value = node[name]
            ok = isinstance(value, (int, float)) and math.isfinite(value) and (value > 0 if name == "sigma_w" else value >= 0)
            if not ok:
                raise ConfigError(
                    f"{key}.{name}", value, "a finite number > 0" if name == "sigma_w" else "a finite number >= 0 (0 = no bias)"
                )
        structure = OmegaConf.select(cfg, "method.structure")
        if node.rescale and structure in WHOLE_UNITS and float(cfg.get("sparsity", 0) or 0) > 0:
            # the layer's density is not the keep probability of a surviving unit's fan-in: a kept unit keeps
            # all of it, and 1/sqrt(q) inflated its preactivation variance (1.42x at q = 0.70, 2x at 0.49)
            raise ConfigError(
                "method.structure",
                structure,
                f"a structure that keeps a fraction of every unit's inputs (unstructured, nm, block, bcr) with "
                f"{key}=ntk_mlp and {key}.rescale=true: {structure} removes whole units, so the layer's density q is not "
                f"the keep probability of a kept unit's fan-in and 1/sqrt(q) would inflate its variance; or {key}.rescale=false",
            )

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        """rescale divides by sqrt(q), q the fraction of a layer's weights that are nonzero (`keep_prob`):
        q = 1 in every layer when the run zeroes no weight."""
        if may_zero_weights(cfg):
            return {}
        why = f"it rescales by the density of pruned layers, and no weight is pruned here (sparsity={cfg.sparsity})"
        return {f"{key}.rescale": why}


class NTKLinear(nn.Linear):
    """Linear layer in NTK parameterisation whose multiplier includes 1/sqrt(keep probability)."""

    def __init__(
        self, in_features: int, out_features: int, sigma_w: float = math.sqrt(2.0), sigma_b: float = 0.0, rescale: bool = True
    ):
        super().__init__(in_features, out_features, bias=sigma_b > 0)
        self.sigma_w, self.sigma_b, self.rescale = float(sigma_w), float(sigma_b), bool(rescale)

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        if self.bias is not None:
            nn.init.normal_(self.bias)

    def keep_prob(self, weight: torch.Tensor) -> torch.Tensor:
        """Realised density of the (pruned) weight, at least one entry's worth to avoid 1/0, in the weight's
        dtype (a float32 density put ~3e-8 relative error into a float64 layer's output)."""
        return (weight != 0).to(weight.dtype).mean().clamp_min(1.0 / weight.numel())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight) * (self.sigma_w / math.sqrt(self.in_features))
        if self.rescale:
            out = out * torch.rsqrt(self.keep_prob(self.weight))
        if self.bias is not None:
            out = out + self.sigma_b * self.bias
        return out

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, sigma_w={self.sigma_w:.4g}, sigma_b={self.sigma_b:g}, rescale={self.rescale}"


class NTKMLP(PrunableNet):
    """ReLU MLP of NTKLinear layers; hidden layers use sigma_w, the output layer sigma 1."""

    def __init__(
        self,
        in_features: int,
        widths: list[int],
        out_features: int,
        sigma_w: float = math.sqrt(2.0),
        sigma_b: float = 0.0,
        rescale: bool = True,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        previous = in_features
        for width in widths:
            layers += [NTKLinear(previous, width, sigma_w, sigma_b, rescale), nn.ReLU()]
            previous = width
        layers.append(NTKLinear(previous, out_features, 1.0, sigma_b, rescale))
        self.net = nn.Sequential(*layers)
        self.classifier = f"net.{len(layers) - 1}"

    def set_rescale(self, rescale: bool) -> None:
        for module in self.modules():
            if isinstance(module, NTKLinear):
                module.rescale = bool(rescale)

    def forward(self, x):
        return self.net(x)


@MODELS.register("ntk_mlp")
def build_ntk_mlp(cfg: DictConfig, input_shape, num_classes) -> NTKMLP:
    return NTKMLP(math.prod(input_shape), list(cfg.widths), num_classes, cfg.sigma_w, cfg.sigma_b, cfg.rescale)
