"""Speedup metric: the paths offered for each structure, the table's rows and columns, the paths'
agreement with the masked model, the arithmetic of speedups and the below-1x log line (timings are
replaced by fixed numbers where a value is checked: no wall-clock thresholds)."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from prune_cli.core.errors import ConfigError, PruneCliError
from prune_cli.data.splits import DataSplits
from prune_cli.metrics import METRICS
from prune_cli.metrics import speedup as speedup_module
from prune_cli.metrics.speedup import whole_block_shape
from prune_cli.models.masks import apply_masks
from prune_cli.models.mlp import MLP
from prune_cli.models.sparse import semi_structured_unavailable
from prune_cli.pruning import PruneContext, prune
from prune_cli.run.prevalidate import validate
from tests.conftest import FAST, run_cli
from tests.helpers import composed, metric_context, method_options

COLUMNS = [
    "path",
    "batch_size",
    "median_ms",
    "p10_ms",
    "p90_ms",
    "speedup",
    "speedup_q25",
    "speedup_q75",
    "faster_share",
    "theoretical_speedup",
    "max_abs_diff",
    "note",
    "warmup",
    "repeats",
    "threads",
    "load_before",
    "load_after",
    "cpu_count",
]


def node(**kw):
    return OmegaConf.create({"batch_size": 8, "warmup": 1, "repeats": 3, "bsr_blocksize": None, "rtol": 1e-4, **kw})


def pruned_context(run_dir, structure="block", sparsity=0.75, classes=4):
    torch.manual_seed(0)
    model = MLP(16, [32, 32], classes)
    dense = copy.deepcopy(model)
    masks = prune(
        model,
        sparsity,
        PruneContext(
            method=method_options(structure=structure, block_shape=[4, 4], sparsity_tolerance=0.05),
            generator=torch.Generator().manual_seed(0),
        ),
    )
    with torch.no_grad():
        apply_masks(model, masks)
    data = DataSplits(*(torch.randn(20, 16), torch.randint(0, classes, (20,))) * 3, num_classes=classes)
    return metric_context(model, data, dense=dense, masks=masks, run_dir=run_dir), model, dense, masks


def test_whole_block_shape_detection():
    """Only square blocks: PyTorch's BSR matmul rejects non-square ones (MKL on CPU: "MKL Sparse
    doesn't support matrices with non-square blocks"; cuSPARSE bsrmm on CUDA takes one block size)."""
    g = torch.Generator().manual_seed(1)
    keep = torch.rand(4, 8, generator=g) < 0.5  # a random pattern of 4x4 blocks on 16x32
    mask = keep.repeat_interleave(4, 0).repeat_interleave(4, 1)
    assert whole_block_shape({"a": mask}) == (4, 4)
    # 6 columns: 4x2 blocks would tile both, but the largest square block that does is 2x2
    assert whole_block_shape({"a": mask, "b": torch.ones(8, 6, dtype=torch.bool)}) == (2, 2)
    assert whole_block_shape({"a": mask, "b": torch.ones(8, 3, dtype=torch.bool)}) is None  # 3 columns: no square block
    assert whole_block_shape({"a": torch.rand(16, 32, generator=g) < 0.5}) is None
    assert whole_block_shape({}) is None
    # every b of 32..2, not only powers of two (audit 2026-12-04): 3x3 blocks on 18x6, 18x18 and 3x18 layers,
    # and 6x6 blocks are 6x6 (they were 2x2)
    for b, shapes in ((3, [(6, 2), (6, 6), (1, 6)]), (6, [(4, 4), (2, 3)])):
        masks = {
            str(i): (torch.rand(r, c, generator=g) < 0.5).repeat_interleave(b, 0).repeat_interleave(b, 1)
            for i, (r, c) in enumerate(shapes)
        }
        masks["0"][:b, :b] = True  # at least one block of each kind in the first mask, so no larger b tiles it
        masks["0"][:b, b : 2 * b] = False
        assert whole_block_shape(masks) == (b, b), b


