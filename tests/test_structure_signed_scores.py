"""Signed scores (GraSP's (H g) w, Wang, Zhang & Grosse, ICLR 2020; undecayed with score_abs=false)
under the structures that rank groups of weights: a unit, channel group, block or BCR row/column ranks
by the signed sum of its scores, so the most negative groups (GraSP's first removals) go first instead
of being kept for their large |.| norm; method.group_norm=l2 is refused for them before any work; and
nonnegative scores (magnitude) keep exactly the masks of the |.| rule.

Each test feeds hand-made scores through the pruner (the grasp score's function replaced) and compares
the masks with an independent computation written here."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from prune_cli.core.errors import ConfigError
from prune_cli.models.mlp import MLP
from prune_cli.pruning import PruneContext, prune
from prune_cli.pruning.registries import SCORES
from prune_cli.run.prevalidate import validate
from tests.conftest import FAST, run_cli
from tests.helpers import composed, method_options

GRASP = {"name": "grasp", "score": "grasp", "samples_per_class": 10}  # a GraspConfig method node


def hand_scores(model, seed: int, negative: dict[str, tuple[str, int]] | None = None) -> dict[str, torch.Tensor]:
    """Signed scores per prunable weight: standard normal, with rows ('row', i) or columns ('col', j)
    listed in `negative` set to large negative values (|.| large: the old rule kept them)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, module in model.prunable_layers():
        s = torch.randn(module.weight.shape, generator=g)
        for side, i in (negative or {}).get(f"{name}.weight", []):
            if side == "row":
                s[i] = -10.0 - torch.rand(s[i].shape, generator=g)
            else:
                s[:, i] = -10.0 - torch.rand(s[:, i].shape, generator=g)
        out[f"{name}.weight"] = s
    return out


@pytest.fixture
def fixed_grasp(monkeypatch):
    """Make method.score=grasp return the given scores (its `signed` declaration unchanged)."""

    def use(scores: dict[str, torch.Tensor]) -> None:
        entry = dataclasses.replace(SCORES.get("grasp"), fn=lambda model, params, ctx: {n: scores[n].clone() for n in params})
        monkeypatch.setitem(SCORES._entries, "grasp", entry)

    return use


def pruned(model, sparsity: float, **method) -> dict[str, torch.Tensor]:
    return prune(model, sparsity, PruneContext(method=method_options(**method), generator=torch.Generator().manual_seed(0)))


def top(values: torch.Tensor, k: int) -> set[int]:
    return set(torch.argsort(values, descending=True, stable=True)[:k].tolist())


# --------------------------------------------------------------------------- channel


@pytest.mark.parametrize("invert", [False, True])
def test_channel_ranks_units_by_their_signed_sum(fixed_grasp, invert):
    torch.manual_seed(0)
    model = MLP(5, [8, 8], 3)
    scores = hand_scores(model, 1, {"net.1.weight": [("row", 2)], "net.3.weight": [("row", 5)]})
    if invert:  # the most negative units are then the ones to keep: make them positive instead
        scores = {n: torch.where(s < -5, -s, s) for n, s in scores.items()}
    fixed_grasp(scores)
    masks = pruned(model, 0.5, **GRASP, structure="channel", sparsity_tolerance=0.2, invert=invert)
    sign = -1.0 if invert else 1.0
    live = torch.ones(5, dtype=torch.bool)
    for name in ("net.1.weight", "net.3.weight"):
        kept = masks[name].any(1)
        k = int(kept.sum())
        assert 0 < k < 8
        signed = sign * scores[name][:, live].sum(1)
        assert set(torch.nonzero(kept).flatten().tolist()) == top(signed, k)
        live = kept
    # the hand-made outlier units: removed, though their |.| sums are the largest (the old rule kept them)
    assert not masks["net.1.weight"][2].any() and not masks["net.3.weight"][5].any()
    assert 2 in top(scores["net.1.weight"].abs().sum(1), int(masks["net.1.weight"].any(1).sum()))


# --------------------------------------------------------------------------- channel_group


