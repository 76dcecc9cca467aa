"""Data pruning (issue 13): each selection rule against a hand computation on a tiny dataset, the
run id and dense-cache key, validation before any work, and a run end to end."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from conftest import FAST, run_cli

from prune_cli.core.errors import ConfigError
from prune_cli.data.pruning import (
    DataPruningContext,
    kept_examples,
    largest_keep_leaving_one_out,
    smallest_offset_skipping_one,
    water_fill,
)
from prune_cli.data.pruning.class_balanced import class_balanced
from prune_cli.data.pruning.drop import drop, drop_quotas
from prune_cli.data.pruning.el2n import el2n
from prune_cli.data.pruning.random_subset import random_subset
from prune_cli.data.splits import DataSplits
from tests.helpers import composed, validated


def _data(counts: list[int], val_counts: list[int] | None = None) -> DataSplits:
    """Class c has counts[c] training examples; x = [example index] so a lookup model can score it."""
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    vy = torch.cat([torch.full((n,), c) for c, n in enumerate(val_counts or counts)])
    x = torch.arange(len(y), dtype=torch.float32)[:, None]
    vx = torch.arange(len(vy), dtype=torch.float32)[:, None]
    return DataSplits(x, y, vx, vy, vx, vy, num_classes=len(counts))


class Lookup(nn.Module):
    """Returns the stored logits row of the example whose index is its input."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.table = logits

    def forward(self, x):
        return self.table[x[:, 0].long()]


def _ctx(data, proxies=(), seed=0):
    return DataPruningContext(data, torch.Generator().manual_seed(seed), lambda i, epochs: proxies[i], eval_batch_size=4)


def test_water_fill_breaks_exact_ties_by_the_lower_class_index():
    """Sizes 8/5/54/20, weights 0/.25/1/.25, 4 kept: shares 2/3, 8/3, 2/3 of the weighted classes, equal
    remainders 2/3, so the documented tie rule gives the extra examples to classes 1 and 2 -> 0, 1, 3, 0;
    float rounding of remaining * w / norm gave 0, 1, 2, 1 (51 of 20,000 random cases differed from an
    exact computation)."""
    assert water_fill([8, 5, 54, 20], [0, 0.25, 1, 0.25], 4) == [0, 1, 3, 0]


def test_water_fill_by_hand():
    # equal weights, sizes 10/3/7, 12 kept: 4 each, class 1 has only 3 -> 9 left for two classes,
    # 4.5 each -> 4 + 4 and the remaining one to the lower class index.
    assert water_fill([10, 3, 7], [1, 1, 1], 12) == [5, 3, 4]
    assert water_fill([10, 3, 7], [1, 1, 1], 20) == [10, 3, 7]
    assert water_fill([5, 5], [1, 0], 7) == [5, 2]  # weight-0 classes only once the others are full


def test_class_balanced_counts_are_exact():
    data = _data([10, 3, 7])
    sel = class_balanced(_ctx(data), OmegaConf.create({"keep": 0.6}))  # round(0.6 * 20) = 12
    kept_y = data.train_y[sel.indices]
    assert torch.bincount(kept_y, minlength=3).tolist() == [5, 3, 4]
    assert len(set(sel.indices.tolist())) == 12 and sel.indices.tolist() == sorted(sel.indices.tolist())
    assert [r["kept"] for r in sel.per_class] == [5, 3, 4] and [r["available"] for r in sel.per_class] == [10, 3, 7]


def test_random_keeps_the_rounded_fraction_without_repeats_and_is_seeded():
    data = _data([30, 20, 10])
    node = OmegaConf.create({"keep": 0.25})
    a = random_subset(_ctx(data, seed=1), node).indices
    assert len(a) == 15 and len(set(a.tolist())) == 15 and int(a.max()) < 60
    assert torch.equal(a, random_subset(_ctx(data, seed=1), node).indices)
    assert not torch.equal(a, random_subset(_ctx(data, seed=2), node).indices)


