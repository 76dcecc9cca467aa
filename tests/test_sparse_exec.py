"""Sparse execution (prune_cli/models/sparse.py): the CSR/BSR copy computes what the masked dense
model computes (dense kernels: F.linear / F.conv), for every structure and layer type."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from prune_cli.models.base import PrunableNet
from prune_cli.models.masks import apply_masks
from prune_cli.models.mlp import MLP
from prune_cli.models.resnet import CifarResNet
from prune_cli.models.sparse import SparseConv, SparseLinear, semi_structured_unavailable, to_semi_structured, to_sparse
from prune_cli.pruning import PruneContext, prune
from tests.helpers import TinyConvChain, method_options


def pruned(model, sparsity, **method):
    masks = prune(
        model,
        sparsity,
        PruneContext(method=method_options(**{"sparsity_tolerance": 0.05, **method}), generator=torch.Generator().manual_seed(0)),
    )
    with torch.no_grad():
        apply_masks(model, masks)
    return model.eval()


def assert_same_outputs(model, sparse_model, x):
    with torch.no_grad():
        want, got = model(x), sparse_model(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


class StridedConvs(PrunableNet):
    """Stride, dilation, padding, no bias, and a Conv1d: the im2col arithmetic beyond 3x3/pad 1."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(3, 8, 5, stride=2, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, bias=False)
        self.fc = nn.Linear(8 * 5 * 3, 5)
        self.classifier = "fc"

    def forward(self, x):  # x: [n, 3, 20]
        h = torch.relu(self.c1(x))  # [n, 8, 9]
        h = h.unsqueeze(-1).expand(-1, -1, -1, 5)  # [n, 8, 9, 5]
        return self.fc(torch.relu(self.c2(h)).flatten(1))


@pytest.mark.parametrize("layout", ["csr", "bsr"])
@pytest.mark.parametrize("structure", ["unstructured", "block", "bcr", "nm"])
def test_mlp_matches_masked_model(layout, structure):
    torch.manual_seed(0)
    model = MLP(16, [32, 32], 4)
    sparsity = 0.5 if structure == "nm" else 0.75
    pruned(model, sparsity, structure=structure, block_shape=[4, 4], nm_n=2, nm_m=4)
    sparse, report = to_sparse(model, layout, blocksize=(4, 4))
    assert set(report.layouts.values()) == {layout}
    assert all(isinstance(m, SparseLinear) for m in sparse.net if isinstance(m, SparseLinear)) and len(report.layouts) == 3
    assert_same_outputs(model, sparse, torch.randn(7, 16))
    assert_same_outputs(model, sparse, torch.randn(1, 16))  # batch size 1


@pytest.mark.parametrize("layout", ["csr", "bsr"])
def test_convolutions_as_sparse_im2col(layout):
    torch.manual_seed(1)
    model = pruned(TinyConvChain(), 0.75, structure="block", block_shape=[4, 4])
    sparse, report = to_sparse(model, layout, blocksize=(4, 4))
    assert isinstance(sparse.c1, SparseConv) and isinstance(sparse.c2, SparseConv)
    assert_same_outputs(model, sparse, torch.randn(3, 4, 6, 6))
    model = pruned(StridedConvs(), 0.8)
    sparse, report = to_sparse(model, "csr")
    assert set(report.layouts) == {"c1", "c2", "fc"}
    assert_same_outputs(model, sparse, torch.randn(2, 3, 20))


def test_resnet_with_batchnorm_and_shortcuts():
    torch.manual_seed(2)
    model = pruned(CifarResNet(8, 3, 10), 0.8)
    sparse, report = to_sparse(model, "csr")
    assert len(report.layouts) == len(model.prunable_layers())
    assert_same_outputs(model, sparse, torch.randn(2, 3, 16, 16))


def test_bsr_falls_back_to_csr_and_dense_layers_stay_dense():
    torch.manual_seed(3)
    model = MLP(6, [8], 3)  # weights 8x6 and 3x8: neither is a multiple of 4x4 blocks
    pruned(model, 0.5, exclude=["net.3"])
    sparse, report = to_sparse(model, "bsr", blocksize=(4, 4))
    assert report.layouts == {"net.1": "csr"} and "not a multiple" in report.notes["net.1"]
    assert isinstance(sparse.net[3], nn.Linear) and report.notes["net.3"] == "dense: no zero weight"
    assert_same_outputs(model, sparse, torch.randn(5, 6))


def test_sparse_storage_holds_only_the_kept_weights():
    torch.manual_seed(4)
    model = pruned(MLP(16, [32], 4), 0.9)
    sparse, _ = to_sparse(model, "csr")
    for dense, sp in ((model.net[1], sparse.net[1]), (model.net[3], sparse.net[3])):
        assert sp.weight.layout == torch.sparse_csr
        assert sp.weight.values().numel() == int(torch.count_nonzero(dense.weight))
        torch.testing.assert_close(sp.weight.to_dense(), dense.weight.detach())


