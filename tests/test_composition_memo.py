"""prune_cli/run/composition_memo.py: a composition whose group choices were composed before in this
process is the same config as a fresh one, and anything the memoised steps read (config files, the
structured config store, the plugin index) makes it compose afresh."""

from __future__ import annotations

import copy
import os
import shutil

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import FAST
from prune_cli.run import composition_memo
from tests.helpers import REPO, composed


def _with_hydra(*overrides):
    """`composed`, keeping the hydra node (overrides, runtime choices, job) that compose() drops."""
    import prune_cli.cli  # noqa: F401  (the plugin config source, the memo)

    args = [o for x in overrides for o in ([x] if isinstance(x, str) else x)]
    with initialize_config_dir(config_dir=str(REPO / "configs"), version_base="1.3"):
        return compose(config_name="config", overrides=args, return_hydra_config=True)


def _everything(cfg) -> dict:
    """The whole config, hydra node included, unresolved, with the flags and types that matter."""
    return {
        "content": OmegaConf.to_container(cfg, resolve=False),
        "struct": OmegaConf.is_struct(cfg),
        "hydra_readonly": OmegaConf.is_readonly(cfg.hydra),
        "types": {k: OmegaConf.get_type(cfg, k) for k in cfg},
    }


@pytest.mark.parametrize(
    "overrides",
    [
        [*FAST, "sparsity=0.5"],
        ["metrics=full", "metrics.recall_distortion.splits=[test,test]", "seed=3"],
        ["method=gp", "method.batches=0", "train.weight_decay=0.003", "model=resnet20", "dataset=mnist1d"],
        ["data_pruning=random", "data_pruning.keep=0.3", "schedule=gradual", "schedule.end_step=500"],
        ["+experiment=lap_mlp", "method=lookahead", "sparsity=0.9"],
        ["method.structure=bcr", "method.block_shape=[4,4]", "sparsity=0.99", "metrics.speedup.batch_size=0"],
        ["hydra.job.chdir=false", "hydra.verbose=true", "accel.precision=bf16"],
    ],
)
def test_a_memoised_composition_equals_a_fresh_one(overrides):
    """Composed after another composition of the same group choices with other values (a memo hit),
    the config equals Hydra's fresh composition: values, the hydra node (overrides, runtime choices),
    struct mode, schema types."""
    choices = [o for o in overrides if "=" in o and "." not in o.split("=")[0]]
    composition_memo.clear()
    _with_hydra(*choices, "seed=17", "results_dir=elsewhere")  # same choices, other values: memoised
    before = composition_memo.stats()
    memoised = _everything(_with_hydra(overrides))
    after = composition_memo.stats()
    assert after["defaults_hits"] == before["defaults_hits"] + 1  # really served by the memo
    assert after["config_hits"] == before["config_hits"] + 1
    composition_memo.clear()
    assert memoised == _everything(_with_hydra(overrides))  # composed afresh


def test_a_memoised_config_is_a_copy():
    """Changing one composed config changes neither the memo nor the next composition."""
    first = composed(*FAST, "sparsity=0.5")
    first.train.epochs = 999
    first.model.widths.append(7)
    second = composed(*FAST, "sparsity=0.5")
    assert second.train.epochs == 2 and list(second.model.widths) == [16, 16]


def test_an_edited_config_file_is_read_again(tmp_path):
    """The memo key holds a digest of every file's bytes: an edited option is composed afresh, even when
    its modification time is unchanged (a quick rewrite)."""
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    train = configs / "train" / "default.yaml"

    def epochs() -> int:
        with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
            return compose(config_name="config", overrides=["dataset=synthetic"]).train.epochs

    assert epochs() == OmegaConf.load(REPO / "configs" / "train" / "default.yaml").epochs
    assert epochs() == OmegaConf.load(REPO / "configs" / "train" / "default.yaml").epochs  # a memo hit
    text = train.read_text()
    assert "\nepochs: " in text
    stat = train.stat()
    train.write_text(text.replace("\nepochs: ", "\nepochs: 1234 #", 1))
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same modification time: only the bytes differ
    assert epochs() == 1234


def test_a_stored_schema_is_composed_afresh():
    """Storing into Hydra's config store (a plugin's `ConfigStore.store`) invalidates the memo."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    saved = store.repo["hydra"].get("job_logging")
    try:
        store.store(group="hydra/job_logging", name="memo_test", node={"version": 1, "marker": 1})
        assert _with_hydra("hydra/job_logging=memo_test").hydra.job_logging.marker == 1
        assert _with_hydra("hydra/job_logging=memo_test").hydra.job_logging.marker == 1  # a memo hit
        store.store(group="hydra/job_logging", name="memo_test", node={"version": 1, "marker": 2})
        assert _with_hydra("hydra/job_logging=memo_test").hydra.job_logging.marker == 2
    finally:
        composition_memo.clear()  # the store is put back without `store`: forget what was composed from it
        if saved is None:
            del store.repo["hydra"]["job_logging"]
        else:
            store.repo["hydra"]["job_logging"] = saved


def test_the_key_follows_the_plugin_index():
    """A plugin module added from outside (`plugins=[...]`) changes what the plugin config source
    serves: the key changes with the index."""
    from prune_cli.core import plugins

    saved = plugins._INDEX  # noqa: SLF001
    try:
        before = composition_memo._plugin_state()  # noqa: SLF001
        plugins._INDEX = copy.deepcopy(saved)  # noqa: SLF001
        assert composition_memo._plugin_state() == before  # noqa: SLF001 - same content, same key
        plugins._INDEX.outside.append("my_lab.scores")  # noqa: SLF001
        assert composition_memo._plugin_state() != before  # noqa: SLF001
    finally:
        plugins._INDEX = saved  # noqa: SLF001


def test_a_failed_composition_fails_again_with_hydras_message():
    from hydra.errors import ConfigCompositionException, MissingConfigException

    messages = []
    for _ in range(2):
        with pytest.raises((ConfigCompositionException, MissingConfigException)) as err:
            composed(*FAST, "method=no_such_method")
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "no_such_method" in messages[0]
