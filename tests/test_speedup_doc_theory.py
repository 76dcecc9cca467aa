"""The theory column of docs/speedup.md's benchmark tables against the benchmark's own computation
(scripts/bench_speedup.py: `masked_model` / `conv_model` after torch.manual_seed(0); MLP: total / kept
weights, convnets: dense / kept multiply-accumulates of metrics/cost.py `layer_table`). The BCR 16x16
rows (and ResNet-20's block 4x4 rows) kept the values of the masks before block and BCR followed the
allocation's per-layer densities (9.97 and 96 where the code now gives 9.85 and 85.3)."""

from __future__ import annotations

import re
import runpy

import pytest
import torch

from conftest import REPO

DOC = (REPO / "docs" / "speedup.md").read_text()


def _script(monkeypatch) -> dict:
    monkeypatch.syspath_prepend(str(REPO / "scripts"))  # the script imports script_args from its folder
    return runpy.run_path(str(REPO / "scripts" / "bench_speedup.py"), run_name="bench_speedup")


def section(start: str, end: str) -> str:
    return DOC[DOC.index(start) : DOC.index(end, DOC.index(start))]


def theory_cells(text: str, row: str, sparsity: str) -> list[str]:
    """The theory cell of every table row `| <row> | <sparsity> | <theory> |` in `text`."""
    return re.findall(rf"^\| {re.escape(row)} \| {re.escape(sparsity)} \| ([0-9.]+) \|", text, flags=re.M)


def agrees(cell: str, value: float) -> bool:
    """`cell` is `value` rounded to the cell's printed digits."""
    decimals = len(cell.split(".")[1]) if "." in cell else 0
    return abs(float(cell) - value) <= 0.5 * 10**-decimals + 1e-9


def mlp_theory(script: dict, hidden: list[int], structure: str, sparsity: float, block: list[int]) -> float:
    torch.manual_seed(0)
    dense = script["MLP"](1024, hidden, 1024).eval()
    model = script["masked_model"](dense, structure, sparsity, block)
    linear = [m for m in model.net if isinstance(m, torch.nn.Linear)]
    return sum(m.weight.numel() for m in linear) / sum(int(torch.count_nonzero(m.weight)) for m in linear)


def test_quick_mlp_tables_bcr16_theory(monkeypatch):
    script = _script(monkeypatch)
    tables = [
        section("`PYTHONPATH=. python scripts/bench_speedup.py --quick`", "### Full width"),
        section("### The same benchmark on the GPU machine's CPU", "Each table is one run on its machine"),
    ]
    for sparsity in ("0.90", "0.99"):
        value = mlp_theory(script, [1024, 1024], "bcr", float(sparsity), [16, 16])
        for text in tables:
            cells = theory_cells(text, "BCR 16×16", sparsity)
            assert len(cells) == 1 and agrees(cells[0], value), (sparsity, cells, value)
    assert mlp_theory(script, [1024, 1024], "bcr", 0.99, [16, 16]) == pytest.approx(256 / 3)  # 3/256 in every layer


@pytest.mark.slow
def test_full_width_mlp_table_bcr_theory(monkeypatch):
    script = _script(monkeypatch)
    text = section("### Full width", "The block rows measured again")
    for row, block, sparsity in (("BCR 4×4", [4, 4], "0.90"), ("BCR 16×16", [16, 16], "0.90"), ("BCR 16×16", [16, 16], "0.99")):
        value = mlp_theory(script, [4096, 4096], "bcr", float(sparsity), block)
        cells = theory_cells(text, row, sparsity)
        assert len(cells) == 1 and agrees(cells[0], value), (row, sparsity, cells, value)


def test_resnet20_block4_theory(monkeypatch):
    script = _script(monkeypatch)
    torch.manual_seed(0)
    nets = {"vgg11": script["VGG"](script["PLANS"]["vgg11"], 3, 10), "resnet20": script["CifarResNet"](20, 3, 10)}
    dense = nets["resnet20"].eval()  # the masks depend on the weights only (magnitude), not on BatchNorm statistics
    prunable = [f"{n}.weight" for n, _ in dense.prunable_layers()]
    first = section("### Convolutional networks", "Sparse convolutions at high sparsity")
    second = section("Sparse convolutions at high sparsity", "VGG-11, unstructured magnitude masks")
    for sparsity in ("0.90", "0.95"):
        table = script["layer_table"](script["conv_model"](dense, "block", float(sparsity), [4, 4]), prunable, (3, 32, 32))
        value = sum(r["flops_dense"] for r in table) / sum(r["flops_sparse"] for r in table)
        cells = theory_cells(second, "block 4×4", sparsity)
        if sparsity == "0.90":
            cells += theory_cells(first, "ResNet-20 block 4×4", sparsity)
        assert len(cells) == (2 if sparsity == "0.90" else 1) and all(agrees(c, value) for c in cells), (sparsity, cells, value)