def _drop_algorithm_1(sizes, errors, density):
    """Vysogorets, Ahuja and Kempe (ICLR 2025), Algorithm 1, as printed: class densities d_k grow in
    proportion to the error 1 - r_k, by the excess E over Z = sum over unsaturated classes of N_k (1 - r_k);
    a class above density 1 is capped and its excess goes round again."""
    d = [0.0] * len(sizes)
    unsaturated = set(range(len(sizes)))
    excess = density * sum(sizes)
    while excess > 1e-9 and unsaturated:
        z = sum(sizes[k] * errors[k] for k in unsaturated)
        start = excess  # each round shares the excess it starts with
        for k in sorted(unsaturated):
            step = start * errors[k] / z
            d[k] += step
            excess -= sizes[k] * step
            if d[k] > 1:
                unsaturated.discard(k)
                excess += sizes[k] * (d[k] - 1)
                d[k] = 1.0
    return d


def test_drop_quotas_follow_the_papers_formula():
    # equal class sizes: quota_k = Z e_k / sum e: Z = 120, e = (0.1, 0.2, 0.5) -> 15, 30, 75
    assert drop_quotas([100, 100, 100], [0.1, 0.2, 0.5], 120) == [15, 30, 75]
    # class 2 capped at its 40 examples; 80 left shared 10:20 -> 26.67, 53.33 -> 27, 53 (largest remainder)
    assert drop_quotas([100, 100, 40], [0.1, 0.2, 0.5], 120) == [27, 53, 40]
    assert drop_quotas([10, 10], [0.0, 0.0], 10) == [5, 5]  # no error anywhere: balanced


def test_drop_quotas_break_exact_ties_by_class_index_for_classes_of_different_sizes():
    """Errors are ratios of counts: 4 of 6 and 5 of 9 validation examples wrong. With 50 and 60 training
    examples both weights are exactly 100/3, so 51 kept split 25.5 : 25.5 and the odd example goes to the
    lower class index: 26, 25. The weights were rounded to floats first (33.33333333333333 vs
    33.333333333333336), which gave 25, 26."""
    assert drop_quotas([50, 60], [4 / 6, 5 / 9], 51) == [26, 25]
    assert drop_quotas([60, 50], [5 / 9, 4 / 6], 51) == [26, 25]


def test_water_fill_takes_numpy_and_torch_weights():
    """The exact-fraction weights must not refuse the scalar types callers pass (a numpy float32 made
    Fraction() raise TypeError; numpy ints came back as numpy quotas)."""
    import numpy as np

    from prune_cli.data.pruning import water_fill

    expected = [2, 4]  # 6 kept in proportion 1 : 2, by hand
    for weights in ([1.0, 2.0], [np.float32(1), np.float32(2)], [np.int64(1), np.int64(2)], [torch.tensor(1.0), torch.tensor(2.0)]):
        quotas = water_fill([10, 10], weights, 6)
        assert quotas == expected and all(type(q) is int for q in quotas), (weights, quotas)


def test_drop_keeps_class_densities_proportional_to_the_error_on_a_long_tail():
    """The paper's rule sets each class's density (the fraction kept) in proportion to its error, so the
    kept count is proportional to N_k e_k; the counts were proportional to e_k alone, which agrees only
    when the classes are equally large. Long tail 180/113/71/45, errors 0.05/0.25/0.25/1, Z = 123:
    classes 1 and 2 (equal errors) kept 36 and 35, densities 0.32 and 0.49; by hand, weights N_k e_k =
    9, 28.25, 17.75, 45: class 3's share 55.35 is capped at 45, 78 left over 9:28.25:17.75 -> 12.76,
    40.06, 25.17 -> 13, 40, 25 (largest remainder)."""
    sizes, errors = [180, 113, 71, 45], [0.05, 0.25, 0.25, 1.0]
    quotas = drop_quotas(sizes, errors, 123)
    assert quotas == [13, 40, 25, 45]
    density = _drop_algorithm_1(sizes, errors, 123 / sum(sizes))
    assert all(abs(q - n * d) < 1 for q, n, d in zip(quotas, sizes, density)), (quotas, density)


