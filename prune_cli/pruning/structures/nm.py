"""`method.structure=nm`: N of every M consecutive weights along the input dimension (fine-grained
structured sparsity; Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks", NVIDIA 2:4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from omegaconf import DictConfig, OmegaConf

from ...core.checks import check, positive_int
from ...core.errors import ConfigError, PruneCliError
from ..structure import StructureContext, register_structure


@dataclass
class NmOptions:
    nm_n: int = 2  # keep N ...
    nm_m: int = 4  # ... of every M consecutive weights along the input dimension

    in_every_run_id: ClassVar[bool] = True  # MethodConfig fields before structures declared their options

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        m = OmegaConf.select(cfg, key)
        positive_int(cfg, f"{key}.nm_n")
        positive_int(cfg, f"{key}.nm_m")
        check(m.nm_n <= m.nm_m, f"{key}.nm_n", m.nm_n, f"an integer in [1, {key}.nm_m={m.nm_m}]")


def check_nm(cfg: DictConfig) -> None:
    """What N:M needs of the rest of the config: layerwise counts and the sparsity 1 - N/M."""
    m = cfg.method
    check(
        m.allocation == "layerwise",
        "method.allocation",
        m.allocation,
        "layerwise with method.structure=nm (every layer keeps exactly N/M)",
    )
    want = 1 - m.nm_n / m.nm_m
    check(
        abs(cfg.sparsity - want) < 1e-9,
        "sparsity",
        cfg.sparsity,
        f"{want} with method.structure=nm and N:M = {m.nm_n}:{m.nm_m} (sparsity = 1 - N/M)",
    )


def check_nm_model(model, selected: dict, method: DictConfig) -> None:
    """Every pruned layer's input count is a multiple of M. The layers that are not are named as
    method.exclude takes them, by module name (`net.1`, not the weight `net.1.weight`), in a ready
    override (channel's `_exclude_hint`)."""
    m = int(method.nm_m)
    bad = [n for n, p in selected.items() if p.shape[1] % m]
    if bad:
        from ...models.graph import trace
        from .channel import _exclude_hint

        layers = trace(model)
        raise ConfigError(
            "method.structure",
            "nm",
            f"layers whose input count is a multiple of method.nm_m={m}; exclude these by module name "
            f"({_exclude_hint(layers, bad)}) or pick another M: " + ", ".join(f"{n} ({selected[n].shape[1]} inputs)" for n in bad),
        )


@register_structure(
    "nm",
    options=NmOptions,
    check=check_nm,
    check_model=check_nm_model,
    fixes_final_densities=lambda method: True,
    uses_counts=False,  # N of every M: the allocation's counts (and its threshold rule) are not read
)
def n_m(scores, counts, selection: str, sctx: StructureContext) -> dict[str, torch.Tensor]:
    """Keep the N highest-scoring weights of every M consecutive ones along the input dimension
    (for a conv, along input channels at each kernel position). The density is exactly N/M."""
    n, m = int(sctx.method.nm_n), int(sctx.method.nm_m)
    out = {}
    for name, score in scores.items():
        if score.shape[1] % m:
            raise PruneCliError(
                f"method.structure=nm with method.nm_m={m}: layer {name} has {score.shape[1]} "
                f"inputs, not a multiple of {m}. Exclude it (method.exclude=[...]) or pick "
                "another M."
            )
        moved = score.movedim(1, -1)  # [out, *kernel, in]
        groups = moved.reshape(-1, m)
        key = torch.where(torch.isneginf(groups), groups, -groups) if sctx.invert else groups
        idx = torch.sort(key, dim=1, descending=True, stable=True).indices[:, :n]
        keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, idx, True)
        out[name] = keep.view(moved.shape).movedim(-1, 1).contiguous()
    return out
