"""Code paths that only a CUDA device exercises (GPU audit of 2026-12-03, sixth session; no GPU was lent, so the
device checks run where one is: `pytest -m cuda`, scripts/gpu_check.sh). What a CPU can check is checked here: the
`meta` device stands in for `cuda` where torch's device rules are the same (a tensor on one device may not meet a
tensor of another).

- ADMM's Z and U came back from the checkpoint on the CPU (it is read with map_location="cpu") and met CUDA weights
  at the first step of a resumed phase;
- `accel.precision=bf16` passed on a GPU without bf16 arithmetic, since torch.cuda.is_bf16_supported() also says
  True where bf16 is only emulated;
- the block and bcr structures built CPU tables beside CUDA scores."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import TwoLayer, composed, method_options

HAS_CUDA = torch.cuda.is_available()


def test_admm_state_goes_back_to_its_weights_device_on_resume():
    from test_mia_pruning import admm_hook

    model = TwoLayer(seed=0)
    hook = admm_hook(model)
    state = hook.state_dict()
    assert all(t.device.type == "cpu" for d in (state["z"], state["u"]) for t in d.values())
    elsewhere = TwoLayer(seed=0).to("meta")  # the weights on another device than the checkpoint's tensors
    hook.resume(elsewhere, state)
    assert {t.device.type for d in (hook.z, hook.u) for t in d.values()} == {"meta"}


def test_bf16_is_refused_where_torch_would_only_emulate_it(monkeypatch):
    """A V100 (compute capability 7.0): torch.cuda.is_bf16_supported() is True there (bf16 tensors can be made,
    and are emulated), yet it has no bf16 arithmetic."""
    from prune_cli.core.accel import AccelConfig
    from prune_cli.core.errors import ConfigError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100")
    with pytest.raises(ConfigError, match=r"compute capability 7\.0.*8\.0") as err:
        AccelConfig.check(composed("accel.precision=bf16", "device=cuda"), "accel")
    assert err.value.key == "accel.precision"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))  # an A100
    AccelConfig.check(composed("accel.precision=bf16", "device=cuda"), "accel")


@pytest.mark.cuda
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (scripts/gpu_check.sh runs these)")
@pytest.mark.parametrize(
    "structure", [{}, {"structure": "nm"}, {"structure": "block", "block_shape": [2, 2]}, {"structure": "bcr", "block_shape": [2, 2]}]
)
def test_every_structure_prunes_cuda_weights_as_it_prunes_cpu_ones(structure):
    """The same seeded weights on both devices: the same masks (they crashed with block and bcr on CUDA)."""
    from prune_cli.models.mlp import MLP
    from prune_cli.pruning import PruneContext, prune_to_density

    masks = {}
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        model = MLP(8, [16, 16], 4).to(device)
        method = method_options(sparsity_tolerance=0.1, **structure)
        masks[device] = prune_to_density(model, 0.5, PruneContext(method=method, generator=torch.Generator().manual_seed(0)))
    assert all(torch.equal(masks["cpu"][n], masks["cuda"][n].cpu()) for n in masks["cpu"])