def test_drop_measures_class_errors_with_the_query_model():
    # validation: 10 examples per class; the query model errs on 1 of class 0 and 4 of class 1
    data = _data([50, 50], val_counts=[10, 10])
    pred = torch.tensor([1] + [0] * 9 + [0] * 4 + [1] * 6)
    query = Lookup(nn.functional.one_hot(pred, 2).float())
    sel = drop(_ctx(data, proxies=[query]), OmegaConf.create({"keep": 0.5, "query_epochs": 1}))
    # errors 0.1 and 0.4 -> quotas 50 * 0.1/0.5 = 10 and 40
    assert torch.bincount(data.train_y[sel.indices], minlength=2).tolist() == [10, 40]
    assert [r["query_error"] for r in sel.per_class] == pytest.approx([0.1, 0.4])


def test_drop_reads_class_errors_in_double_precision():
    """Errors 15/60, 2/60 and 22/60 on 60/60/60 examples, half kept (90): shares 34.62, 4.62, 50.77 ->
    35, 4, 51 (classes 0 and 1 tie at remainder 8/13: the lower index). The errors were stored as
    float32, which broke the tie the other way (34, 5, 51) and wrote 0.25, 0.03333333507... to
    data_pruning.csv."""
    data = _data([60, 60, 60], val_counts=[60, 60, 60])
    wrong = [15, 2, 22]
    pred = torch.cat([torch.tensor([(c + 1) % 3] * wrong[c] + [c] * (60 - wrong[c])) for c in range(3)])
    query = Lookup(nn.functional.one_hot(pred, 3).float())
    sel = drop(_ctx(data, proxies=[query]), OmegaConf.create({"keep": 0.5, "query_epochs": 1}))
    assert [r["query_error"] for r in sel.per_class] == [15 / 60, 2 / 60, 22 / 60]
    assert torch.bincount(data.train_y[sel.indices], minlength=3).tolist() == [35, 4, 51]


def test_el2n_scores_against_the_formula():
    data = _data([2, 2])  # labels 0, 0, 1, 1
    logits_a = torch.tensor([[2.0, 0.0], [0.0, 1.0], [0.5, 0.0], [0.0, 3.0]])
    logits_b = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 2.0], [1.0, 0.0]])
    sel = el2n(
        _ctx(data, proxies=[Lookup(logits_a), Lookup(logits_b)]),
        OmegaConf.create({"keep": 0.5, "proxies": 2, "proxy_epochs": 1, "offset": 0.0}),
    )

    def score(logits, label):  # ||softmax - onehot||_2 for two classes: sqrt(2) * (1 - p_label)
        p = math.exp(logits[label]) / (math.exp(logits[0]) + math.exp(logits[1]))
        return math.sqrt(2) * (1 - p)

    labels = [0, 0, 1, 1]
    expected = [(score(logits_a[i].tolist(), labels[i]) + score(logits_b[i].tolist(), labels[i])) / 2 for i in range(4)]
    hardest = sorted(range(4), key=lambda i: -expected[i])[:2]
    assert sel.indices.tolist() == sorted(hardest)
    per_class = [(expected[0] + expected[1]) / 2, (expected[2] + expected[3]) / 2]
    assert [r["mean_el2n"] for r in sel.per_class] == pytest.approx(per_class)
    offset = el2n(
        _ctx(data, proxies=[Lookup(logits_a), Lookup(logits_b)]),
        OmegaConf.create({"keep": 0.25, "proxies": 2, "proxy_epochs": 1, "offset": 0.25}),
    )
    assert offset.indices.tolist() == [sorted(range(4), key=lambda i: -expected[i])[1]]