@pytest.mark.parametrize("allocation", ["layerwise", "global"])
def test_channel_group_ranks_groups_by_their_signed_sum(fixed_grasp, allocation):
    torch.manual_seed(0)
    model = MLP(5, [8, 8], 3)
    # unit 3 of the first hidden layer: a strongly negative row; unit 6 of the second: its column in the classifier
    scores = hand_scores(model, 2, {"net.1.weight": [("row", 3)], "net.5.weight": [("col", 6)]})
    fixed_grasp(scores)
    masks = pruned(model, 0.5, **GRASP, structure="channel_group", allocation=allocation, sparsity_tolerance=0.2)
    w1, w2, w3 = (scores[f"net.{i}.weight"] for i in (1, 3, 5))
    # a chain MLP's channel group = a hidden unit: its row and the next layer's column
    totals = [w1.sum(1) + w2.sum(0), w2.sum(1) + w3.sum(0)]
    counts = [torch.full((8,), 5.0 + 8.0), torch.full((8,), 8.0 + 3.0)]
    kept = [masks["net.1.weight"].any(1), masks["net.3.weight"].any(1)]
    assert torch.equal(masks["net.3.weight"].any(0), kept[0]) and torch.equal(masks["net.5.weight"].any(0), kept[1])
    assert all(0 < int(k.sum()) < 8 for k in kept)
    if allocation == "layerwise":
        for total, k in zip(totals, kept):
            assert set(torch.nonzero(k).flatten().tolist()) == top(total, int(k.sum()))
    else:  # one ranking by the signed sum per weight
        key = torch.cat([t / c for t, c in zip(totals, counts)])
        both = torch.cat(kept)
        assert set(torch.nonzero(both).flatten().tolist()) == top(key, int(both.sum()))
    assert not kept[0][3] and not kept[1][6]
    assert 3 in top((w1.abs().sum(1) + w2.abs().sum(0)), int(kept[0].sum()))  # the old |.| rule kept it


# --------------------------------------------------------------------------- block


