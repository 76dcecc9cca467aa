"""The dense cache's key covers the code that trains the model, not only its version string
(README "dense_cache"): a researcher who edits prune-cli (an editable install, a `git pull` without
a new version) or an outside model plugin must not get a dense model trained by the old code."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conftest import FAST
from tests.helpers import composed


def _key(monkeypatch=None, **patched) -> str:
    from prune_cli.run import dense_cache

    for name, value in patched.items():
        monkeypatch.setattr(dense_cache, name, value)
    return dense_cache.dense_key(composed(FAST), "cpu")


def test_the_digest_is_of_every_python_files_path_and_bytes(tmp_path):
    """Against a digest computed here: sha256 over (relative path, bytes) of each .py file in order."""
    from prune_cli.core.file_digest import tree_digest

    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    files = {"pkg/a.py": b"x = 1\n", "pkg/sub/b.py": b"y = 2\n"}
    for rel, data in files.items():
        (tmp_path / rel).write_bytes(data)
    (tmp_path / "pkg" / "notes.txt").write_text("not code")
    (tmp_path / "pkg" / "a.cpython-311.pyc").write_bytes(b"\0compiled")
    expected = hashlib.sha256()
    for rel in sorted(files):
        expected.update(rel.removeprefix("pkg/").encode() + b"\0" + files[rel] + b"\0")
    assert tree_digest(tmp_path / "pkg", ".py") == expected.hexdigest()
    (tmp_path / "pkg" / "sub" / "b.py").write_bytes(b"y = 3\n")
    assert tree_digest(tmp_path / "pkg", ".py") != expected.hexdigest()


def test_editing_the_package_changes_the_dense_key(monkeypatch):
    before = _key()
    assert _key(monkeypatch, package_digest=lambda: "0" * 64) != before


# An outside lab package (never imported here: the index reads decorator lines, the key reads bytes).
ALAB = {
    "__init__.py": "",
    "netlib.py": "ACT = 'tanh'\n",
    "tinynet2.py": "from alab.netlib import ACT\n\n\n@register_model('tinynet2')\ndef tinynet2(cfg, shape, classes):\n    pass\n",
    "gblobs.py": "@register_dataset('gblobs')\ndef gblobs(cfg):\n    pass\n",
    # a metric comes with its schema (a metric without one is refused when indexed: tests/test_plugin_contracts.py)
    "nnz.py": (
        "from dataclasses import dataclass\n\nfrom prune_cli.core.config_base import config_schema\n"
        "from prune_cli.metrics import register_metric\n\n\n@config_schema('metric', 'nnz')\n@dataclass\n"
        "class NnzConfig:\n    enabled: bool = False\n\n\n@register_metric('nnz')\ndef nnz(ctx, phase, node):\n    pass\n"
    ),
    "drop_some.py": "@register_data_pruning('drop_some')\ndef drop_some(ctx):\n    pass\n",
}


def _lab(tmp_path, monkeypatch, modules: list[str]) -> Path:
    """`alab` written under tmp_path and `modules` of it indexed as outside plugins (on a copy of the index)."""
    import copy

    from prune_cli.core import plugins

    (tmp_path / "alab").mkdir(exist_ok=True)
    for name, text in ALAB.items():
        (tmp_path / "alab" / name).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_INDEX", copy.deepcopy(plugins.index()))
    plugins.add_modules(modules)
    return tmp_path / "alab"


def _key_with(**names) -> str:
    """The dense key of FAST with these nodes' `name` replaced (a plugin's option, chosen without composing it)."""
    from omegaconf import open_dict

    from prune_cli.run import dense_cache

    cfg = composed(FAST)
    with open_dict(cfg):
        for node, name in names.items():
            cfg[node].name = name
    return dense_cache.dense_key(cfg, "cpu")


def test_editing_a_module_a_model_plugin_imports_changes_the_dense_key(tmp_path, monkeypatch):
    """Plugin audit: `alab/tinynet2.py` imports its activation from `alab/netlib.py`; after netlib.py
    changed Tanh to Sigmoid, a run with another sparsity loaded the dense model trained with Tanh from
    the cache (the key hashed tinynet2.py alone) and evaluated it as Sigmoid (dense accuracy 0.45 ->
    0.333). The key covers every .py file of the plugin's top-level package."""
    lab = _lab(tmp_path, monkeypatch, ["alab.tinynet2"])
    before = _key_with(model="tinynet2")
    (lab / "netlib.py").write_text("ACT = 'sigmoid'\n")
    assert _key_with(model="tinynet2") != before
    (lab / "netlib.py").write_text("ACT = 'tanh'\n")
    assert _key_with(model="tinynet2") == before  # the same code again: the same entry


