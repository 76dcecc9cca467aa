"""Measured speedup of the pruned model on real execution paths, next to the theoretical one.

`theoretical_speedup` (dense / sparse FLOPs, metrics/cost.py) assumes every pruned weight saves its
multiply-accumulate; the `latency` metric shows that masks with dense kernels save nothing. This
metric asks how much of the theory a sparsity pattern really delivers on the run's own hardware:
for every execution path available for the run's masks it times the trained dense model and the
path, interleaved repeat by repeat in one process (clock and load drift hit all alike), at batch
size 1 and at `batch_size`, and reports the median latency and the speedup over the dense model.

Paths (prune_cli/models/sparse.py; docs/speedup.md):
- `masked_dense`: the pruned model as trained, zeros in dense storage and dense kernels;
- `compact_dense`: the physically smaller dense model of a channel-pruned network (MLP, plain CNN,
  VGG, ResNet through its residual groups; prune_cli/models/compact.py), offered when some channel
  can be removed (the note says what each residual group keeps, and how many all-zero rows stay
  dense where the group's masks differ); it is also saved as
  `model_compact.pt` in the run directory ({"state_dict", "spec"}: rebuild with
  `rebuild_compact(build_model(...), spec, state_dict)`; the last pruned phase measured wins);
- `sparse_csr`: Linear layers and convolutions (as im2col matmuls) with CSR weights;
- `sparse_bsr`: the same with BSR weights, offered when every pruned layer's mask is made of whole
  b x b blocks (found from the masks: the largest such b among 2..32; `bsr_blocksize` forces one,
  e.g. a BCR run's block, whose blocks BSR stores in full). Square blocks only: PyTorch's BSR
  matmul refuses others (MKL on CPU, cuSPARSE bsrmm on CUDA, which also needs b > 1), so a 4x4
  block run whose 10-row classifier ends in 2x4 blocks is timed with 2x2 blocks;
- `semi_structured`: 2:4 kernels, only on CUDA GPUs that have them and when a layer is 2:4. The
  kernels run in float16, so `float16_dense` (the masked model in float16, dense kernels) is timed
  beside it: dense / semi_structured mixes the gain of half precision (tensor cores) with the
  sparsity's, and float16_dense / semi_structured (`speedup_semi_structured_same_dtype_*`, and in
  the row's note) is the sparsity's own gain, the one that decides the best sparse path.
The best sparse path (`speedup_best_*`) must be faster beyond the noise: faster than its reference
in more than three of four paired repeats (`beyond_noise`; the share is `faster_share`, the spread of
the ratios dense / path `speedup_q25`, `speedup_q75`).
Each path's outputs are compared with the masked model's (`max_abs_diff`): a path that computes
something else is an error, not a result. A path that is not available gets a row with empty
timings and the reason in `note` ("absent: ..."): on a CPU, `semi_structured` always says it needs
a CUDA GPU.

Test inputs are the first `batch_size` test examples (repeated when the test split is smaller).
Numbers depend on the machine and its load; they are measurements to report, never thresholds: every
row records the 1-minute load average before and after its batch size's timing (`load_before`,
`load_after`) and the CPU count (`cpu_count`), and the result line in the log says them.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from omegaconf import DictConfig

from ..core.config_base import config_schema
from ..core.errors import ConfigError, PruneCliError
from . import MetricContext, MetricResult, register_metric
from .latency import describe_load, load_average, load_columns

log = logging.getLogger(__name__)

BLOCK_CANDIDATES = tuple(range(32, 1, -1))  # every b of 32..2, largest first: 3x3 or 6x6 blocks are blocks too
HALF_PRECISION = ("semi_structured", "float16_dense")  # compared with the masked model to 1e-2, not rtol
NOT_SPARSE = ("masked_dense", "float16_dense")  # references beside the dense model: never the best sparse path
_OVER = {"semi_structured": " over float16_dense"}  # log lines: what a path's gain is measured against


@config_schema("metric", "speedup")
@dataclass
class SpeedupConfig:
    """Measured vs theoretical speedup per execution path (metrics/speedup.py)."""

    enabled: bool = False
    batch_size: int = 256  # the large batch; batch size 1 is always timed too
    warmup: int = 3  # untimed forward passes per model before timing (beside the one of the output check: 0 is legal)
    repeats: int = 20  # timed forward passes per model; the median is reported
    bsr_blocksize: Optional[list[int]] = None  # [b, b], b >= 2 (square: the kernels' limit); null = detect whole-block masks
    rtol: float = 1e-4  # outputs of a sparse path must match the masked model's to this tolerance

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        node = cfg.metrics.speedup
        for name, minimum in (("batch_size", 1), ("warmup", 0), ("repeats", 1)):
            value = node[name]
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= minimum):
                raise ConfigError(f"{key}.{name}", value, f"an integer >= {minimum}")
        size = node.bsr_blocksize
        if size is not None and not (len(size) == 2 and all(isinstance(v, int) and v >= 2 for v in size) and size[0] == size[1]):
            raise ConfigError(
                f"{key}.bsr_blocksize",
                list(size),
                "null or [b, b] with an integer b >= 2 (square blocks: PyTorch's BSR matmul refuses non-square "
                "blocks, MKL on CPU and cuSPARSE on CUDA, and cuSPARSE also 1x1)",
            )
        if not (isinstance(node.rtol, (int, float)) and 0 < node.rtol < 1):
            raise ConfigError(f"{key}.rtol", node.rtol, "a number in (0, 1)")


def whole_block_shape(masks: dict[str, torch.Tensor]) -> Optional[tuple[int, int]]:
    """The largest b x b (b in 32..2, every integer: 3x3 and 6x6 block runs were detected as absent or as 2x2
    when only powers of two were tried) such that every mask's 2-D view [out, in * kernel] divides into
    b x b blocks that are all kept or all removed; None if none. Square only, because PyTorch's BSR
    matmul runs square blocks only (MKL on CPU, cuSPARSE on CUDA): a 2x4 tiling (a 4x4 block run's
    10-row classifier) would crash the timing, 2x2 tiles the same masks."""
    views = [m.reshape(m.shape[0], -1).bool() for m in masks.values()]
    if not views:
        return None
    for r, c in ((b, b) for b in BLOCK_CANDIDATES):
        ok = True
        for v in views:
            if v.shape[0] % r or v.shape[1] % c:
                ok = False
                break
            blocks = v.view(v.shape[0] // r, r, v.shape[1] // c, c).permute(0, 2, 1, 3).flatten(2)
            if not bool((blocks.all(-1) | ~blocks.any(-1)).all()):
                ok = False
                break
        if ok:
            return r, c
    return None


def _sparse_path(paths: dict, absent: dict, name: str, model, report, note: str) -> None:
    """A sparse copy is a path only when some layer runs sparse (a copy of the dense model would time
    noise as a speedup); the layers that stay dense, and why, go into the note."""
    if not report.layouts:
        reasons = sorted(set(report.notes.values()))
        if reasons == ["dense: no zero weight"]:
            absent[name] = "no layer has a zero weight, so no layer runs sparse"
        else:
            absent[name] = "no layer runs sparse: " + "; ".join(f"{layer}: {why}" for layer, why in report.notes.items())
        return
    dense = [f"{layer}: {why}" for layer, why in report.notes.items() if why.startswith("dense: ") and why != "dense: no zero weight"]
    paths[name] = (model, note + (f" ({'; '.join(dense)})" if dense else ""))


def execution_paths(model, masks, node: DictConfig) -> tuple[dict[str, tuple[torch.nn.Module, str]], dict[str, str]]:
    """({path name: (model, note)} for every path available for these masks, {path name: why it is
    absent} for the others): speedup.csv lists both, so a missing path is never silent."""
    from ..models.compact import CompactionError, compact
    from ..models.sparse import semi_structured_unavailable, to_semi_structured, to_sparse

    paths = {"masked_dense": (model, "dense storage and kernels")}
    absent = {}
    csr, report = to_sparse(model, "csr")
    _sparse_path(paths, absent, "sparse_csr", csr, report, f"{len(report.layouts)} layers CSR")
    blocksize = tuple(node.bsr_blocksize) if node.bsr_blocksize is not None else whole_block_shape(masks)
    if blocksize is not None:
        bsr, report = to_sparse(model, "bsr", blocksize)
        n_bsr = sum(v == "bsr" for v in report.layouts.values())
        note = f"{n_bsr} layers BSR {blocksize[0]}x{blocksize[1]}, {len(report.layouts) - n_bsr} CSR"
        if report.layouts and n_bsr == 0:  # every sparse layer fell back to CSR: sparse_csr's timing again
            absent["sparse_bsr"] = (
                f"no layer runs BSR {blocksize[0]}x{blocksize[1]} (no sparse layer's shape is made of whole blocks; "
                f"they run CSR, timed as sparse_csr)"
            )
        else:
            _sparse_path(paths, absent, "sparse_bsr", bsr, report, note)
    else:
        absent["sparse_bsr"] = (
            "the masks are not made of whole b x b blocks (for no b in 2..32 does every mask's [out, in x kernel] view "
            "divide into b x b blocks all kept or all removed); metrics.speedup.bsr_blocksize=[b,b] forces BSR "
            "(a layer b does not divide then runs CSR)"
        )
    try:
        small, report = compact(model)
    except CompactionError as err:
        absent["compact_dense"] = str(err)
    else:
        if report.units:
            paths["compact_dense"] = (small, report.describe())
        else:
            absent["compact_dense"] = "no channel is unread by every layer: compaction would remove nothing"
    device = next(model.parameters()).device
    why = semi_structured_unavailable(device)
    if not why:
        semi, report = to_semi_structured(model)
        if report.layouts:
            paths["semi_structured"] = (semi, f"{len(report.layouts)} layers 2:4 (float16)")
            like = next(semi.parameters())
            half = copy.deepcopy(model).to(device=like.device, dtype=like.dtype).eval()
            paths["float16_dense"] = (half, "the masked model in float16, dense kernels: semi_structured's own-dtype baseline")
        else:
            why = "no Linear layer is exactly 2:4 in a shape the kernels accept"
    if why:
        absent["semi_structured"] = why
    return paths, absent


def faster_share(ratios: np.ndarray) -> float:
    """The share of the paired repeats (reference time / path time, paired repeat by repeat: the
    timing interleaves them) in which the path was faster than its reference; NaN without repeats."""
    return float(np.count_nonzero(ratios > 1.0) / len(ratios)) if len(ratios) else float("nan")


def beyond_noise(ratios: np.ndarray) -> bool:
    """A path counts as faster than its reference only when it was faster in more than three of four
    paired repeats (docs/speedup.md). A median alone is not enough on a shared machine, where a path
    doing the dense model's work can come out 1.01x "faster" from repeats in which it was as often
    slower as faster. The repeats are counted, not summarised by an interpolated lower quartile:
    with 2 to 4 repeats np.percentile's quartile can lie above 1 although a quarter or more of them
    were slower. With a single repeat the rule is that repeat's ratio (there is no spread to judge
    the noise by); with 2 to 4 every repeat must be faster."""
    return len(ratios) > 0 and faster_share(ratios) > 0.75


def _batch(x: torch.Tensor, size: int) -> torch.Tensor:
    reps = -(-size // len(x))
    return x.repeat(reps, *([1] * (x.dim() - 1)))[:size]


def _as_input(model, x: torch.Tensor) -> torch.Tensor:
    """x on the device and in the float dtype of the path's weights (float16 for 2:4 kernels)."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            return x.to(device=t.device, dtype=t.dtype)
    return x