def test_works_under_inference_mode_and_refuses_unknown_layouts():
    torch.manual_seed(5)
    model = pruned(MLP(16, [32], 4), 0.75)
    sparse, _ = to_sparse(model, "csr")
    x = torch.randn(3, 16)
    with torch.inference_mode():
        got = sparse(x)
    torch.testing.assert_close(got, model(x).detach(), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="coo"):
        to_sparse(model, "coo")
    with pytest.raises(ValueError, match="blocksize"):
        to_sparse(model, "bsr")
    # non-square blocks build, then the kernel refuses them at the first product (MKL on CPU:
    # "MKL Sparse doesn't support matrices with non-square blocks"): refused up front instead
    with pytest.raises(ValueError, match="square"):
        to_sparse(model, "bsr", blocksize=(2, 4))


NO_SEMI_STRUCTURED = semi_structured_unavailable()


@pytest.mark.skipif(not NO_SEMI_STRUCTURED, reason="this machine has 2:4 kernels; the GPU test below runs instead")
def test_semi_structured_is_refused_with_the_reason_without_a_cuda_gpu():
    with pytest.raises(RuntimeError, match="CUDA|compute capability"):
        to_semi_structured(MLP(64, [64], 32))


@pytest.mark.cuda
@pytest.mark.skipif(bool(NO_SEMI_STRUCTURED), reason=f"2:4 semi-structured kernels: {NO_SEMI_STRUCTURED}")
def test_semi_structured_2_4_on_cuda():
    """2:4 masks (method.structure=nm, 2:4) on sparse tensor cores compute the masked model's
    outputs to float16 tolerance; a layer that is not 2:4 stays dense."""
    torch.manual_seed(6)
    model = pruned(MLP(64, [128], 64), 0.5, structure="nm", nm_n=2, nm_m=4, exclude_classifier=True)
    sparse, report = to_semi_structured(model)
    assert report.layouts == {"net.1": "semi_structured"} and "not 2:4" in report.notes["net.3"]
    x = torch.randn(64, 64)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x.cuda().half()).float().cpu(), model(x), rtol=2e-2, atol=2e-2)


def test_a_layer_with_its_own_forward_keeps_it():
    """NTKLinear's forward is not x W^T + b (it rescales by sigma_w / sqrt(fan_in) and the density):
    replaced by a SparseLinear, model=ntk_mlp's CSR copy was off by about 40 and metrics.speedup stopped
    the run after training. It stays dense, with the reason in the report."""
    from prune_cli.models.ntk_mlp import NTKLinear

    torch.manual_seed(0)
    model = nn.Sequential(NTKLinear(4, 8), nn.ReLU(), NTKLinear(8, 3)).eval()
    with torch.no_grad():
        model[0].weight[model[0].weight.abs() < 0.5] = 0
    sparse_model, report = to_sparse(model, "csr")
    assert_same_outputs(model, sparse_model, torch.randn(5, 4))
    assert report.layouts == {} and "own forward" in report.notes["0"]


def test_bsr_products_on_cpu_get_a_multiple_of_16_columns(monkeypatch):
    """PyTorch's CPU BSR x dense product took a path about 100x slower unless the dense operand had a
    multiple of 16 columns (batch 1 of a 1024-wide Linear: 23 ms instead of 0.16 ms; docs/speedup.md).
    The BSR copy pads the columns with zeros (outputs unchanged: the tests above, batch 1 and 7); CSR is
    left as it is."""
    import prune_cli.models.sparse as sparse_module

    seen = []
    real_addmm, real_mm = torch.addmm, torch.mm

    def addmm(bias, weight, dense, *a, **k):
        seen.append((weight.layout, dense.shape[1]))
        return real_addmm(bias, weight, dense, *a, **k)

    def mm(weight, dense, *a, **k):
        seen.append((weight.layout, dense.shape[1]))
        return real_mm(weight, dense, *a, **k)

    monkeypatch.setattr(sparse_module.torch, "addmm", addmm)
    monkeypatch.setattr(sparse_module.torch, "mm", mm)
    torch.manual_seed(0)
    model = pruned(MLP(16, [32, 32], 4), 0.75, structure="block", block_shape=[4, 4])
    for layout in ("bsr", "csr"):
        sparse, _ = to_sparse(model, layout, blocksize=(4, 4))
        for batch in (1, 7, 16, 20):
            seen.clear()
            assert_same_outputs(model, sparse, torch.randn(batch, 16))
            columns = {c for lay, c in seen if lay in (torch.sparse_bsr, torch.sparse_csr)}
            assert columns == ({-(-batch // 16) * 16} if layout == "bsr" else {batch}), (layout, batch, seen)
    conv = pruned(TinyConvChain(), 0.75, structure="block", block_shape=[4, 4])
    sparse, _ = to_sparse(conv, "bsr", blocksize=(4, 4))
    seen.clear()
    assert_same_outputs(conv, sparse, torch.randn(3, 4, 6, 6))
    assert all(c % 16 == 0 for lay, c in seen if lay == torch.sparse_bsr) and any(lay == torch.sparse_bsr for lay, _ in seen)


def test_building_a_bsr_copy_prints_no_beta_notice():
    """torch's "Sparse BSR tensor support is in beta" notice (once per process) reached the user's output:
    only the CSR one was silenced. Run in a fresh interpreter, where torch has not printed it yet."""
    import subprocess
    import sys

    code = (
        "import warnings, torch; warnings.simplefilter('always');"
        "from prune_cli.models.sparse import sparse_matrix;"
        "sparse_matrix(torch.eye(8), 'bsr', (4, 4)); sparse_matrix(torch.eye(8), 'csr')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "is in beta" not in proc.stderr, proc.stderr[-2000:]