def test_a_top_level_plugin_module_is_digested_as_its_one_file(tmp_path, monkeypatch):
    """A single-file module outside any package: its bytes' sha256, computed here independently."""
    import copy
    import hashlib

    from prune_cli.core import plugins
    from prune_cli.run import dense_cache

    text = "@register_model('solo')\ndef solo(cfg, shape, classes):\n    pass\n"
    (tmp_path / "solo_model.py").write_text(text)
    (tmp_path / "neighbour.py").write_text("X = 1\n")  # another top-level module beside it: not its code
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_INDEX", copy.deepcopy(plugins.index()))
    plugins.add_modules(["solo_model"])
    cfg = composed(FAST)
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.model.name = "solo"
    inputs = dense_cache.dense_inputs(cfg, "cpu")
    assert inputs["plugin_sources"]["solo_model"] == hashlib.sha256(text.encode()).hexdigest()
    (tmp_path / "neighbour.py").write_text("X = 2\n")
    assert dense_cache.dense_inputs(cfg, "cpu") == inputs


def test_adding_any_plugin_module_changes_the_dense_key(tmp_path, monkeypatch):
    """A module can change training as it is imported (the review: a metric plugin wrapping
    torch.nn.functional.cross_entropy at import reused a dense model trained without it, when only the
    modules declaring the chosen dataset or model were in the key). Every outside module loaded is in
    it: adding an unrelated plugin trains a new entry once."""
    from prune_cli.run import dense_cache

    _lab(tmp_path, monkeypatch, ["alab.gblobs"])
    alone = _key_with(dataset="gblobs")
    _lab(tmp_path, monkeypatch, ["alab.nnz"])  # indexed beside gblobs, as `plugins=[alab.gblobs,alab.nnz]`
    assert _key_with(dataset="gblobs") != alone
    assert {"alab.gblobs", "alab.nnz"} <= dense_cache.dense_inputs(composed(FAST), "cpu")["plugin_sources"].keys()


def test_the_key_is_stable_in_one_process():
    assert _key() == _key()


def test_a_miss_because_the_code_changed_says_so_in_the_log(tmp_path, monkeypatch, caplog):
    import logging

    from prune_cli.core.identity import run_id
    from prune_cli.run import dense_cache
    from prune_cli.run.experiment import run
    from tests.helpers import compose

    cache = f"dense_cache.dir={tmp_path / 'cache'}"
    for code in ("old", "new"):
        monkeypatch.setattr(dense_cache, "package_digest", lambda code=code: code)
        cfg = compose([*FAST, cache, "train.epochs=1", "finetune.epochs=1"], tmp_path / code)
        with caplog.at_level(logging.INFO, logger="prune_cli.run.experiment"):
            run(cfg, tmp_path / code / "runs" / run_id(cfg))
    entries = sorted(p.parent.name for p in (tmp_path / "cache").glob("*/COMPLETE"))
    assert len(entries) == 2  # one model per code version
    old_entry = next(
        e for e in entries if json.loads((tmp_path / "cache" / e / "config.json").read_text())["prune_cli_source"] == "old"
    )
    said = [r.getMessage() for r in caplog.records if "trained by other code" in r.getMessage()]
    assert said == [
        f"dense cache: 1 entry for this config was trained by other code (prune-cli or torch version, or the source of "
        f"prune-cli or a plugin differs), e.g. {tmp_path / 'cache' / old_entry}; training again"
    ]


def test_a_hit_on_a_model_trained_with_another_torch_thread_count_says_so(tmp_path, caplog):
    """`threads` is not in the dense key (it changes speed), but on a CPU it changes how sums are split:
    a dense model trained with 2 threads, loaded by a run with 1, gave test loss 2.262516 where that
    run training its own model gives 2.262517 (resume audit). The hit is kept and its log says so."""
    import logging

    import torch

    from prune_cli.core.identity import run_id
    from prune_cli.run.experiment import run
    from tests.helpers import compose

    cache = f"dense_cache.dir={tmp_path / 'cache'}"
    before = torch.get_num_threads()
    try:
        for threads, method in ((before + 1, "random"), (before, "magnitude")):
            torch.set_num_threads(threads)
            cfg = compose([*FAST, cache, "train.epochs=1", "finetune.epochs=1", f"method={method}"], tmp_path / method)
            with caplog.at_level(logging.WARNING, logger="prune_cli.run.experiment"):
                run(cfg, tmp_path / method / "runs" / run_id(cfg))
    finally:
        torch.set_num_threads(before)
    said = [r.getMessage() for r in caplog.records if "torch threads" in r.getMessage()]
    assert len(said) == 1 and f"trained with {before + 1} torch threads, this process uses {before}" in said[0], said