@register_metric("speedup")
def speedup(ctx: MetricContext, phase: str, node: DictConfig) -> MetricResult:
    """speedup.csv (one row per batch size and path, the dense model included) and per path and batch
    size `speedup_<path>_batch1` / `speedup_<path>_large` in metrics.csv; skipped in the dense phase.
    The model's train/eval mode is restored."""
    if phase == "dense" or not ctx.has_dense or len(ctx.data.test_x) == 0:
        return MetricResult()
    was_training = ctx.model.training
    try:
        return _measure(ctx, phase, node)
    finally:
        ctx.model.train(was_training)


def _measure(ctx: MetricContext, phase: str, node: DictConfig) -> MetricResult:
    from .cost import layer_table, theoretical_speedup

    ctx.model.eval()
    layers = layer_table(ctx.model, list(ctx.prunable), tuple(ctx.data.test_x.shape[1:]))
    theory = theoretical_speedup(sum(r["flops_dense"] for r in layers), sum(r["flops_sparse"] for r in layers))
    dense = ctx.dense().eval()
    paths, absent = execution_paths(ctx.model, ctx.masks, node)
    for name, why in absent.items():
        log.info("speedup (%s): path %s absent: %s", phase, name, why)
    if "compact_dense" in paths:
        log.info("speedup (%s): compact_dense: %s", phase, paths["compact_dense"][1])
    models = {"dense": dense, **{p: m for p, (m, _n) in paths.items()}}
    rows, scalars = [], []
    for label, size in (("batch1", 1), ("large", int(node.batch_size))):
        x = ctx.accel.inputs(_batch(ctx.data.test_x, size).to(ctx.device))  # the run's layout (channels-last: NHWC)
        inputs = {name: _as_input(m, x) for name, m in models.items()}
        with torch.no_grad():
            reference = ctx.model(x).float()
            # one untimed call of the dense model too: every path gets one below (its output check), so
            # with warmup=0 the dense model's first timed call was its only cold one
            models["dense"](inputs["dense"])
            diffs = {}
            for path in paths:
                try:
                    out = models[path](inputs[path]).float().to(reference.device)
                except Exception as err:  # noqa: BLE001 - a path that cannot run is reported by name, not as a traceback
                    raise PruneCliError(
                        f"metrics.speedup: execution path {path} failed at its first forward pass at batch size {size} "
                        f"({type(err).__name__}: {err}); not reporting its speed"
                    ) from err
                diffs[path] = float((out - reference).abs().max())
                tol = (1e-2 if path in HALF_PRECISION else node.rtol) * max(1.0, float(reference.abs().max()))
                if not diffs[path] <= tol:  # a NaN difference fails too (NaN > tol is False)
                    raise PruneCliError(
                        f"metrics.speedup: execution path {path} disagrees with the masked model by "
                        f"{diffs[path]:.3g} (> {tol:.3g}) at batch size {size}; not reporting its speed"
                    )
        if "compact_dense" in paths and label == "large":  # checked at every batch size: save it once
            from ..core.atomic_io import atomic_torch_save
            from ..models.compact import compact_spec

            small = paths["compact_dense"][0]
            atomic_torch_save({"state_dict": small.state_dict(), "spec": compact_spec(small)}, ctx.run_dir / "model_compact.pt")
        load_before = load_average()
        times = _time_interleaved(models, inputs, node.warmup, node.repeats)
        load = load_columns(load_before, load_average())
        base = float(np.median(times["dense"]))
        best, gains = ("dense", 1.0), {}
        for name, t in times.items():
            ms = t * 1e3
            ratio = base / float(np.median(t))
            paired = times["dense"] / t  # per-repeat ratios: the repeats are interleaved, so paired in time
            note = "unpruned reference" if name == "dense" else paths[name][1]
            gain, paired_gain = ratio, paired  # what this path gains by its sparsity, in its own dtype
            if name == "semi_structured":
                gain = float(np.median(times["float16_dense"])) / float(np.median(t))
                paired_gain = times["float16_dense"] / t
                note += f"; {gain:.2f}x over float16_dense"
                scalars.append({"split": "model", "metric": f"speedup_semi_structured_same_dtype_{label}", "value": gain})
            rows.append(
                {
                    "path": name,
                    "batch_size": size,
                    "median_ms": float(np.median(ms)),
                    "p10_ms": float(np.percentile(ms, 10)),
                    "p90_ms": float(np.percentile(ms, 90)),
                    "speedup": ratio,
                    "speedup_q25": float(np.percentile(paired, 25)),
                    "speedup_q75": float(np.percentile(paired, 75)),
                    "faster_share": faster_share(paired_gain) if name != "dense" else float("nan"),
                    "theoretical_speedup": 1.0 if name == "dense" else theory,
                    "max_abs_diff": 0.0 if name == "dense" else diffs[name],
                    "note": note,
                    "warmup": node.warmup,
                    "repeats": node.repeats,
                    "threads": torch.get_num_threads(),
                    **load,
                }
            )
            if name != "dense":
                noise = gain > 1 and not beyond_noise(paired_gain)
                gains[name] = f"{gain:.2f}x{_OVER.get(name, '')}" + (" (within noise)" if noise else "")
                scalars.append({"split": "model", "metric": f"speedup_{name}_{label}", "value": ratio})
                if name not in NOT_SPARSE and gain > best[1] and not noise:
                    best = (name, gain)
        for name, why in absent.items():
            nan = float("nan")
            rows.append(
                {
                    "path": name,
                    "batch_size": size,
                    "median_ms": nan,
                    "p10_ms": nan,
                    "p90_ms": nan,
                    "speedup": nan,
                    "speedup_q25": nan,
                    "speedup_q75": nan,
                    "faster_share": nan,
                    "theoretical_speedup": theory,
                    "max_abs_diff": nan,
                    "note": "absent: " + why,
                    "warmup": node.warmup,
                    "repeats": node.repeats,
                    "threads": torch.get_num_threads(),
                    **load,
                }
            )
        scalars.append({"split": "model", "metric": f"speedup_best_{label}", "value": best[1]})
        said_load = describe_load(load["load_before"], load["load_after"])
        if best[0] == "dense":
            log.warning(
                "speedup (%s, batch size %d): no sparse execution path beats the dense model (%s); theoretical speedup %.2fx; %s",
                phase,
                size,
                ", ".join(f"{path} {gain}" for path, gain in gains.items()),
                theory,
                said_load,
            )
        else:
            log.info(
                "speedup (%s, batch size %d): best %s %.2fx%s of theoretical %.2fx; %s",
                phase,
                size,
                *best,
                _OVER.get(best[0], ""),
                theory,
                said_load,
            )
    return MetricResult(scalars=scalars, tables={"speedup.csv": rows})


def _time_interleaved(models: dict, inputs: dict, warmup: int, repeats: int) -> dict[str, np.ndarray]:
    """time_models (metrics/latency.py) with each model's own input (dtype/device of its path)."""
    from .latency import time_models

    if len({(t.device, t.dtype) for t in inputs.values()}) == 1:
        return time_models(models, next(iter(inputs.values())), warmup, repeats)
    wrapped = {name: _Fixed(m, inputs[name]) for name, m in models.items()}
    x = next(iter(inputs.values()))
    return time_models(wrapped, x, warmup, repeats)


class _Fixed(torch.nn.Module):
    """Calls `model` on its own converted input, ignoring the shared one (mixed-dtype paths)."""

    def __init__(self, model, x):
        super().__init__()
        self.model, self.x = model, x

    def forward(self, _x):
        return self.model(self.x)
