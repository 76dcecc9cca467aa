"""Layer pruning during training on CIFAR ResNets (schedule=layer_pruning; docs/training_time.md):
each BasicBlock is a section. A removed block computes what its zero gate computed (against the
gated forward pass and a forward pass written out with torch.nn.functional, shortcut by hand), the
network without it has fewer modules and the same outputs, the FLOPs counter's count after removal
equals a hand count, layer_pruning.csv lists exactly the blocks whose parameters the run zeroed, and
a model without sections is refused before any work."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F

from conftest import run_cli
from prune_cli.core.errors import ConfigError
from prune_cli.metrics.cost import layer_table
from prune_cli.models.masks import apply_masks
from prune_cli.models.resnet import CifarResNet
from prune_cli.pruning import PruneContext
from prune_cli.pruning.train_time import HookContext
from prune_cli.pruning.train_time.layer_pruning import LayerPruningHook
from tests.helpers import validated


OPTIONS = dict(name="layer_pruning", theta_init=1.0, theta_lr=0.1, penalty=0.5, threshold=0.05, prune_epochs=2)
SHAPE = (3, 8, 8)  # CIFAR-shaped (3 channels), 8 x 8 pixels to keep the tests fast


def resnet8(seed: int = 0) -> CifarResNet:
    """ResNet-8 (one block per stage: layer1.0 keeps the shape, layer2.0 and layer3.0 downsample)
    with random BatchNorm scales, shifts and running statistics, so that no BatchNorm is trivial."""
    torch.manual_seed(seed)
    model = CifarResNet(8, 3, 10)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.normal_(0, 0.5)
            m.running_mean.normal_(0, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return model


def hook_for(model, **options) -> LayerPruningHook:
    cfg = OmegaConf.create({"seed": 0, "schedule": {**OPTIONS, **options}})
    prunable = tuple(n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    prunable = tuple(f"{n}.weight" for n in prunable)
    ctx = HookContext(cfg, PruneContext(method=None, generator=torch.Generator()), prunable, 1.0, model=model)
    hook = LayerPruningHook(ctx)
    hook.start(model)
    return hook


def by_hand(model: CifarResNet, x: torch.Tensor, skipped: set[str]) -> torch.Tensor:
    """ResNet-8 in evaluation mode written out with torch.nn.functional: blocks named in `skipped`
    contribute only their shortcut (stride-2 subsampling, zero channels padded on both sides)."""
    p = {**dict(model.named_parameters()), **dict(model.named_buffers())}

    def bn(h, name):
        return F.batch_norm(h, p[f"{name}.running_mean"], p[f"{name}.running_var"], p[f"{name}.weight"], p[f"{name}.bias"], False)

    h = F.relu(bn(F.conv2d(x, p["conv1.weight"], padding=1), "bn1"))
    for name, stride in (("layer1.0", 1), ("layer2.0", 2), ("layer3.0", 2)):
        planes = p[f"{name}.conv1.weight"].shape[0]
        shortcut = h[:, :, ::stride, ::stride]
        extra = planes - shortcut.shape[1]
        shortcut = torch.cat([shortcut.new_zeros(shortcut.shape[0], extra // 2, *shortcut.shape[2:]), shortcut], 1)
        shortcut = torch.cat([shortcut, shortcut.new_zeros(shortcut.shape[0], extra - extra // 2, *shortcut.shape[2:])], 1)
        if name in skipped:
            h = shortcut
            continue
        inner = F.relu(bn(F.conv2d(h, p[f"{name}.conv1.weight"], stride=stride, padding=1), f"{name}.bn1"))
        h = F.relu(bn(F.conv2d(inner, p[f"{name}.conv2.weight"], padding=1), f"{name}.bn2") + shortcut)
    return F.linear(h.mean((2, 3)), p["fc.weight"], p["fc.bias"])


@pytest.mark.parametrize("removed", [0, 1])  # the identity block; a downsampling block (only its shortcut stays)
def test_a_removed_block_computes_what_its_zero_gate_computed(removed):
    model = resnet8(removed)
    x = torch.randn(5, *SHAPE)
    name = model.block_names()[removed]
    hook = hook_for(model)
    theta = torch.ones(3)
    theta[removed] = 0.0
    hook.theta = theta  # z = 1 everywhere but at `removed`: the gated network of this test
    model.eval()
    with torch.no_grad():
        gated = hook.forward(model, x)
        expected = by_hand(model, x, {name})
    assert hook.z.tolist() == theta.tolist()
    assert torch.allclose(gated, expected, atol=1e-5)
    masks = hook.after_step(model, 0)  # theta_removed = 0 <= threshold: removed
    assert hook.alive.tolist() == [i != removed for i in range(3)]
    apply_masks(model, masks)
    zeroed = {n for n, m in masks.items() if not m.any()}
    assert zeroed == {f"{name}.{p}" for p in ("conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias")}
    with torch.no_grad():
        assert torch.allclose(model(x), gated, atol=1e-5)  # evaluation mode: running statistics
        compact = model.without_sections({removed})
        assert torch.allclose(compact(x), gated, atol=1e-5)
        model.train(), compact.train()  # training mode: batch statistics; the zero block still adds nothing
        assert torch.allclose(model(x), compact(x), atol=1e-5)
    convs = [m for m in compact.modules() if isinstance(m, nn.Conv2d)]
    branch = sum(p.numel() for n, p in model.named_parameters() if n.startswith(f"{name}."))
    assert len(convs) == 7 - 2 and branch > 0
    assert sum(p.numel() for p in compact.parameters()) == sum(p.numel() for p in model.parameters()) - branch


def test_flops_after_removal_equal_a_hand_count():
    model = resnet8()
    hook = hook_for(model)
    x = torch.randn(2, *SHAPE)
    hook.forward(model, x)  # the first batch gives the input shape, hence each block's cost
    # multiply-accumulates per example: out x in x 3 x 3 x output pixels (8x8, 4x4 after layer2.0, 2x2 after layer3.0)
    stem, fc = 16 * 3 * 9 * 64, 64 * 10
    blocks = [16 * 16 * 9 * 64 * 2, 32 * 16 * 9 * 16 + 32 * 32 * 9 * 16, 64 * 32 * 9 * 4 + 64 * 64 * 9 * 4]
    assert hook.macs == blocks
    assert torch.allclose(hook.penalty, torch.tensor([0.5 * b / (stem + fc + sum(blocks)) for b in blocks]))
    hook.theta = torch.tensor([1.0, 0.0, 1.0])
    apply_masks(model, hook.after_step(model, 0))
    table = pd.DataFrame(layer_table(model, list(hook.ctx.prunable), SHAPE))
    assert table.flops_dense.sum() == stem + fc + sum(blocks)
    assert table.flops_sparse.sum() == stem + fc + blocks[0] + blocks[2]
    compact = pd.DataFrame(layer_table(model.without_sections({1}), [], SHAPE))
    assert compact.flops_dense.sum() == stem + fc + blocks[0] + blocks[2]  # really gone, not just zero
    rows = hook.rows()
    assert [r["removed"] for r in rows] == [False, True, False] and rows[1]["layers"] == "layer2.0.conv1 layer2.0.conv2"


def test_a_resumed_phase_enforces_the_removed_blocks_again():
    model = resnet8()
    hook = hook_for(model)
    hook.forward(model, torch.randn(2, *SHAPE))
    assert hook.current_masks() is None
    hook.theta = torch.tensor([1.0, 1.0, 0.0])
    removal = hook.after_step(model, 0)
    resumed = LayerPruningHook(hook.ctx)
    resumed.resume(model, hook.state_dict())
    again = resumed.current_masks()
    assert again.keys() == removal.keys() and all(torch.equal(again[n], removal[n]) for n in again)
    assert resumed.macs == hook.macs  # the input shape came with the state


def test_a_model_without_residual_sections_is_refused_before_any_work(tmp_path):
    data = ["dataset=synthetic", "dataset.samples_per_class=20", "dataset.test_samples_per_class=10", "train.epochs=5"]
    with pytest.raises(ConfigError) as err:
        validated(*data, "model=mlp", "schedule=layer_pruning")
    assert err.value.key == "model" and err.value.value == "mlp" and "resnet20" in str(err.value) and "res_mlp" in str(err.value)
    cifar = ["dataset=cifar10", "dataset.root=/nonexistent", "dataset.download=true", "schedule=layer_pruning", "train.epochs=5"]
    with pytest.raises(ConfigError, match="vgg11"):  # a CIFAR model without residual blocks
        validated(*cifar, "model=vgg11")
    validated(*cifar, "model=resnet20")  # accepted: its BasicBlocks are the sections
    results = tmp_path / "results"
    proc = run_cli([*data, "model=mlp", "schedule=layer_pruning"], results, check=False)
    assert proc.returncode == 2 and "model" in proc.stderr and "'mlp'" in proc.stderr and "resnet20" in proc.stderr
    assert not results.exists()


def test_cli_resnet20_lists_exactly_the_removed_blocks_and_their_flops(tmp_path):
    from test_data import write_cifar

    write_cifar(tmp_path / "data", "cifar10", n_train=40, n_test=10, classes=10)
    results = tmp_path / "results"
    args = ["dataset=cifar10", f"dataset.root={tmp_path / 'data'}", "model=resnet20", "schedule=layer_pruning"]
    args += ["train.epochs=2", "finetune.epochs=1", "train.batch_size=8", "finetune.batch_size=20", "dataset.val_fraction=0"]
    args += ["schedule.penalty=3", "schedule.theta_lr=0.3", "schedule.prune_epochs=1", "shared_results=false"]
    run_cli([*args, "metrics.regions.enabled=false", "dense_cache.enabled=false"], results)
    run_dir = next((results / "runs").iterdir())
    table = pd.read_csv(run_dir / "layer_pruning.csv")
    names = [f"layer{s}.{i}" for s in (1, 2, 3) for i in range(3)]
    assert list(table.layers) == [f"{b}.conv1 {b}.conv2" for b in names]
    state = torch.load(run_dir / "model_finetuned.pt", weights_only=True)
    branch = ("conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias")
    zero = [all(bool((state[f"{b}.{p}"] == 0).all()) for p in branch) for b in names]
    assert table.removed.tolist() == zero and 0 < sum(zero) < 9, table
    # multiply-accumulates per example at 32 x 32: stage 1 at 32 x 32, stage 2 at 16 x 16, stage 3 at 8 x 8
    by_hand = [2 * 16 * 16 * 9 * 1024] * 3
    by_hand += [(32 * 16 + 32 * 32) * 9 * 256] + [2 * 32 * 32 * 9 * 256] * 2
    by_hand += [(64 * 32 + 64 * 64) * 9 * 64] + [2 * 64 * 64 * 9 * 64] * 2
    assert table.macs.tolist() == by_hand
    metrics = pd.read_csv(run_dir / "metrics.csv")
    flops = metrics[(metrics.phase == "finetuned") & (metrics.split == "model")].set_index("metric").value
    assert flops["flops_sparse"] == flops["flops_dense"] - sum(m for m, gone in zip(by_hand, zero) if gone)