def test_none_keeps_run_ids_and_dense_keys_and_a_rule_changes_both(monkeypatch):
    from prune_cli.core.identity import run_id
    from prune_cli.run.dense_cache import dense_key
    from test_config_identity import DENSE_KEYS, RUN_IDS, pin_code_digests

    pin_code_digests(monkeypatch)

    plain = composed("results_dir=results")
    assert run_id(plain) == RUN_IDS[0][1] and dense_key(plain, "cpu") == DENSE_KEYS[0][1]
    assert run_id(composed("results_dir=results", "data_pruning=none")) == RUN_IDS[0][1]
    random_half = composed("results_dir=results", "data_pruning=random")
    random_third = composed("results_dir=results", "data_pruning=random", "data_pruning.keep=0.3")
    assert len({run_id(plain), run_id(random_half), run_id(random_third)}) == 3
    assert len({dense_key(plain, "cpu"), dense_key(random_half, "cpu"), dense_key(random_third, "cpu")}) == 3


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["data_pruning=random", "data_pruning.keep=0"], r"data_pruning\.keep.*0"),
        (["data_pruning=random", "data_pruning.keep=1.5"], r"data_pruning\.keep.*1\.5"),
        (["data_pruning=el2n", "data_pruning.proxies=0"], r"data_pruning\.proxies.*0"),
        (["data_pruning=el2n", "data_pruning.keep=0.8", "data_pruning.offset=0.3"], r"data_pruning\.offset.*0\.3.*keep <= 1"),
        (["data_pruning=drop", "data_pruning.query_epochs=0"], r"data_pruning\.query_epochs"),
        (["data_pruning.keep=0.5"], r"data_pruning\.keep.*0\.5.*data_pruning=none"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validated(*overrides)


def test_bad_input_on_the_command_line_creates_nothing(tmp_path):
    results = tmp_path / "results"
    for args in (
        ["data_pruning=random", "data_pruning.keep=2"],
        ["data_pruning=bogus"],
        ["data_pruning=random", "+data_pruning.kep=0.3"],
    ):
        proc = run_cli([*FAST, *args], results, check=False)
        assert proc.returncode != 0, args
        assert "data_pruning" in proc.stdout + proc.stderr
        assert not results.exists()


def test_a_sweep_of_the_none_baseline_and_a_rule_at_a_keep_says_how_to_run_it(tmp_path):
    """`-m data_pruning=none,random data_pruning.keep=0.3` (audit 2026-12-04): refused before any job
    (the none job's config would carry keep=0.3, which it does not apply), and the message tells the
    researcher to run the none baseline as a command of its own."""
    results = tmp_path / "results"
    proc = run_cli(["-m", *FAST, "data_pruning=none,random", "data_pruning.keep=0.3"], results, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "data_pruning.keep" in out and "0.3" in out and "command of its own" in out, out
    assert not results.exists()


def test_class_balanced_run_end_to_end_with_worst_class_recall(tmp_path):
    results = tmp_path / "results"
    run_cli([*FAST, "data_pruning=class_balanced", "data_pruning.keep=0.3"], results)
    (run_dir,) = (results / "runs").iterdir()
    table = pd.read_csv(run_dir / "data_pruning.csv")
    # README "CSV columns": the run context first, provenance last; the shared table holds the same rows
    from prune_cli.core.tables import CONTEXT_COLUMNS, PROVENANCE_COLUMNS

    columns = list(table.columns)
    assert (
        columns[: len(CONTEXT_COLUMNS) + 1] == CONTEXT_COLUMNS + ["phase"]
        and columns[-len(PROVENANCE_COLUMNS) :] == PROVENANCE_COLUMNS
    )
    assert (table.run_id == run_dir.name).all() and (table.phase == "data_pruning").all() and (table.rule == "class_balanced").all()
    context = pd.read_csv(run_dir / "metrics.csv")[CONTEXT_COLUMNS].drop_duplicates()  # the same run context as the metrics rows
    assert len(context) == 1 and context.iloc[0]["dense_cache"] == "miss"  # (dense_cache is known after the dense step)
    pd.testing.assert_frame_equal(table[CONTEXT_COLUMNS].drop_duplicates().reset_index(drop=True), context.reset_index(drop=True))
    text = [pd.read_csv(p, dtype=str, keep_default_na=False) for p in (run_dir / "data_pruning.csv", results / "data_pruning.csv")]
    pd.testing.assert_frame_equal(*text)
    kept = round(0.3 * table.available.sum())
    assert table.kept.sum() == kept and table.kept.max() - table.kept.min() <= 1
    assert f"kept {kept} of {table.available.sum()} training examples" in (run_dir / "prune-run.log").read_text()
    m = pd.read_csv(run_dir / "metrics.csv")
    pc = pd.read_csv(run_dir / "per_class.csv")
    for phase in ("dense", "finetuned"):
        recalls = pc[(pc.phase == phase) & (pc.split == "test")].recall
        worst = m[(m.phase == phase) & (m.split == "test") & (m.metric == "worst_class_recall")].value.item()
        mean = m[(m.phase == phase) & (m.split == "test") & (m.metric == "mean_class_recall")].value.item()
        assert worst == pytest.approx(recalls.min()) and mean == pytest.approx(recalls.mean())


def test_el2n_scores_are_cached_across_keep_values(tmp_path):
    """A second selection with another `keep` loads the proxy scores instead of training proxies."""
    from prune_cli.run.data_selection import select_training_data
    from tests.helpers import counting_model_builder, proxy_scoring_splits

    build, built = counting_model_builder()
    data = proxy_scoring_splits()
    overrides = [
        "model=mlp",
        "model.widths=[8]",
        "data_pruning=el2n",
        "data_pruning.proxies=2",
        "data_pruning.proxy_epochs=1",
        "train.batch_size=20",
        f"results_dir={tmp_path}",
    ]
    half = select_training_data(composed(*overrides, "data_pruning.keep=0.5"), data, torch.device("cpu"), build, tmp_path)
    assert len(built) == 2 and len(half.train_y) == 30
    third = select_training_data(composed(*overrides, "data_pruning.keep=0.3"), data, torch.device("cpu"), build, tmp_path)
    assert len(built) == 2 and len(third.train_y) == 18  # no proxy trained again
    assert set(third.train_x[:, 0].tolist()) <= set(half.train_x[:, 0].tolist())  # the hardest 18 are among the hardest 30
    assert len(list((tmp_path / "dense_cache" / "data_pruning").glob("el2n-*.pt"))) == 1
    other_seed = select_training_data(
        composed(*overrides, "data_pruning.keep=0.3", "seed=1"), data, torch.device("cpu"), build, tmp_path
    )
    assert len(built) == 4 and len(other_seed.train_y) == 18


def test_grand_at_initialisation_shares_its_scores_across_training_options(tmp_path):
    """GraNd at initialisation (proxy_epochs=0, the paper's) trains nothing, so the training options
    cannot change its scores: a sweep over train.lr scores the proxies once. Before, the cache key held
    the train options and every learning rate built and scored the proxies again. With proxy_epochs > 0
    the learning rate trains the proxies and stays in the key."""
    from prune_cli.run.data_selection import select_training_data
    from tests.helpers import counting_model_builder, proxy_scoring_splits

    build, built = counting_model_builder()
    data = proxy_scoring_splits()
    base = [
        "model=mlp",
        "model.widths=[8]",
        "data_pruning=grand",
        "data_pruning.proxies=2",
        "train.batch_size=20",
        f"results_dir={tmp_path}",
    ]
    first = select_training_data(composed(*base, "train.lr=0.1"), data, torch.device("cpu"), build, tmp_path)
    assert len(built) == 2
    again = select_training_data(composed(*base, "train.lr=0.01", "train.momentum=0.5"), data, torch.device("cpu"), build, tmp_path)
    assert len(built) == 2 and torch.equal(again.train_x, first.train_x)  # loaded, the same selection
    other = tmp_path / "other"
    other.mkdir()
    fresh_cfg = composed(*[o for o in base if not o.startswith("results_dir")], "train.lr=0.01", f"results_dir={other}")
    fresh = select_training_data(fresh_cfg, data, torch.device("cpu"), build, other)
    assert torch.equal(fresh.train_x, first.train_x)  # computed anew elsewhere: what the cache holds
    trained = [*base, "data_pruning.proxy_epochs=1"]
    select_training_data(composed(*trained, "train.lr=0.1"), data, torch.device("cpu"), build, tmp_path)
    select_training_data(composed(*trained, "train.lr=0.01"), data, torch.device("cpu"), build, tmp_path)
    assert len(built) == 2 + 2 + 2 + 2  # (fresh) + two trained proxies per learning rate


def test_drop_measures_a_class_without_validation_examples_on_the_training_split():
    """Long-tailed data: round(0.1 x 4) = 0 validation examples for the rarest class. Its error was
    NaN, read as weight 0, so DRoP kept none of its examples, the opposite of protecting the tail.
    Such a class is measured on the training split, and data_pruning.csv says so."""
    train_y = torch.tensor([0] * 50 + [1] * 50 + [2] * 4)
    val_y = torch.tensor([0] * 10 + [1] * 10)
    train_x = torch.arange(len(train_y), dtype=torch.float32)[:, None]
    val_x = 1000 + torch.arange(len(val_y), dtype=torch.float32)[:, None]  # rows 1000.. of the lookup table
    pred = torch.zeros(2000, dtype=torch.long)
    pred[:100] = train_y[:100]  # right on classes 0 and 1 of the training split, wrong on all of class 2
    pred[1000:1020] = torch.tensor([1] + [0] * 9 + [0] * 4 + [1] * 6)  # validation: errors 1/10 and 4/10
    query = Lookup(nn.functional.one_hot(pred, 3).float())
    data = DataSplits(train_x, train_y, val_x, val_y, val_x, val_y, num_classes=3)
    sel = drop(_ctx(data, proxies=[query]), OmegaConf.create({"keep": 0.5, "query_epochs": 1}))
    assert [r["query_error"] for r in sel.per_class] == pytest.approx([0.1, 0.4, 1.0])
    assert [r["error_split"] for r in sel.per_class] == ["val", "val", "train"]
    # Z = round(0.5 x 104) = 52; class 2's share 52 x 1/1.5 exceeds its 4, the other 48 split 1:4 -> 9.6, 38.4
    assert torch.bincount(data.train_y[sel.indices], minlength=3).tolist() == [10, 38, 4]


def test_offset_and_keep_summing_to_one_still_keep_round_keep_n():
    """N = 103, keep = offset = 0.5: both round 51.5 up to 52, and the window of 52 after skipping 52
    ran past the end: 51 kept, one fewer than the documented round(keep x N). The skip gives way:
    the 52 lowest scores are kept."""
    from prune_cli.data.pruning import keep_highest

    data = _data([103])
    scores = torch.randperm(103, generator=torch.Generator().manual_seed(0)).float()
    sel = keep_highest(_ctx(data), OmegaConf.create({"keep": 0.5, "offset": 0.5}), scores, "el2n")
    assert len(sel.indices) == 52
    assert sorted(sel.indices.tolist()) == sorted(torch.argsort(scores)[:52].tolist())


def test_proxy_scores_are_reused_across_train_epochs_which_proxies_do_not_use(tmp_path):
    """Proxies train for their own epochs (data_pruning.proxy_epochs, in the rule's key), not
    train.epochs: a sweep over train.epochs retrained every proxy. The learning rate still splits the
    cache."""
    from helpers import composed

    from prune_cli.run.data_selection import _disk_cache

    calls = []

    def compute():
        calls.append(1)
        return torch.tensor([float(len(calls))])

    args = ["dataset=synthetic", "data_pruning=el2n", f"dense_cache.dir={tmp_path}"]
    for extra in (["train.epochs=2"], ["train.epochs=5"], ["train.epochs=5", "train.lr=0.5"]):
        _disk_cache(composed(args, *extra), torch.device("cpu"))("el2n", {"proxies": 1, "proxy_epochs": 1}, compute)
    assert len(calls) == 2


@pytest.mark.parametrize(
    "args, key",
    [
        (["data_pruning=el2n", "train.lr=1e12"], "train.lr"),  # the proxy trains with the train config
        (["schedule=greg1", "finetune.lr=1e12"], "finetune.lr"),  # GReg's regularization phase: finetune
    ],
    ids=["proxy", "greg"],
)
def test_a_diverging_phase_names_the_config_it_trains_with(tmp_path, args, key):
    """The divergence message named train.lr for the dense phase and finetune.lr for every other one: a
    data-pruning proxy (trained with the train config) said 'Lower the learning rate (finetune.lr=1e12)'
    when train.lr was set (found by the race audit)."""
    proc = run_cli([*FAST, *args], tmp_path / "results", check=False)
    assert proc.returncode == 2 and "diverged" in proc.stderr, proc.stderr
    assert f"({key}=1000000000000.0)" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        # class_balanced refuses a keep below one example per class before the run (its counts would be
        # unequal: tests/test_unused_train_time.py)
        # 162 training examples (FAST: 60 per class, 6 to validation); max(1, round(0.001 x 162)) = 1 example
        # kept: two of the three classes are gone
        (
            ["data_pruning=random", "data_pruning.keep=0.001"],
            r"classes (\d), (?!\1)(\d) of 3 have no training examples \(removed by data_pruning=random data_pruning\.keep=0\.001\)",
        ),
        # the offset skips the highest scores first: it removes classes too, so the warning names it (audit 2026-12-04)
        (
            ["data_pruning=el2n", "data_pruning.keep=0.001", "data_pruning.offset=0.5", "data_pruning.proxies=1"],
            r"classes (\d), (?!\1)(\d) of 3 have no training examples "
            r"\(removed by data_pruning=el2n data_pruning\.keep=0\.001 data_pruning\.offset=0\.5\)",
        ),
    ],
    ids=["random", "el2n-offset"],
)
def test_data_pruning_that_leaves_classes_out_warns_in_the_log_and_on_stderr(tmp_path, args, expected):
    """A tiny keep removes whole classes from training: not an error (the experiment is legitimate),
    and the selection is unchanged, but it is said in the run's log and on stderr."""
    import re

    results = tmp_path / "results"
    proc = run_cli([*FAST, "sparsity=0.5", *args], results)  # 0.9 disconnects a model trained on 2 examples
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("prune-run: warning:")]
    assert re.fullmatch(rf"prune-run: warning: {expected}; the model is trained without them", line), line
    (run_dir,) = (results / "runs").iterdir()
    assert line.removeprefix("prune-run: warning: ") in (run_dir / "prune-run.log").read_text()
    # once on the terminal: the console log handler (stdout) left it to the stderr line (it was printed twice)
    assert "no training examples" not in proc.stdout, proc.stdout
    table = pd.read_csv(run_dir / "data_pruning.csv")
    assert table.kept.sum() == 1  # what was selected before