def test_rows_columns_paths_and_agreement(tmp_path):
    ctx, model, dense, masks = pruned_context(tmp_path, "block")
    model.train()
    out = METRICS.get("speedup")(ctx, "pruned", node())
    assert model.training  # the mode is restored
    table = pd.DataFrame(out.tables["speedup.csv"])
    assert list(table.columns) == COLUMNS
    absent = table[table.note.str.startswith("absent: ")]
    assert absent.median_ms.isna().all() and absent.speedup.isna().all()
    assert "semi_structured" in set(absent.path) or not semi_structured_unavailable()
    df = table.drop(absent.index)
    # compaction applies when some hidden unit lost every outgoing weight (whole 4x4 blocks can do it)
    unread = any(bool((model.net[i].weight == 0).all(0).any()) for i in (3, 5))
    paths = ["dense", "masked_dense", "sparse_bsr", "sparse_csr"] + (["compact_dense"] if unread else [])
    assert sorted(set(df.path)) == sorted(paths)
    assert sorted(set(df.batch_size)) == [1, 8] and len(df) == 2 * len(paths)
    assert (df[df.path != "dense"].max_abs_diff < 1e-4).all()
    assert "BSR 4x4" in df[df.path == "sparse_bsr"].note.iloc[0]
    # theoretical speedup: a MLP's FLOPs per example are its weight counts (independent count)
    total = sum(m.numel() for m in masks.values())
    kept = sum(int(torch.count_nonzero(p)) for n, p in model.named_parameters() if n in masks)
    assert df[df.path == "sparse_csr"].theoretical_speedup.iloc[0] == pytest.approx(total / kept)
    assert (df[df.path == "dense"].speedup == 1.0).all()
    for r in df.itertuples():
        assert r.p10_ms <= r.median_ms <= r.p90_ms
        dense_ms = df[(df.path == "dense") & (df.batch_size == r.batch_size)].median_ms.iloc[0]
        assert r.speedup == pytest.approx(dense_ms / r.median_ms)
    names = {s["metric"] for s in out.scalars}
    assert names == {f"speedup_{p}_{b}" for p in [*paths[1:], "best"] for b in ("batch1", "large")}
    assert METRICS.get("speedup")(ctx, "dense", node()).tables == {}  # nothing to compare in the dense phase


def test_unstructured_has_no_bsr_path_unless_forced(tmp_path):
    ctx, *_ = pruned_context(tmp_path, "unstructured")
    # (compact_dense too: at 75% some classifier columns of this tiny MLP are empty, so units go)
    rows = METRICS.get("speedup")(ctx, "pruned", node()).tables["speedup.csv"]
    paths = {r["path"] for r in rows if not r["note"].startswith("absent")}
    assert paths - {"compact_dense"} == {"dense", "masked_dense", "sparse_csr"}
    (bsr,) = [r for r in rows if r["path"] == "sparse_bsr" and r["batch_size"] == 1]
    assert "not made of whole b x b blocks" in bsr["note"]
    rows = METRICS.get("speedup")(ctx, "pruned", node(bsr_blocksize=[2, 2])).tables["speedup.csv"]
    rows = [r for r in rows if not r["note"].startswith("absent")]
    assert {r["path"] for r in rows} - {"compact_dense"} == {"dense", "masked_dense", "sparse_csr", "sparse_bsr"}
    assert all(r["max_abs_diff"] < 1e-4 for r in rows)


