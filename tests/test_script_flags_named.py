"""Every `scripts/NAME.py --flag` the README, docs/, configs/, prune_cli/ and scripts/ name is a flag that
script declares: a docstring in prune_cli/data/cache.py sent readers to `bench_sweep.py --no-memo`,
which argparse refuses (the flag is --memo-off; audit of docs/performance.md)."""

from __future__ import annotations

import re

from tests.conftest import REPO

MENTION = re.compile(r"scripts/(\w+)\.py([^`\n;,)|]*)")  # a script and what follows it up to the end of the command
FLAG = re.compile(r"(?<![\w-])(--[a-z][\w-]*)")


def named_flags() -> list[tuple[str, str, str]]:
    """(file, script, flag) for every flag written after a script's path in the project's text."""
    texts = [REPO / "README.md", *REPO.glob("docs/*.md"), *REPO.glob("configs/**/*.yaml")]
    texts += [*REPO.glob("prune_cli/**/*.py"), *REPO.glob("scripts/*.py")]
    found = []
    for path in texts:
        for m in MENTION.finditer(path.read_text()):
            found += [(str(path.relative_to(REPO)), m.group(1), flag) for flag in FLAG.findall(m.group(2))]
    return found


def test_every_flag_named_after_a_script_is_one_it_declares():
    named = named_flags()
    assert len(named) > 100  # the scan finds the commands (133 when written)
    missing = [
        (where, script, flag)
        for where, script, flag in named
        if not (REPO / "scripts" / f"{script}.py").exists() or f'"{flag}"' not in (REPO / "scripts" / f"{script}.py").read_text()
    ]
    assert not missing, missing


def test_the_scan_finds_a_flag_a_script_does_not_declare():
    text = "measure it: scripts/bench_sweep.py --no-memo)."
    m = MENTION.search(text)
    assert m.group(1) == "bench_sweep" and FLAG.findall(m.group(2)) == ["--no-memo"]
    assert '"--no-memo"' not in (REPO / "scripts" / "bench_sweep.py").read_text()