def _fast_training_examples() -> int:
    """The number of training examples FAST's synthetic data gives, counted on the loaded splits."""
    from prune_cli.data.cache import load_raw
    from prune_cli.data.splits import build_splits

    cfg = validated(*FAST)
    return len(build_splits(load_raw(cfg.dataset), cfg.dataset, cfg.seed, torch.device("cpu")).train_y)


def test_a_keep_that_rounds_to_every_example_is_refused_before_the_run():
    """keep=0.999 of N=162 keeps round(161.8) = 162: `kept 162 of 162`, metrics identical to
    data_pruning=none under a run id of its own (audit). Refused like keep=1, with the largest keep
    (to 6 decimals) that leaves one example out: it passes, and one a little above it is refused.
    The message named (N-1)/N = 0.993827, yet keep=0.996 keeps round(161.35) = 161 and passed (audit)."""
    n = _fast_training_examples()
    bound = largest_keep_leaving_one_out(n)
    assert round(bound * n) == n - 1 and round((bound + 2e-6) * n) == n
    with pytest.raises(ConfigError, match=rf"data_pruning\.keep.*0\.999.*all {n} training examples.*keep <= {bound:.6f} "):
        validated(*FAST, "data_pruning=random", "data_pruning.keep=0.999")
    validated(*FAST, "data_pruning=random", f"data_pruning.keep={bound}")
    with pytest.raises(ConfigError, match=r"data_pruning\.keep"):
        validated(*FAST, "data_pruning=random", f"data_pruning.keep={bound + 2e-6:.6f}")