def block_sums(s: torch.Tensor, r: int, c: int) -> torch.Tensor:
    rows, cols = s.shape
    return s.view(rows // r, r, cols // c, c).sum((1, 3)).flatten()


def test_block_ranks_blocks_by_their_signed_sum(fixed_grasp):
    torch.manual_seed(0)
    model = MLP(8, [8], 4)
    scores = hand_scores(model, 3, {"net.1.weight": [("row", 0), ("row", 1)]})  # blocks 0..3: strongly negative
    fixed_grasp(scores)
    masks = pruned(model, 0.5, **GRASP, structure="block", block_shape=[2, 2], sparsity_tolerance=0.1)
    for name, s in scores.items():
        m = masks[name]
        kept_blocks = block_sums(m.float(), 2, 2)
        assert bool(((kept_blocks == 0) | (kept_blocks == 4)).all())  # whole blocks
        kept = set(torch.nonzero(kept_blocks == 4).flatten().tolist())
        assert kept == top(block_sums(s, 2, 2), len(kept))
    first = block_sums(masks["net.1.weight"].float(), 2, 2)
    assert not first[:4].any()  # the strongly negative blocks are removed
    assert {0, 1, 2, 3} <= top(block_sums(scores["net.1.weight"].abs(), 2, 2), int((first == 4).sum()))  # |.| kept them


# --------------------------------------------------------------------------- bcr


def bcr_optimum(s: torch.Tensor, count: int) -> tuple[float, torch.Tensor]:
    """One block: the rows x columns keeping `count` entries with the largest signed sum (ties: more
    rows, then the first enumerated), by enumeration."""
    r, c = s.shape
    best = None
    for kr in range(r, 0, -1):
        for kc in range(1, c + 1):
            if kr * kc != count:
                continue
            for rows in itertools.combinations(range(r), kr):
                for cols in itertools.combinations(range(c), kc):
                    value = float(s[list(rows)][:, list(cols)].sum())
                    if best is None or value > best[0] + 1e-9:
                        mask = torch.zeros(r, c, dtype=torch.bool)
                        mask[torch.tensor(rows)[:, None], torch.tensor(cols)[None, :]] = True
                        best = (value, mask)
    return best


BCR_CASES = [
    # a strongly negative row and column: the |.| rule keeps them, the signed sum removes them first
    torch.tensor([[-9.0, 1.0, 0.5, 0.2], [-8.0, 0.3, 0.9, 0.1], [-7.5, 0.4, 0.2, 0.8], [-20.0, -11.0, -12.0, -13.0]]),
    torch.tensor([[0.5, -6.0, 0.2, 1.0], [0.1, -7.0, 0.3, 0.6], [-9.0, -8.0, -9.5, -7.0], [0.4, -5.0, 0.7, 0.2]]),
]


@pytest.mark.parametrize("case", range(len(BCR_CASES)))
@pytest.mark.parametrize("sparsity", [0.75, 0.5])
def test_bcr_keeps_the_rows_and_columns_of_the_largest_signed_sum(fixed_grasp, case, sparsity):
    torch.manual_seed(0)
    model = MLP(4, [4], 2)  # the hidden layer is one 4 x 4 block; the classifier is excluded
    s = BCR_CASES[case]
    fixed_grasp({"net.1.weight": s, "net.3.weight": torch.zeros(2, 4)})
    masks = pruned(model, sparsity, **GRASP, structure="bcr", block_shape=[4, 4], exclude_classifier=True)
    mask = masks["net.1.weight"]
    value, expected = bcr_optimum(s, round((1 - sparsity) * 16))
    assert torch.equal(mask, expected), (mask, expected)
    assert float(s[mask].sum()) == pytest.approx(value)


@pytest.mark.parametrize("seed", range(4))
def test_bcr_lines_are_the_top_signed_sums_given_the_other_side(fixed_grasp, seed):
    """On a generic signed block the alternating greedy (as for |.| scores) need not reach the enumerated
    optimum (e.g. [[2, -1, .5, -3], [-4, 1.5, -.5, 2.5], [1, -2, 3, -1], [-.5, .5, -1.5, 1]] keeping 4:
    4.0 against 6.5); what it guarantees is its last step: the kept rows are the kr largest signed
    sums over the kept columns (rows-first start), or the kept columns the kc largest over the kept
    rows (columns-first start)."""
    model = MLP(4, [4], 2)
    s = torch.randn(4, 4, generator=torch.Generator().manual_seed(seed))
    fixed_grasp({"net.1.weight": s, "net.3.weight": torch.zeros(2, 4)})
    mask = pruned(model, 0.75, **GRASP, structure="bcr", block_shape=[4, 4], exclude_classifier=True)["net.1.weight"]
    rows, cols = mask.any(1), mask.any(0)
    assert int(rows.sum()) * int(cols.sum()) == int(mask.sum()) == 4
    rows_best = set(torch.nonzero(rows).flatten().tolist()) == top(s[:, cols].sum(1), int(rows.sum()))
    cols_best = set(torch.nonzero(cols).flatten().tolist()) == top(s[rows].sum(0), int(cols.sum()))
    assert rows_best or cols_best


def test_bcr_signed_sums_differ_from_the_old_rule_on_the_outlier_cases():
    """The hand-made cases are ones the |.| rule gets wrong: its optimum keeps negative scores."""
    for s in BCR_CASES:
        _, old = bcr_optimum(s.abs(), 4)
        _, new = bcr_optimum(s, 4)
        assert float(s[old].sum()) < float(s[new].sum())
        assert bool((s[old] < -5).any())


# --------------------------------------------------------------------------- group_norm=l2


GRASP_CHANNEL = [
    "method=grasp",
    "method.structure=channel",
    "method.allocation=layerwise",
    "sparsity=0.5",
    "method.sparsity_tolerance=0.1",
    "schedule=at_init",
]


def test_l2_with_a_signed_score_is_refused_by_the_cli_before_any_work(tmp_path):
    results = tmp_path / "results"
    proc = run_cli([*FAST, *GRASP_CHANNEL, "method.group_norm=l2"], results, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "'method.group_norm'" in proc.stderr and "'l2'" in proc.stderr, proc.stderr
    assert "l1 with method.score=grasp" in proc.stderr and "signed sum" in proc.stderr, proc.stderr
    assert not results.exists()


@pytest.mark.parametrize(
    "overrides",
    [
        ["method=grasp", "method.structure=block"],
        ["method=grasp", "method.structure=bcr"],
        ["method=grasp", "method.structure=channel_group", "method.allocation=global"],
        ["method=undecayed", "method.score_abs=false", "method.structure=block"],
    ],
)
def test_l2_with_a_signed_score_is_refused_by_the_prerun_checks(overrides):
    with pytest.raises(ConfigError) as err:
        validate(composed(*FAST, *overrides, "method.group_norm=l2", "sparsity=0.5", "method.sparsity_tolerance=0.1"))
    assert err.value.key == "method.group_norm" and err.value.value == "l2"
    assert "l1" in err.value.allowed


@pytest.mark.parametrize(
    "overrides",
    [
        ["method=grasp", "method.absolute=true", "method.structure=block"],  # graspabs: |(H g) w| >= 0
        ["method=undecayed", "method.structure=block"],  # score_abs=true (the paper)
        ["method=magnitude", "method.structure=block"],
        ["method=grasp", "method.structure=block", "method.group_norm=l1"],
    ],
)
def test_l2_is_accepted_for_nonnegative_scores_and_l1_for_signed(overrides):
    norm = [] if any(o.startswith("method.group_norm") for o in overrides) else ["method.group_norm=l2"]
    validate(composed(*FAST, *overrides, *norm, "sparsity=0.5", "method.sparsity_tolerance=0.1"))


# --------------------------------------------------------------------------- nonnegative scores: as before


@pytest.mark.parametrize("norm", ["l1", "l2"])
def test_magnitude_masks_are_those_of_the_norm_rule(norm):
    torch.manual_seed(0)
    model = MLP(8, [8, 8], 4)
    ws = {f"{n}.weight": m.weight.detach().abs() for n, m in model.prunable_layers()}
    agg = (lambda t, dim: t.sum(dim)) if norm == "l1" else (lambda t, dim: t.pow(2).sum(dim).sqrt())

    masks = pruned(model, 0.5, structure="channel", sparsity_tolerance=0.2, group_norm=norm)
    live = torch.ones(8, dtype=torch.bool)
    for name in ("net.1.weight", "net.3.weight"):
        kept = masks[name].any(1)
        assert set(torch.nonzero(kept).flatten().tolist()) == top(agg(ws[name][:, live], 1), int(kept.sum()))
        live = kept

    masks = pruned(model, 0.5, structure="block", block_shape=[2, 2], sparsity_tolerance=0.1, group_norm=norm)
    for name, w in ws.items():
        blocks = w.view(w.shape[0] // 2, 2, w.shape[1] // 2, 2).permute(0, 2, 1, 3).flatten(2)
        kept_blocks = block_sums(masks[name].float(), 2, 2)
        kept = set(torch.nonzero(kept_blocks == 4).flatten().tolist())
        assert kept == top(agg(blocks, -1).flatten(), len(kept))

    masks = pruned(model, 0.5, structure="channel_group", sparsity_tolerance=0.2, group_norm=norm)
    sq = (lambda t: t) if norm == "l1" else (lambda t: t.pow(2))  # channel_group sums |s| or s^2
    w1, w2, w3 = (sq(ws[f"net.{i}.weight"]) for i in (1, 3, 5))
    for total, name in ((w1.sum(1) + w2.sum(0), "net.1.weight"), (w2.sum(1) + w3.sum(0), "net.3.weight")):
        kept = masks[name].any(1)
        assert set(torch.nonzero(kept).flatten().tolist()) == top(total, int(kept.sum()))


def test_magnitude_bcr_keeps_the_largest_sum_of_magnitudes():
    model = MLP(4, [4], 2)
    with torch.no_grad():  # a rank-one |w| = a_i b_j, where the greedy is exact
        model.net[1].weight.copy_(torch.outer(torch.tensor([1.0, -3.0, 2.0, 0.5]), torch.tensor([-2.0, 1.0, 4.0, 0.3])))
    mask = pruned(model, 0.75, structure="bcr", block_shape=[4, 4], exclude_classifier=True)["net.1.weight"]
    _, expected = bcr_optimum(model.net[1].weight.detach().abs(), 4)
    assert torch.equal(mask, expected)


# --------------------------------------------------------------------------- the scores' declarations


def test_each_score_declares_truthfully_whether_it_can_be_negative():
    """GraSP's (H g) w and undecayed's -w g + lam w^2 take either sign; graspabs and undecayed's default
    |.| do not; every other score is >= 0 (|w|, |w g|, |dR/dtheta theta|, U(0,1), squared LAP energies,
    greedy-forward's row ranks plus |w|)."""
    from omegaconf import OmegaConf

    def signed(name: str, **options) -> bool:
        return SCORES.get(name).signed(OmegaConf.create({"score": name, **options}))

    assert signed("grasp", absolute=False) and not signed("grasp", absolute=True)
    assert signed("undecayed", score_abs=False) and not signed("undecayed", score_abs=True)
    others = [
        "gp",
        "gradient_magnitude",
        "lookahead",
        "snip",
        "synflow",
        "random",
        "greedy_forward",
        "mp_global_normalize",
        "magnitude",
    ]
    assert not any(signed(name) for name in others)


def test_an_undecayed_signed_run_ranks_blocks_by_signed_sums(monkeypatch):
    """The pruner reads the declaration from the score: undecayed with score_abs=false ranks by signed sums."""
    torch.manual_seed(0)
    model = MLP(8, [8], 4)
    scores = hand_scores(model, 4, {"net.1.weight": [("row", 0), ("row", 1)]})
    entry = dataclasses.replace(SCORES.get("undecayed"), fn=lambda model, params, ctx: {n: scores[n].clone() for n in params})
    monkeypatch.setitem(SCORES._entries, "undecayed", entry)
    method = {"name": "undecayed", "score": "undecayed", "lam": 0.0, "structure": "block", "block_shape": [2, 2]}
    masks = pruned(model, 0.5, **method, score_abs=False, sparsity_tolerance=0.1)
    first = block_sums(masks["net.1.weight"].float(), 2, 2)
    assert not first[:4].any()
    kept = set(torch.nonzero(first == 4).flatten().tolist())
    assert kept == top(block_sums(scores["net.1.weight"], 2, 2), len(kept))
