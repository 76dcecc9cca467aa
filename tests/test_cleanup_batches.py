"""One way to the run's device (prune_cli/data/batches.py `to_device`), used by the data splits, the
batch permutation and the augmentation's offsets: asynchronous from page-locked memory to CUDA, a
plain `.to()` elsewhere, so CPU batches stay exactly what they were."""

from __future__ import annotations

import pytest
import torch

from prune_cli.data import batches
from prune_cli.data.batches import iterate_batches, random_crop_flip, to_device

CUDA = torch.device("cuda")


class RecordingTensor:
    """Stands for a tensor and records what is done to it (no GPU needed to see the calls)."""

    def __init__(self, device: str, calls: list):
        self.device, self.calls = torch.device(device), calls

    def pin_memory(self):
        self.calls.append("pin_memory")
        return RecordingTensor("cpu", self.calls)

    def to(self, device, non_blocking=False):
        self.calls.append(("to", torch.device(device), non_blocking))
        return RecordingTensor(str(device), self.calls)


@pytest.mark.parametrize(
    "source,target,expected",
    [
        ("cpu", "cuda", ["pin_memory", ("to", CUDA, True)]),  # pinned, then asynchronous
        ("cuda", "cuda", [("to", CUDA, True)]),  # already on a GPU: nothing to pin
        ("cpu", "cpu", [("to", torch.device("cpu"), False)]),  # the CPU path is a plain .to()
        ("cuda", "cpu", [("to", torch.device("cpu"), False)]),  # never asynchronous towards the host
    ],
)
def test_to_device_pins_and_copies_asynchronously_only_towards_cuda(source, target, expected):
    calls: list = []
    to_device(RecordingTensor(source, calls), target)
    assert calls == expected


def test_to_device_on_the_cpu_is_the_tensor_itself():
    t = torch.arange(5)
    assert to_device(t, "cpu") is t and to_device(t, torch.device("cpu")) is t


def test_cpu_batches_are_the_seeded_permutation_of_the_data():
    x, y = torch.randn(23, 3), torch.arange(23)
    got = list(iterate_batches(x, y, 5, torch.Generator().manual_seed(4)))
    order = torch.randperm(23, generator=torch.Generator().manual_seed(4))  # what the batches must follow
    assert [len(yb) for _, yb in got] == [5, 5, 5, 5, 3]
    assert torch.equal(torch.cat([yb for _, yb in got]), order)
    assert torch.equal(torch.cat([xb for xb, _ in got]), x[order])


def test_batches_and_augmentation_move_their_random_draws_with_to_device(monkeypatch):
    moved = []

    def recording(t, device):
        moved.append((t.dtype, torch.device(device)))
        return t.to(device)

    monkeypatch.setattr(batches, "to_device", recording)
    x = torch.randn(6, 3, 8, 8)
    list(iterate_batches(x, torch.arange(6), 6, torch.Generator().manual_seed(0)))
    assert moved == [(torch.int64, torch.device("cpu"))]  # the permutation
    moved.clear()
    random_crop_flip(x, torch.Generator().manual_seed(0))
    assert moved == [(torch.int64, torch.device("cpu"))] * 2 + [(torch.bool, torch.device("cpu"))]  # dy, dx, flip


def test_crop_flip_matches_a_per_image_computation():
    x = torch.randn(4, 2, 5, 5)
    out = random_crop_flip(x, torch.Generator().manual_seed(1), padding=2)
    g = torch.Generator().manual_seed(1)  # the same draws, in the same order
    dy, dx = torch.randint(0, 5, (4,), generator=g), torch.randint(0, 5, (4,), generator=g)
    flip = torch.rand(4, generator=g) < 0.5
    padded = torch.nn.functional.pad(x, (2,) * 4)
    for i in range(4):
        crop = padded[i, :, dy[i] : dy[i] + 5, dx[i] : dx[i] + 5]
        assert torch.equal(out[i], crop.flip(2) if flip[i] else crop)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_check.sh)")
def test_cuda_batches_equal_the_cpu_batches():
    x, y = torch.randn(50, 3, 8, 8), torch.arange(50)
    cpu = list(iterate_batches(x, y, 16, torch.Generator().manual_seed(2), augment=True))
    gpu = list(iterate_batches(to_device(x, "cuda"), to_device(y, "cuda"), 16, torch.Generator().manual_seed(2), augment=True))
    for (cx, cy), (gx, gy) in zip(cpu, gpu):
        assert gx.is_cuda and torch.equal(gx.cpu(), cx) and torch.equal(gy.cpu(), cy)
