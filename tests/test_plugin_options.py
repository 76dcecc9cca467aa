"""Options of an allocation or a structure plugin (prune_cli/core/plugins.py "Options of an allocation
or a structure"): a plugin from outside the repository declares its own `method.<option>` keys in its
one file (`register_allocation("fc_frac", options=FcFracOptions)`), and they are typed, checked by
the plugin's own `check`, rejected when mistyped or when another allocation is chosen, and read by
the run. One new interpreter runs every command (outside plugins cannot be imported into the test
process; tests/test_plugins.py `LAB_RUNS`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from prune_cli.core import plugins
from tests.conftest import FAST, REPO
from tests.helpers import outside_plugin


def _readme_allocation_example() -> str:
    """The README's allocation plugin with an option (`my_lab/fc_frac.py`), exactly as printed: the
    README's code is what users copy, so it is the code these tests run."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Your own method, dataset or metric, without forking", 1)[1].split("\n## ", 1)[0]
    blocks = [b.split("```", 1)[0] for b in section.split("```python\n")[1:]]
    (code,) = [b for b in blocks if 'register_allocation("fc_frac"' in b]
    return code


LAB = {
    "fc_frac.py": _readme_allocation_example(),
    "rows.py": '''
        """A structure with an option: whole rows (output units) of each layer, ranked by the
        method.row_norm norm of their scores."""
        from dataclasses import dataclass

        import torch

        from prune_cli.core.checks import choice
        from prune_cli.pruning.structure import group_norm, register_structure


        @dataclass
        class RowsOptions:
            row_norm: str = "l1"  # l1 | l2

            @staticmethod
            def check(cfg, key):
                choice(cfg, f"{key}.row_norm", {"l1", "l2"})


        @register_structure("rows", options=RowsOptions)
        def rows(scores, counts, selection, sctx):
            out = {}
            for name, score in scores.items():
                norms = group_norm(score.flatten(1), sctx.method.row_norm)
                keep = max(1, round(counts[name] / score[0].numel()))
                kept = torch.zeros(score.shape[0], dtype=torch.bool)
                kept[torch.sort(norms, descending=True, stable=True).indices[:keep]] = True
                out[name] = kept.view(-1, *([1] * (score.dim() - 1))).expand_as(score).clone()
            return out
    ''',
}
PLUGINS = "plugins=[lab2.fc_frac,lab2.rows]"

DRIVER = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from cli_runner import run_in_process
out = {}
for name, step in json.loads(sys.argv[2]):
    p = run_in_process(step["argv"], cwd=Path(step["cwd"]), env={"OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"})
    out[name] = [p.returncode, p.stdout, p.stderr]
