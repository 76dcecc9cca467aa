"""`xdist_group` with pytest 9 (docs/performance.md#test-suite).

pytest-xdist's `--dist loadgroup` sends the tests whose node id ends in `@<group>` to one worker; its
workers add that suffix by assigning `item._nodeid`, which pytest 9 no longer reads (a node's id is a
structured `NodeId` in `item._id`, its text cached in `_str_cache`). The suffix never reached the
scheduler, so the tests of a group ran on any worker and their session fixture was built on each.
`add_group_suffix` puts the suffix where pytest 9 reads it; with a pytest or xdist that already shows it
in `item.nodeid` it changes nothing.

The suite's default invocation chooses `--dist loadgroup` in tests/conftest.py's `pytest_cmdline_main`;
xdist's workers parse the original command line again (without it), so xdist never told them to add
the suffix either: the controller sets an environment variable the workers inherit."""

from __future__ import annotations


def add_group_suffix(config, items, loadgroup: bool = False) -> None:
    """In a loadgroup worker, make `item.nodeid` end in `@<group>` for every test marked xdist_group.
    `loadgroup`: the controller chose `--dist loadgroup` itself (tests/conftest.py's default
    invocation); its workers parse the original command line, which does not say so."""
    if not (loadgroup or getattr(config.option, "loadgroup", False)) or not hasattr(config, "workerinput"):
        return
    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")})
        if not names or "@" in item.nodeid:
            continue
        node_id = getattr(item, "_id", None)
        if node_id is None or not hasattr(node_id, "_str_cache"):
            continue  # a pytest whose node ids this does not know: leave them
        object.__setattr__(node_id, "_str_cache", f"{item.nodeid}@{'_'.join(names)}")
