"""Batching of device-resident tensors by seeded index permutation, with tensor augmentation, and the
one way a CPU tensor goes to the run's device (`to_device`)."""

from __future__ import annotations

from typing import Iterator

import torch


def to_device(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """`t` on `device`. To a CUDA device the copy is asynchronous (`non_blocking=True`) from
    page-locked memory: a CPU source is pinned first (a non-blocking copy from pageable memory would
    be staged synchronously), a CUDA source is copied on the stream. PyTorch orders later kernels on
    the same stream after the copy, and its pinned-memory allocator keeps the source alive until the
    copy is done (PyTorch's "CUDA semantics" notes). Anywhere else it is `t.to(device)`: on the CPU
    no copy at all. The data splits (prune_cli/data/splits.py), the batch permutation and the
    augmentation's random offsets all go through here."""
    device = torch.device(device)
    if device.type != "cuda":
        return t.to(device)
    if t.device.type == "cpu":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def random_crop_flip(x: torch.Tensor, gen: torch.Generator, padding: int = 4) -> torch.Tensor:
    """Standard CIFAR augmentation on a whole (N, C, H, W) batch at once: zero-pad, crop, flip."""
    n, c, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding,) * 4)
    dev = x.device
    dy = to_device(torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=gen.device), dev)
    dx = to_device(torch.randint(0, 2 * padding + 1, (n,), generator=gen, device=gen.device), dev)
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]
    out = padded[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None], rows, cols]
    flip = to_device(torch.rand(n, generator=gen, device=gen.device) < 0.5, dev)
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def shuffled_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, gen: torch.Generator, augment: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Training mini-batches (indices into x and y, inputs, labels): one seeded permutation per call
    (an epoch), every example once. The indices let per-presentation statistics follow an example
    through training (forgetting events, Toneva et al., ICLR 2019)."""
    order = to_device(torch.randperm(len(y), generator=gen, device=gen.device), x.device)
    for start in range(0, len(y), batch_size):
        idx = order[start : start + batch_size]
        xb = x[idx]
        if augment:
            xb = random_crop_flip(xb, gen)
        yield idx, xb, y[idx]


def iterate_batches(
    x: torch.Tensor, y: torch.Tensor, batch_size: int, gen: torch.Generator | None, augment: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled mini-batches when `gen` is given (training), in order otherwise (evaluation)."""
    if gen is not None:
        for _, xb, yb in shuffled_batches(x, y, batch_size, gen, augment):
            yield xb, yb
        return
    for start in range(0, len(y), batch_size):
        yield x[start : start + batch_size], y[start : start + batch_size]