Path(sys.argv[3]).write_text(json.dumps(out))
"""

RUNS = {
    "allocation": [PLUGINS, *FAST, "method.allocation=fc_frac", "method.fc_keep=0.25", "sparsity=0.5"],
    "structure": [
        PLUGINS,
        *FAST,
        "method.allocation=layerwise",
        "method.structure=rows",
        "method.row_norm=l2",
        "method.sparsity_tolerance=0.2",
        "sparsity=0.5",
    ],
    "plain": [*FAST, "sparsity=0.5"],
    "plain_with_plugins": [PLUGINS, *FAST, "sparsity=0.5"],
    "shown": ["--cfg", "job", PLUGINS, "method.allocation=fc_frac", "method.fc_keep=0.25"],
    "typo": [PLUGINS, *FAST, "method.allocation=fc_frac", "method.fc_kep=0.25"],
    "wrong_type": [PLUGINS, *FAST, "method.allocation=fc_frac", "method.fc_keep=abc"],
    "out_of_range": [PLUGINS, *FAST, "method.allocation=fc_frac", "method.fc_keep=1.5"],
    "structure_check": [PLUGINS, *FAST, "method.structure=rows", "method.row_norm=l3"],
    "other_allocation": [PLUGINS, *FAST, "method.allocation=global", "method.fc_keep=0.25"],
    "other_structure": [PLUGINS, *FAST, "method.row_norm=l2"],
}


class Done(NamedTuple):
    runs: dict  # name: [exit code, stdout, stderr]
    results: dict[str, Path]


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Done:
    base = tmp_path_factory.mktemp("plugin_options")
    (base / "src" / "lab2").mkdir(parents=True)
    (base / "src" / "lab2" / "__init__.py").write_text("")
    for name, text in LAB.items():
        (base / "src" / "lab2" / name).write_text(textwrap.dedent(text).lstrip())
    results, plan = {}, []
    for name, args in RUNS.items():
        results[name] = base / name / "results"
        results[name].parent.mkdir()
        plan.append([name, {"argv": [*args, f"results_dir={results[name]}"], "cwd": str(results[name].parent)}])
    old = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(base / "src"), *([old] if old else [])])}
    record = base / "runs.json"
    command = [sys.executable, "-c", DRIVER, str(REPO / "tests"), json.dumps(plan), str(record)]
    subprocess.run(command, env=env, check=True, timeout=600)
    return Done(json.loads(record.read_text()), results)


def _run_dir(done: Done, name: str) -> Path:
    returncode, stdout, stderr = done.runs[name]
    assert returncode == 0, stdout + stderr
    (run,) = (done.results[name] / "runs").iterdir()
    return run


def test_an_allocation_plugin_reads_its_own_option(done):
    """fc_frac with method.fc_keep=0.25 at sparsity 0.5: the classifier keeps round(0.25 n_fc), and the
    total is round(0.5 N), as computed here from the layer sizes."""
    run = _run_dir(done, "allocation")
    masks = torch.load(run / "masks.pt")
    sizes = {n: m.numel() for n, m in masks.items()}
    classifier = list(masks)[-1]
    assert int(masks[classifier].sum()) == round(0.25 * sizes[classifier])
    assert sum(int(m.sum()) for m in masks.values()) == round(0.5 * sum(sizes.values()))
    config = (run / "config.yaml").read_text()
    assert "fc_keep: 0.25" in config


def test_a_structure_plugin_reads_its_own_option(done):
    """rows with method.row_norm=l2: each layer keeps whole rows, those with the largest L2 norm of
    the trained dense weights (magnitude scores), as many as its layerwise count allows."""
    run = _run_dir(done, "structure")
    masks = torch.load(run / "masks.pt")
    dense = torch.load(run / "model_dense.pt")
    for name, mask in masks.items():
        weight = dense[name].flatten(1)
        keep = max(1, round(round(0.5 * weight.numel()) / weight.shape[1]))
        top = torch.sort(weight.pow(2).sum(1).sqrt(), descending=True, stable=True).indices[:keep]
        expected = torch.zeros(weight.shape[0], dtype=torch.bool)
        expected[top] = True
        assert torch.equal(mask.flatten(1).all(1), expected), name
        assert torch.equal(mask.flatten(1).any(1), expected), name  # whole rows


def test_options_of_a_plugin_not_chosen_leave_the_run_id_unchanged(done):
    """Loading plugins with options (not chosen) keeps the run id: only a chosen plugin's options are hashed."""
    assert _run_dir(done, "plain").name == _run_dir(done, "plain_with_plugins").name


def test_plugin_options_are_shown_in_the_composed_config(done):
    returncode, stdout, stderr = done.runs["shown"]
    assert returncode == 0, stderr
    assert "fc_keep: 0.25" in stdout and "row_norm: l1" in stdout


@pytest.mark.parametrize(
    "name, says",
    [
        ("typo", ["'method.fc_kep'", "method.fc_keep"]),
        ("wrong_type", ["'method.fc_keep'", "abc"]),
        ("out_of_range", ["'method.fc_keep'", "1.5"]),
        ("structure_check", ["'method.row_norm'", "l3"]),
        ("other_allocation", ["'method.fc_keep=0.25' has no effect", "method.allocation=fc_frac"]),
        ("other_structure", ["'method.row_norm=l2' has no effect", "method.structure=rows"]),
    ],
)
def test_bad_plugin_options_stop_before_any_work(done, name, says):
    returncode, stdout, stderr = done.runs[name]
    assert returncode == 2, stdout + stderr
    for text in says:
        assert text in stderr, (text, stderr)
    assert "Traceback" not in stderr
    assert not done.results[name].exists()