@pytest.mark.parametrize("n", [2, 3, 7, 100, 162, 999, 1000, 4001, 60000])
def test_the_quoted_bounds_are_the_real_thresholds(n):
    """By brute force over the keep (offset) values of 6 decimals: the quoted keep is the largest that
    keeps at most N-1 examples, the quoted offset the smallest that skips at least one (Python's round
    halves to even, so N-0.5 and 0.5 are not simply the cut-offs)."""
    keeps = np.arange(1, 1_000_000) / 1e6
    rounded = np.maximum(1, np.rint(keeps * n))  # rint halves to even, as round() does: kept_examples vectorised
    assert all(kept_examples(float(k), n) == r for k, r in zip(keeps[::99_991], rounded[::99_991]))
    assert largest_keep_leaving_one_out(n) == keeps[rounded < n].max()
    assert smallest_offset_skipping_one(n) == keeps[np.rint(keeps * n) > 0].min()


def test_an_offset_that_rounds_to_no_example_is_refused_before_the_run():
    """offset=0.002 of N=162 skips round(0.32) = 0 examples: the selection and every metric equal
    offset=0's under another run id (audit). Refused with the smallest offset that skips one."""
    n = _fast_training_examples()
    bound = smallest_offset_skipping_one(n)
    assert round(0.002 * n) == 0 and round(bound * n) == 1
    with pytest.raises(ConfigError, match=rf"data_pruning\.offset.*0\.002.*skips no example.*offset >= {bound:.6f} "):
        validated(*FAST, "data_pruning=el2n", "data_pruning.keep=0.5", "data_pruning.offset=0.002")
    validated(*FAST, "data_pruning=el2n", "data_pruning.keep=0.5", f"data_pruning.offset={bound}")


def test_proxy_scores_are_shared_across_accel_settings_proxies_do_not_use(tmp_path):
    """Proxies train and score in fp32, uncompiled and contiguous whatever `accel` says (docs/performance.md),
    yet their cache was keyed on the whole accel node: runs at bf16 or with compile=true retrained proxies
    whose scores were equal to the fp32 run's. accel.deterministic, which the proxies do train under, still
    splits the cache."""
    from helpers import composed

    from prune_cli.run.data_selection import _disk_cache

    calls = []

    def compute():
        calls.append(1)
        return torch.tensor([float(len(calls))])

    args = ["dataset=synthetic", "data_pruning=el2n", f"dense_cache.dir={tmp_path}"]
    for extra in ([], ["accel.precision=bf16"], ["accel.compile=true"], ["accel.deterministic=true"]):
        _disk_cache(composed(args, *extra), torch.device("cpu"))("el2n", {"proxies": 1, "proxy_epochs": 1}, compute)
    assert len(calls) == 2