def test_block_masks_only_tiled_by_non_square_blocks_get_a_square_bsr_block(tmp_path):
    """4x4 block pruning of a 10-class classifier leaves 2x4 blocks in its last two rows (10 = 2 * 4 + 2),
    so 2x4 is the largest block tiling every mask; the CPU kernel refuses non-square blocks
    ("MKL Sparse doesn't support matrices with non-square blocks"), which crashed the run. The metric
    times BSR with the largest square block that tiles every mask (2x2 here: 10 rows and the 4x4
    blocks of the hidden layers all split into whole 2x2 blocks) and checks it against the masked model."""
    ctx, model, _dense, masks = pruned_context(tmp_path, "block", classes=10)
    for m in masks.values():  # independently: every mask is made of whole 2x2 blocks, and 4x4 cannot tile 10 rows
        v = m.reshape(m.shape[0], -1)
        assert torch.equal(v, v[::2, ::2].repeat_interleave(2, 0).repeat_interleave(2, 1))
    assert masks["net.5.weight"].shape[0] % 4
    rows = METRICS.get("speedup")(ctx, "pruned", node()).tables["speedup.csv"]
    bsr = [r for r in rows if r["path"] == "sparse_bsr"]
    assert len(bsr) == 2 and all(r["note"].startswith("3 layers BSR 2x2") for r in bsr)
    assert all(r["max_abs_diff"] < 1e-4 for r in bsr)


def test_speedup_arithmetic_and_below_one_log(monkeypatch, caplog, tmp_path):
    ctx, *_ = pruned_context(tmp_path, "unstructured")
    fixed = {"dense": 2.0, "masked_dense": 2.0, "sparse_csr": 4.0}  # ms: CSR twice as slow

    def fake_timing(models, inputs, warmup, repeats):
        return {name: np.full(repeats, fixed.get(name, fixed["dense"]) / 1e3) for name in models}  # other paths: 1x

    monkeypatch.setattr(speedup_module, "_time_interleaved", fake_timing)
    with caplog.at_level(logging.INFO, logger="prune_cli.metrics.speedup"):
        out = METRICS.get("speedup")(ctx, "finetuned", node())
    values = {s["metric"]: s["value"] for s in out.scalars}
    assert values["speedup_sparse_csr_batch1"] == pytest.approx(0.5)
    assert values["speedup_masked_dense_large"] == pytest.approx(1.0)
    assert values["speedup_best_large"] == 1.0  # no sparse path beats the dense model
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2 and "no sparse execution path beats the dense model" in warned[0] and "sparse_csr 0.50x" in warned[0]
    fixed["sparse_csr"] = 0.5
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="prune_cli.metrics.speedup"):
        out = METRICS.get("speedup")(ctx, "finetuned", node())
    assert {s["metric"]: s["value"] for s in out.scalars}["speedup_best_batch1"] == pytest.approx(4.0)
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]


def _fake_semi_structured(monkeypatch):
    """2:4 kernels "available" on this CPU: the semi_structured copy is the masked model in float16
    (what prune_cli/models/sparse.to_semi_structured builds, less the sparse kernels)."""
    import prune_cli.models.sparse as sparse

    def half_copy(model, dtype=torch.float16):
        report = sparse.SparseReport()
        report.layouts["net.1"] = "semi_structured"
        return copy.deepcopy(model).to(dtype).eval(), report

    monkeypatch.setattr(sparse, "semi_structured_unavailable", lambda device=None: "")
    monkeypatch.setattr(sparse, "to_semi_structured", half_copy)