def test_an_entry_moved_aside_as_unreadable_is_not_called_other_code(tmp_path, caplog):
    """A corrupt entry is moved to `<key>.corrupt-<time>` (with its COMPLETE and config.json); the next
    miss's log then said the entry "was trained by other code" (resume audit), though the code was the
    same and the entry was only unreadable."""
    import logging

    from prune_cli.core.identity import run_id
    from prune_cli.run.experiment import run
    from tests.helpers import compose

    cache = f"dense_cache.dir={tmp_path / 'cache'}"
    for method in ("random", "magnitude"):
        cfg = compose([*FAST, cache, "train.epochs=1", "finetune.epochs=1", f"method={method}"], tmp_path / method)
        if method == "magnitude":
            [entry] = (tmp_path / "cache").glob("*/dense.pt")
            entry.write_bytes(entry.read_bytes()[:100])
        with caplog.at_level(logging.INFO, logger="prune_cli.run.experiment"):
            run(cfg, tmp_path / method / "runs" / run_id(cfg))
    assert len(list((tmp_path / "cache").glob("*.corrupt-*"))) == 1
    assert "unreadable" in caplog.text and "trained by other code" not in caplog.text


def test_an_entry_holding_other_pickled_objects_is_named_without_torch_s_unsafe_advice(tmp_path, caplog):
    """A dense.pt replaced by a pickle of other objects: the warning copied torch's first line, with its
    advice to load the file unsafely and its terminal escape codes."""
    import argparse
    import logging

    import torch

    from prune_cli.core.identity import run_id
    from prune_cli.run.experiment import run
    from tests.helpers import compose

    cache = f"dense_cache.dir={tmp_path / 'cache'}"
    for method in ("random", "magnitude"):
        cfg = compose([*FAST, cache, "train.epochs=1", "finetune.epochs=1", f"method={method}"], tmp_path / method)
        if method == "magnitude":
            [entry] = (tmp_path / "cache").glob("*/dense.pt")
            torch.save(argparse.Namespace(x=1), entry)
        with caplog.at_level(logging.INFO, logger="prune_cli.run.dense_cache"):
            run(cfg, tmp_path / method / "runs" / run_id(cfg))
    assert "it holds objects other than tensors and plain containers" in caplog.text, caplog.text
    assert "\x1b[" not in caplog.text and "can still be loaded" not in caplog.text


def test_editing_the_split_code_changes_the_dense_and_data_pruning_keys(tmp_path, monkeypatch):
    """A dense model (and data-pruning scores, keyed by the same inputs: prune_cli/run/data_selection.py)
    trained on the classes `longtail_counts` chose must not be reused once that code chooses other
    counts: the key's source digest covers prune_cli/data/splits.py. Checked on a copy of the package
    whose splits.py is edited, not by trusting the digest's walk."""
    import shutil

    import prune_cli
    from prune_cli.run import dense_cache

    package = Path(prune_cli.__file__).resolve().parent
    copy = tmp_path / "prune_cli"
    shutil.copytree(package, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(prune_cli, "__file__", str(copy / "__init__.py"))
    dense_cache.package_digest.cache_clear()
    try:
        cfg = composed([*FAST, "dataset.imbalance=longtail", "dataset.longtail_ratio=10"])
        before = dense_cache.dense_inputs(cfg, "cpu")["prune_cli_source"], dense_cache.dense_key(cfg, "cpu")
        splits = copy / "data" / "splits.py"
        splits.write_text(splits.read_text().replace("round(n_head / s)", "int(n_head / s)"))
        dense_cache.package_digest.cache_clear()
        after = dense_cache.dense_inputs(cfg, "cpu")["prune_cli_source"], dense_cache.dense_key(cfg, "cpu")
    finally:
        dense_cache.package_digest.cache_clear()  # the next caller digests the real package again
    assert before[0] != after[0] and before[1] != after[1]
