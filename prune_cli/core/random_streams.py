"""The process-wide random streams: torch's CPU generator, torch's CUDA generators, numpy's legacy
global generator and Python's `random`.

prune-cli's own code draws from generators it owns (batch order, random scores, augmentation), but
a researcher's model or dataset usually draws from these: `nn.Dropout` from torch's (CUDA's on a
GPU), a noise layer written with numpy from numpy's. Exact resume and identical dense-cache hits
(docs/robustness.md) therefore need all of them seeded together, saved in the checkpoint and put
back, not only torch's CPU generator. `capture()` returns plain tensors, lists and numbers, which
`torch.load(..., weights_only=True)` reads back. (torch and numpy are imported in the functions:
the core layer loads no torch at import, docs/architecture.md.)
"""

from __future__ import annotations

import hashlib
import logging
import random

log = logging.getLogger(__name__)


def derived_seed(seed: int, purpose: str) -> int:
    """A seed for one purpose, independent of the others drawn from the same run seed (64 bits of
    sha256("<seed>:<purpose>"))."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{purpose}".encode()).digest()[:8], "little")


def seed_all(seed: int) -> None:
    """Seed every stream from one integer (numpy takes 32 bits; torch seeds CUDA too)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _cuda_in_use() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_initialized()


def capture(cuda: bool = False) -> dict:
    """The state of every stream. CUDA's once CUDA is initialised (before that nothing can have
    drawn from it, and asking would initialise it), or always with `cuda=True`: a run on the GPU
    about to do work that may initialise CUDA and draw from it (data pruning's proxy training)."""
    import numpy as np
    import torch

    name, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [name, [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)],
        "python": [version, list(internal), gauss_next],
    }
    if _cuda_in_use() or (cuda and torch.cuda.is_available()):
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore(state: dict) -> None:
    """Put back what `capture()` returned (older checkpoints hold only "torch": the rest is left as
    seeded). CUDA states saved on a machine with other GPUs, or none, cannot be restored: warned."""
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    if "numpy" in state:
        name, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if "python" in state:
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state:
        if torch.cuda.is_available() and torch.cuda.device_count() == len(state["cuda"]):
            torch.cuda.set_rng_state_all(state["cuda"])
        else:
            log.warning(
                "the checkpoint holds the random states of %d CUDA device(s) but this machine has %d: "
                "dropout and other draws on the GPU will not continue exactly as before the stop",
                len(state["cuda"]),
                torch.cuda.device_count() if torch.cuda.is_available() else 0,
            )


def same(a: dict, b: dict) -> bool:
    """Whether two captures are equal (nothing drew from any stream in between)."""
    import torch

    if a.keys() != b.keys() or not torch.equal(a["torch"], b["torch"]):
        return False
    if a["numpy"] != b["numpy"] or a["python"] != b["python"]:
        return False
    return all(torch.equal(x, y) for x, y in zip(a.get("cuda", []), b.get("cuda", [])))