@pytest.mark.parametrize(
    "float16_ms, same_dtype, best",
    [(2.0, 4 / 3, 4 / 3), (1.0, 2 / 3, 1.0)],  # 2:4 beats float16 dense by 4/3x; loses to it (best: none)
)
def test_semi_structured_is_judged_against_the_model_in_its_own_float16(monkeypatch, tmp_path, float16_ms, same_dtype, best):
    """The 2:4 kernels run in float16, the dense model in float32: dense / 2:4 mixes the dtype's gain
    (tensor cores) with the sparsity's. The float16 masked model is timed beside them, and the
    sparsity's own gain (float16 dense / 2:4) is reported and decides the best sparse path."""
    _fake_semi_structured(monkeypatch)
    ctx, *_ = pruned_context(tmp_path, "unstructured")
    fixed = {"dense": 10.0, "masked_dense": 10.0, "sparse_csr": 20.0, "float16_dense": float16_ms, "semi_structured": 1.5}
    monkeypatch.setattr(
        speedup_module, "_time_interleaved", lambda models, inputs, w, r: {n: np.full(r, fixed.get(n, 40.0) / 1e3) for n in models}
    )
    out = METRICS.get("speedup")(ctx, "pruned", node())
    rows = pd.DataFrame(out.tables["speedup.csv"])
    timed = rows[~rows.note.str.startswith("absent")]
    assert {"float16_dense", "semi_structured"} <= set(timed.path)
    assert (timed[timed.path.isin(["float16_dense", "semi_structured"])].max_abs_diff < 1e-2).all()  # float16 outputs checked
    values = {s["metric"]: s["value"] for s in out.scalars}
    assert values["speedup_semi_structured_large"] == pytest.approx(10.0 / 1.5)  # against the float32 dense model
    assert values["speedup_float16_dense_large"] == pytest.approx(10.0 / float16_ms)
    assert values["speedup_semi_structured_same_dtype_large"] == pytest.approx(same_dtype)
    assert values["speedup_best_large"] == pytest.approx(best)
    semi_note = timed[timed.path == "semi_structured"].note.iloc[0]
    assert f"{same_dtype:.2f}x over float16_dense" in semi_note


def test_a_disagreeing_path_is_an_error(monkeypatch, tmp_path):
    ctx, model, dense, masks = pruned_context(tmp_path, "unstructured")
    wrong = copy.deepcopy(model)
    with torch.no_grad():
        wrong.net[1].bias.add_(1.0)
    monkeypatch.setattr(speedup_module, "execution_paths", lambda m, k, n: ({"sparse_csr": (wrong, "broken")}, {}))
    with pytest.raises(PruneCliError, match="sparse_csr disagrees"):
        METRICS.get("speedup")(ctx, "pruned", node())


def test_a_path_whose_outputs_are_nan_is_an_error(monkeypatch, tmp_path):
    """`diff > tol` is False for a NaN difference: a path computing NaN was timed and reported."""
    ctx, model, dense, masks = pruned_context(tmp_path, "unstructured")
    wrong = copy.deepcopy(model)
    with torch.no_grad():
        wrong.net[1].bias[0] = float("nan")
    x = ctx.data.test_x[:8]
    with torch.no_grad():
        assert torch.isnan(wrong(x)).any() and not torch.isnan(model(x)).any()
    monkeypatch.setattr(speedup_module, "execution_paths", lambda m, k, n: ({"sparse_csr": (wrong, "broken")}, {}))
    with pytest.raises(PruneCliError, match="sparse_csr disagrees with the masked model by nan"):
        METRICS.get("speedup")(ctx, "pruned", node())


def test_config_checks():
    for override, key in [
        ("metrics.speedup.batch_size=0", "metrics.speedup.batch_size"),
        ("metrics.speedup.repeats=0", "metrics.speedup.repeats"),
        ("metrics.speedup.bsr_blocksize=[0,4]", "metrics.speedup.bsr_blocksize"),
        ("metrics.speedup.bsr_blocksize=[2,4]", "metrics.speedup.bsr_blocksize"),  # the kernels take square blocks only
        ("metrics.speedup.bsr_blocksize=[1,1]", "metrics.speedup.bsr_blocksize"),  # cuSPARSE needs blocks > 1
        ("metrics.speedup.rtol=2", "metrics.speedup.rtol"),
    ]:
        with pytest.raises(ConfigError) as err:
            validate(composed("metrics.speedup.enabled=true", override))  # the defaults composed once
        assert err.value.key == key
    with pytest.raises(ConfigError, match=r"metrics.speedup.bsr_blocksize.*\[2, 4\].*\[b, b\]"):
        validate(composed("metrics.speedup.enabled=true", "metrics.speedup.bsr_blocksize=[2,4]"))