def test_the_index_reads_option_declarations_without_importing_them():
    source = textwrap.dedent(LAB["fc_frac.py"])
    kinds, schemas = plugins.declarations(source)
    assert kinds == [("allocation", "fc_frac")]
    assert plugins.option_declarations(source) == [("allocation", "fc_frac", "FcFracOptions")]


def test_option_types_spelled_through_the_typing_module_are_read(tmp_path):
    """`x: typing.Optional[float] = None` is ordinary Python; only the bare `Optional[float]` was read, and
    a plugin listing the other spelling stopped every run that named the plugin (audit of today's changes)."""
    import typing

    from prune_cli.core.plugins import _read_class

    path = tmp_path / "opts.py"
    path.write_text(
        "import typing\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Opts:\n"
        "    cap: typing.Optional[float] = None\n    sizes: typing.List[int] = None\n"
    )
    fields, _ = _read_class("lab.opts", str(path), "Opts")
    assert fields == [("cap", typing.Optional[float], None), ("sizes", typing.List[int], None)]


def test_a_literal_option_type_is_refused_naming_the_plugin(tmp_path):
    """OmegaConf cannot type Literal[...]: a plugin option declared so made every run fail on key 'mode'
    (not method.mode) with 'a value of type Literal'. It is refused where the options are read, naming
    the plugin's module, like every type prune-cli cannot give Hydra."""
    from prune_cli.core.errors import ConfigError
    from prune_cli.core.plugins import _read_class

    path = tmp_path / "opts.py"
    path.write_text(
        "from typing import Literal\nfrom dataclasses import dataclass\n\n\n@dataclass\nclass Opts:\n"
        '    mode: Literal["a", "b"] = "a"\n'
    )
    with pytest.raises(ConfigError, match=r"'plugins': 'lab.opts'.*the type of mode"):
        _read_class("lab.opts", str(path), "Opts")


SYNTAX_ERROR_OPTIONS = (
    "from dataclasses import dataclass\n\nfrom prune_cli.pruning.allocation import register_allocation\n\n\n"
    "@dataclass\nclass BadOptions:\n    keep: float = 1.0\n    def check(cfg, key)\n        pass\n\n\n"
    '@register_allocation("bad_syntax", options=BadOptions)\ndef bad_syntax(scores, density, ctx):\n    return {}\n'
)


def test_a_syntax_error_in_an_options_class_is_one_message_naming_the_module(tmp_path):
    """Plugin audit: a syntax error in an allocation's options class (not even chosen) gave a 106-line
    traceback and exit 1, where a chosen plugin with a syntax error is one message naming its module."""
    from prune_cli.core.errors import ConfigError
    from prune_cli.core.plugins import _read_class

    path = tmp_path / "bad.py"
    path.write_text(SYNTAX_ERROR_OPTIONS)
    with pytest.raises(ConfigError, match=r"'plugins': 'lab.bad'.*options class BadOptions has a syntax error: expected ':'"):
        _read_class("lab.bad", str(path), "BadOptions")


def test_a_syntax_error_in_an_options_class_stops_prune_run_before_any_work(tmp_path, monkeypatch):
    from tests.conftest import run_cli

    outside_plugin(tmp_path, monkeypatch, "synlab", "bad", SYNTAX_ERROR_OPTIONS)
    results = tmp_path / "results"
    proc = run_cli(["plugins=[synlab.bad]", *FAST], results, check=False)  # the allocation is not chosen
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "'plugins': 'synlab.bad'" in proc.stderr and "BadOptions" in proc.stderr and "syntax error" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not results.exists()
