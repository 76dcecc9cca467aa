"""Sparse execution: an inference-only copy of a masked model whose layers multiply with sparse
weights, so that pruned weights cost neither memory traffic nor multiply-accumulates.

Masks keep dense storage (prune_cli/models/masks.py), so a pruned model runs dense kernels and is
rarely faster. `to_sparse(model, layout)` returns a deep copy in which every Linear, Conv1d and
Conv2d layer (groups=1, zero padding) holds its weight's 2-D view [out, in * kernel] as a
torch.sparse CSR matrix (any pattern: unstructured, N:M, BCR) or BSR matrix (whole b x b blocks:
`method.structure=block`; square only, the kernels' limit; a layer whose dimensions are not multiples of the block falls back to
CSR, and the copy records it). The product is `torch.addmm(bias, W_sparse, X^T)`: `F.linear` with a
CSR weight is several times slower on CPU (docs/speedup.md); with BSR on CPU, X^T's columns are
zero-padded to a multiple of 16 (`sparse_product`). A convolution runs as an im2col matmul
(`F.unfold`, whose column order, channel-major then kernel position, is the order of
`weight.flatten(1)`), so it uses the same sparse kernel. Other layers (BatchNorm, pooling, the
ResNet shortcut) are untouched. Numbers are the masked model's up to float rounding
(tests/test_sparse_exec.py).

2:4 semi-structured sparsity (Mishra et al. 2021, "Accelerating Sparse Deep Neural Networks";
`torch.sparse.to_sparse_semi_structured`) needs a CUDA GPU with sparse tensor cores;
`to_semi_structured` refuses elsewhere with the reason.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .base import own_forward, replace_submodule

LAYOUTS = ("csr", "bsr")

# PyTorch's CPU product of a BSR matrix with a dense one is fast only when the dense operand's column
# count is a multiple of 16; other counts (batch 1 of a Linear, 8, 24, ...) took a path about 100x
# slower (torch 2.14: 23 ms instead of 0.16 ms for a 1024 x 1024 weight with 4 x 4 blocks at 90 %,
# docs/speedup.md). The columns are zero-padded to the next multiple and the result sliced back.
BSR_COLUMN_MULTIPLE = 16


def sparse_product(weight: torch.Tensor, bias: torch.Tensor | None, dense: torch.Tensor) -> torch.Tensor:
    """bias + weight @ dense (weight sparse, dense [in, columns], bias [out, 1] or None)."""
    columns = dense.shape[1]
    pad = (-columns) % BSR_COLUMN_MULTIPLE if weight.layout == torch.sparse_bsr and weight.device.type == "cpu" else 0
    if pad:
        dense = F.pad(dense, (0, pad))
    out = torch.mm(weight, dense) if bias is None else torch.addmm(bias, weight, dense)
    return out[:, :columns] if pad else out


def sparse_matrix(weight2d: torch.Tensor, layout: str, blocksize: tuple[int, int] | None = None) -> torch.Tensor:
    """The 2-D weight in the sparse layout (zeros dropped); BSR keeps every block with a nonzero."""
    w = weight2d.detach().contiguous()
    with warnings.catch_warnings():  # torch's "sparse CSR/BSR support is in beta" notice, once per layer
        warnings.filterwarnings("ignore", message="Sparse (CSR|BSR) tensor support is in beta")
        if layout == "csr":
            return w.to_sparse_csr()
        if layout == "bsr":
            return w.to_sparse_bsr(tuple(blocksize))
    raise ValueError(f"sparse layout {layout!r}: expected one of {', '.join(LAYOUTS)}")


class SparseLinear(nn.Module):
    """y = x W^T + b with W sparse: addmm(b, W, x^T)^T. Inference only (no gradients)."""

    def __init__(self, linear: nn.Linear, layout: str, blocksize: tuple[int, int] | None = None):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.layout = layout
        self.register_buffer("weight", sparse_matrix(linear.weight, layout, blocksize))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone().unsqueeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, self.in_features)
        out = sparse_product(self.weight, self.bias, flat.T)
        return out.T.reshape(*x.shape[:-1], self.out_features)


class SparseConv(nn.Module):
    """Conv1d/Conv2d (groups=1, zero padding) as an im2col matmul with a sparse [out, in * kernel]
    weight. Inference only."""

    def __init__(self, conv: nn.Conv1d | nn.Conv2d, layout: str, blocksize: tuple[int, int] | None = None):
        super().__init__()
        self.one_d = isinstance(conv, nn.Conv1d)
        pair = (lambda v: (1, v[0])) if self.one_d else (lambda v: tuple(v))
        self.kernel_size, self.stride = pair(conv.kernel_size), pair(conv.stride)
        self.padding = (0, conv.padding[0]) if self.one_d else tuple(conv.padding)
        self.dilation = pair(conv.dilation)
        self.out_channels, self.layout = conv.out_channels, layout
        self.register_buffer("weight", sparse_matrix(conv.weight.flatten(1), layout, blocksize))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone().unsqueeze(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x4 = x.unsqueeze(2) if self.one_d else x
        n, _, h, w = x4.shape
        cols = F.unfold(x4, self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)
        length = cols.shape[-1]
        cols2d = cols.permute(1, 0, 2).reshape(cols.shape[1], n * length)
        out = sparse_product(self.weight, self.bias, cols2d)
        h_out = (h + 2 * self.padding[0] - self.dilation[0] * (self.kernel_size[0] - 1) - 1) // self.stride[0] + 1
        y = out.reshape(self.out_channels, n, h_out, length // h_out).permute(1, 0, 2, 3)
        return y.squeeze(2) if self.one_d else y


@dataclass
class SparseReport:
    """What `to_sparse` did to each layer: {layer name: layout used}; and why layers stayed dense
    or fell back."""

    layouts: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


def _convertible(module: nn.Module) -> str:
    """Why a Linear/Conv layer cannot run sparse here ('' when it can)."""
    if why := own_forward(module):
        return why
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        if module.groups != 1:
            return f"groups={module.groups} (only groups=1 convolutions run as im2col matmuls)"
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            return f"padding {module.padding!r} mode {module.padding_mode} (numeric zero padding only)"
    return ""


def to_sparse(
    model: nn.Module, layout: str, blocksize: tuple[int, int] | None = None, skip_dense: bool = True
) -> tuple[nn.Module, SparseReport]:
    """An eval-mode copy of `model` whose Linear/Conv layers multiply with sparse weights.

    layout: "csr" or "bsr" (BSR needs a square `blocksize` = (b, b): PyTorch's BSR matmul refuses
    other blocks at the first forward pass, MKL on CPU and cuSPARSE on CUDA; layers whose
    [out, in * kernel] view is not a multiple of it use CSR). skip_dense: layers without a single zero weight (e.g. excluded
    from pruning) keep their dense module, since a sparse format can only slow them down."""
    if layout not in LAYOUTS:
        raise ValueError(f"sparse layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if layout == "bsr" and (blocksize is None or len(blocksize) != 2 or min(blocksize) < 1):
        raise ValueError(f"layout=bsr needs blocksize=(rows, cols) of positive integers, got {blocksize!r}")
    if layout == "bsr" and blocksize[0] != blocksize[1]:
        raise ValueError(f"layout=bsr needs a square blocksize=(b, b) (PyTorch's BSR matmul refuses others), got {blocksize!r}")
    copied = copy.deepcopy(model).eval()
    report = SparseReport()
    for name, module in list(copied.named_modules()):
        if not isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            continue
        why = _convertible(module)
        weight = module.weight.detach()
        if why:
            report.notes[name] = "dense: " + why
            continue
        if skip_dense and bool((weight != 0).all()):
            report.notes[name] = "dense: no zero weight"
            continue
        use, size = layout, blocksize
        rows, cols = weight.shape[0], weight[0].numel()
        if layout == "bsr" and (rows % blocksize[0] or cols % blocksize[1]):
            use, size = "csr", None
            report.notes[name] = f"csr: weight view {rows}x{cols} is not a multiple of the block {tuple(blocksize)}"
        replacement = SparseLinear(module, use, size) if isinstance(module, nn.Linear) else SparseConv(module, use, size)
        replace_submodule(copied, name, replacement)
        report.layouts[name] = use
    return copied, report


def semi_structured_unavailable(device: torch.device | str | None = None) -> str:
    """Why 2:4 semi-structured kernels cannot run here ('' when they can): they need a CUDA GPU of
    compute capability >= 8.0 (Ampere or newer)."""
    if not torch.cuda.is_available():
        return "2:4 semi-structured kernels need a CUDA GPU; none is available"
    dev = torch.device(device) if device is not None else torch.device("cuda")
    if dev.type != "cuda":
        return f"2:4 semi-structured kernels run on CUDA only, not on {dev.type}"
    major, _minor = torch.cuda.get_device_capability(dev)
    if major < 8:
        return f"2:4 semi-structured kernels need compute capability >= 8.0, this GPU has {major}.x"
    return ""


def to_semi_structured(model: nn.Module, dtype: torch.dtype = torch.float16) -> tuple[nn.Module, SparseReport]:
    """A CUDA copy in `dtype` whose 2:4-sparse Linear weights use semi-structured sparse kernels.

    Only Linear layers whose weight is exactly 2:4 along the input dimension (at most 2 nonzeros in
    each group of 4) and whose shape the kernels accept are converted; the others stay dense."""
    why = semi_structured_unavailable()
    if why:
        raise RuntimeError(why)
    from torch.sparse import to_sparse_semi_structured

    copied = copy.deepcopy(model).to(device="cuda", dtype=dtype).eval()
    report = SparseReport()
    for name, module in copied.named_modules():
        if not isinstance(module, nn.Linear):
            continue
        w = module.weight.detach()
        if w.shape[1] % 4 or bool(((w.view(w.shape[0], -1, 4) != 0).sum(-1) > 2).any()):
            report.notes[name] = "dense: weight is not 2:4 along its inputs"
            continue
        if w.shape[0] % 32 or w.shape[1] % 64:
            report.notes[name] = f"dense: shape {tuple(w.shape)} is not a multiple of 32x64 the kernels need"
            continue
        module.weight = nn.Parameter(to_sparse_semi_structured(w), requires_grad=False)
        report.layouts[name] = "semi_structured"
    return copied, report