def test_cli_speedup_table(tmp_path):
    args = [*FAST, "dataset.input_dim=8", "method.structure=block", "method.block_shape=[4,4]", "method.allocation=layerwise"]
    args += ["method.exclude_classifier=true", "sparsity=0.75", "metrics.speedup.enabled=true", "metrics.speedup.batch_size=16"]
    args += ["metrics.speedup.repeats=3"]
    run_cli(args, tmp_path / "r")
    run_dir = next((tmp_path / "r" / "runs").glob("*"))
    df = pd.read_csv(run_dir / "speedup.csv")
    assert set(df.phase) == {"pruned", "finetuned"}
    if semi_structured_unavailable():  # the CPU says why there are no 2:4 kernels
        assert df[df.path == "semi_structured"].note.str.contains("need a CUDA GPU").all()
    rows_written = len(df)
    df = df[~df.note.str.startswith("absent")]
    assert set(df.path) - {"compact_dense"} == {"dense", "masked_dense", "sparse_csr", "sparse_bsr"}
    assert ("compact_dense" in set(df.path)) == (run_dir / "model_compact.pt").exists()
    assert set(df.batch_size) == {1, 16}
    assert (df.max_abs_diff.fillna(0) < 1e-3).all()
    shared = pd.read_csv(tmp_path / "r" / "speedup.csv")
    assert len(shared) == rows_written
    m = pd.read_csv(run_dir / "metrics.csv")
    assert {"speedup_sparse_csr_batch1", "speedup_sparse_bsr_large", "speedup_best_large"} <= set(m.metric)


def test_readme_documents_the_speedup_table():
    from tests.conftest import REPO

    readme = (REPO / "README.md").read_text()
    for column in COLUMNS:
        assert f"`{column}`" in readme, column
    assert "`metrics.speedup.batch_size`" in readme and "docs/speedup.md" in readme
    assert "\n| `model_compact.pt` |" in readme  # a row of the run-directory table (it was missing there)


def test_channel_pruning_gets_the_compact_path_and_saves_it(tmp_path):
    from prune_cli.models.compact import rebuild_compact

    torch.manual_seed(0)
    model = MLP(16, [32, 32], 4)
    dense = copy.deepcopy(model)
    method = method_options(structure="channel", sparsity_tolerance=0.1)
    masks = prune(model, 0.5, PruneContext(method=method, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        apply_masks(model, masks)
    data = DataSplits(*(torch.randn(20, 16), torch.randint(0, 4, (20,))) * 3, num_classes=4)
    ctx = metric_context(model, data, dense=dense, masks=masks, run_dir=tmp_path)
    rows = METRICS.get("speedup")(ctx, "finetuned", node()).tables["speedup.csv"]
    compact_rows = [r for r in rows if r["path"] == "compact_dense"]
    assert not any(r["note"].startswith("absent") for r in compact_rows)
    assert len(compact_rows) == 2 and all(r["max_abs_diff"] < 1e-4 for r in compact_rows)
    assert "net.1 " in compact_rows[0]["note"]
    saved = torch.load(tmp_path / "model_compact.pt", weights_only=True)
    rebuilt = rebuild_compact(MLP(16, [32, 32], 4), saved["spec"], saved["state_dict"]).eval()
    assert rebuilt.net[1].weight.shape[0] < 32
    x = torch.randn(6, 16)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model.eval()(x), rtol=1e-5, atol=1e-5)


@pytest.mark.cuda
@pytest.mark.skipif(bool(semi_structured_unavailable()), reason=f"2:4 semi-structured kernels: {semi_structured_unavailable()}")
def test_semi_structured_path_on_cuda(tmp_path):
    """On a GPU with sparse tensor cores a 2:4 run gets the semi_structured path, whose float16
    outputs the metric checks against the masked model (it raises otherwise)."""
    import dataclasses

    torch.manual_seed(0)
    model = MLP(64, [128], 64)
    dense = copy.deepcopy(model)
    method = method_options(structure="nm", nm_n=2, nm_m=4, exclude_classifier=True, sparsity_tolerance=0.05)
    masks = prune(model, 0.5, PruneContext(method=method, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        apply_masks(model, masks)
    data = DataSplits(*(torch.randn(20, 64), torch.randint(0, 64, (20,))) * 3, num_classes=64)
    ctx = metric_context(model.cuda(), data, dense=dense.cuda(), masks=masks, run_dir=tmp_path)
    ctx = dataclasses.replace(ctx, device=torch.device("cuda"))
    rows = METRICS.get("speedup")(ctx, "pruned", node(batch_size=64)).tables["speedup.csv"]
    semi = [r for r in rows if r["path"] == "semi_structured"]
    assert len(semi) == 2 and all(r["note"].startswith("1 layers 2:4 (float16); ") and r["speedup"] > 0 for r in semi)
    half = [r for r in rows if r["path"] == "float16_dense"]
    assert len(half) == 2 and all(r["speedup"] > 0 for r in half)  # (its agreement is checked by the metric: it raises)


def test_metrics_full_enables_a_cheap_speedup_setting():
    full = composed("metrics=full").metrics.speedup
    assert full.enabled and full.batch_size == 32 and full.repeats == 5 and full.warmup == 1
    assert not composed().metrics.speedup.enabled


def test_sparse_paths_that_convert_no_layer_are_absent_and_dense_layers_are_named():
    """Nothing pruned (all-ones masks, e.g. layer_pruning that removed no section): sparse_csr and
    sparse_bsr were copies of the dense model ("0 layers CSR"), and their timing noise became
    speedup_best_* (1.51x). They are absent, with the reason. Where some layers stay dense (a grouped
    convolution), the path's note names them, as docs/speedup.md says."""
    from prune_cli.metrics.speedup import execution_paths

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4)).eval()
    masks = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model.named_parameters() if n.endswith("weight")}
    paths, absent = execution_paths(model, masks, node())
    assert "sparse_csr" not in paths and "no layer has a zero weight" in absent["sparse_csr"]
    assert "sparse_bsr" not in paths and "no layer has a zero weight" in absent["sparse_bsr"]
    convs = torch.nn.Sequential(torch.nn.Conv2d(4, 8, 3), torch.nn.ReLU(), torch.nn.Conv2d(8, 8, 3, groups=4)).eval()
    with torch.no_grad():
        for conv in (convs[0], convs[2]):
            conv.weight[::2] = 0
    paths, _ = execution_paths(convs, {}, node())
    assert paths["sparse_csr"][1].startswith("1 layers CSR") and "2: dense: groups=4" in paths["sparse_csr"][1]


def test_a_forced_bsr_block_that_fits_no_layer_is_absent_not_csr_timed_as_bsr():
    """metrics.speedup.bsr_blocksize=[4,4] on layers of 23, 17 and 3 outputs (no dimension a multiple
    of 4): every layer fell back to CSR, yet the path counted as sparse_bsr ("0 layers BSR 4x4, 3 CSR"),
    a second CSR timing reported as speedup_sparse_bsr_* (accel audit). It is absent, with the reason."""
    from prune_cli.metrics.speedup import execution_paths

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(13, 23), torch.nn.ReLU(), torch.nn.Linear(23, 17), torch.nn.ReLU(), torch.nn.Linear(17, 3)
    )
    with torch.no_grad():
        for layer in model[::2]:
            layer.weight.mul_(torch.rand_like(layer.weight) > 0.75)
    paths, absent = execution_paths(model.eval(), {}, node(bsr_blocksize=[4, 4]))
    assert "sparse_csr" in paths
    assert "sparse_bsr" not in paths and "no layer runs BSR 4x4" in absent["sparse_bsr"], absent
