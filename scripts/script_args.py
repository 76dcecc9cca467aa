"""Argument checks the scripts share, so that a bad value stops before any work with one line naming
the argument, the value and what is allowed, exit status 2 and nothing created (the project's rule for
bad input, which prune-run follows: docs/robustness.md).

Each check is an argparse `type=` (argparse then prints `SCRIPT: error: argument --x: VALUE: allowed:
...` after the usage and exits 2), except `require_runs`, `refuse_given`, `refuse_owned` and
`refuse_repeated` (a list option naming a value twice), which a script calls after parsing
(`refuse_given`: an option the script would ignore, e.g. a run's option with `--table-only`, is
refused, not dropped; `refuse_owned`: a prune-run override of a key the script sets
for each run, e.g. `seed=3` against --seeds, is refused, not given to every run), and `run_or_exit`,
which starts prune-run and stops the script with prune-run's exit status when it fails (prune-run's
own message is on stderr above). A script run as `python scripts/NAME.py` imports this module from its
own folder (Python puts the script's folder first on sys.path).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any


def description(doc: str | None) -> str:
    """A script's --help description: the first paragraph of its docstring `doc`, its lines joined (the
    first line alone often stops mid-sentence)."""
    return " ".join((doc or "").strip().split("\n\n")[0].split())


def _refuse(text: str, allowed: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"{text!r}: allowed: {allowed}")


def int_at_least(low: int) -> Callable[[str], int]:
    """An integer >= low."""

    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise _refuse(text, f"an integer >= {low}") from None
        if value < low:
            raise _refuse(text, f"an integer >= {low}")
        return value

    check.__name__ = f"int_at_least_{low}"
    return check


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)


def number_in(low: float, high: float, low_open: bool, high_open: bool, what: str = "") -> Callable[[str], float]:
    """A finite number in the interval from low to high (open or closed at each end)."""
    allowed = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}" + (f" ({what})" if what else "")
    if high == float("inf"):
        allowed = f"a number {'>' if low_open else '>='} {low:g}" + (f" ({what})" if what else "")

    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise _refuse(text, allowed) from None
        inside = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
        if not inside or value != value:
            raise _refuse(text, allowed)
        return value

    check.__name__ = "number"
    return check


fraction_arg = number_in(0.0, 1.0, True, True)
sparsity_arg = number_in(0.0, 1.0, False, True, "a sparsity")
density_arg = number_in(0.0, 1.0, True, False, "a density")
nonnegative_number = number_in(0.0, float("inf"), False, False)


def one_of(names: Iterable[str]) -> Callable[[str], str]:
    """One of `names` (for items of a comma list; a single value can use argparse's `choices`)."""
    names = list(names)

    def check(text: str) -> str:
        if text not in names:
            raise _refuse(text, "one of " + ", ".join(names))
        return text

    check.__name__ = "name"
    return check


def comma_list(item: Callable[[str], Any]) -> Callable[[str], str]:
    """Comma-separated values each checked by `item`; returns the text (spaces removed) as the script
    passes it on, e.g. to a prune-run sweep (`seed=0,1,2`)."""

    def check(text: str) -> str:
        parts = [p.strip() for p in text.split(",")]
        if not text.strip() or any(not p for p in parts):
            raise argparse.ArgumentTypeError(f"{text!r}: allowed: a comma-separated list of values, none empty")
        for part in parts:
            try:
                item(part)
            except argparse.ArgumentTypeError as err:
                raise argparse.ArgumentTypeError(f"{text!r}: item {err}") from None
        return ",".join(parts)

    check.__name__ = "list"
    return check


def width_list(text: str) -> str:
    """A model's hidden widths: a non-empty list of positive integers, `[256,256]` (the brackets may be
    left out); returns it as the script passes it on, `model.widths=[256,256]`."""
    allowed = "a non-empty list of positive integers, e.g. [256,256]"
    inner = text.strip()
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    parts = [p.strip() for p in inner.split(",")]
    try:
        widths = [int(p) for p in parts]
    except ValueError:
        raise _refuse(text, allowed) from None
    if not widths or any(w < 1 for w in widths):
        raise _refuse(text, allowed)
    return "[" + ",".join(map(str, widths)) + "]"


def refuse_repeated(parser: argparse.ArgumentParser, option: str, values: Sequence[Any]) -> None:
    """Stop (argparse's one-line error, exit 2) when the list `values` of `option` names a value twice:
    the same configuration would run again and its results count as extra seeds of one point."""
    seen: list[Any] = []
    for value in values:
        if value in seen:
            shown = " ".join(map(str, values))
            parser.error(f"argument {option}: {shown!r}: allowed: each value once ({value} is repeated)")
        seen.append(value)


def existing_dir(text: str) -> Path:
    """A folder that exists."""
    if not Path(text).is_dir():
        raise _refuse(text, "an existing folder")
    return Path(text)


def creatable_dir(text: str) -> Path:
    """A folder that exists and can be written, or can be created (prune-cli's own check, creation
    tried: prune_cli/core/writable.py)."""
    from prune_cli.core.writable import directory_problem

    problem = directory_problem(text, try_create=True)
    if problem:
        raise _refuse(text, f"a folder that can be written or created ({problem})")
    return Path(text)


def writable_file(text: str) -> Path:
    """A file the script can write at the end of its work: not a folder, in an existing folder that can
    be written (tried, as creatable_dir; checked up front, not after the computation)."""
    from prune_cli.core.writable import directory_problem

    path = Path(text)
    if path.is_dir():
        raise _refuse(text, "a file path (it is a folder)")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise _refuse(text, f"a file in an existing folder ({folder} does not exist)")
    problem = directory_problem(str(folder), try_create=True)
    if problem:
        raise _refuse(text, f"a file in a folder that can be written ({problem})")
    return path


def require_runs(parser: argparse.ArgumentParser, folder: Path, option: str, tables: Iterable[str] = ("runs.csv",)) -> None:
    """Stop (argparse's one-line error, exit 2) unless `folder` holds the shared `tables` of finished
    runs (`runs` for run directories) that the script reads: e.g. `--table-only` on a missing or empty
    folder."""

    def held(name: str) -> bool:
        if name == "runs":
            return (folder / name).is_dir() and any((folder / name).iterdir())
        return (folder / name).is_file()

    missing = [t for t in tables if not held(t)]
    if missing:
        parser.error(f"{option} {folder}: the folder holds no runs (no {', '.join(missing)})")


def given_arguments(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The arguments the command line `argv` (default: the script's, sys.argv[1:]) gives explicitly, by
    dest in the parser's order, with their parsed values: each option it names, at its default value
    too, and each positional it gives a value. The line is parsed again into a namespace preset to a
    marker, where argparse fills in no default: comparing values with the defaults would take
    `--seeds 0,1,2` for not given. (Actions that add to the value they find, append and count, are
    not supported: no script uses them.)"""
    unset = object()
    actions = [a for a in parser._actions if a.dest != argparse.SUPPRESS]
    parsed = vars(parser.parse_args(argv, namespace=argparse.Namespace(**{a.dest: unset for a in actions})))
    given = {}
    for action in actions:
        value = parsed[action.dest]
        if value is unset or (not action.option_strings and value in ([], action.default)):  # argparse sets a positional anyway
            continue
        given[action.dest] = value
    return given


def refuse_given(
    parser: argparse.ArgumentParser,
    why: str,
    among: Iterable[str] | None = None,
    but: Iterable[str] = (),
    argv: Sequence[str] | None = None,
) -> None:
    """Stop (argparse's one-line error, exit 2) when the command line gives explicitly (given_arguments)
    one of the arguments `among` (dests; default: all of the parser's) other than those in `but`,
    naming the first, its value and `why`, as argparse names a bad value: `argument --seeds: '0,1':
    allowed: WHY` (a flag without a value: `argument --quick: allowed: WHY`). For an option the
    script would otherwise ignore: `--table-only` refuses every option but those its tables read
    (`but`)."""
    given = given_arguments(parser, argv)
    names = None if among is None else set(among)
    refused = [d for d in given if (names is None or d in names) and d not in set(but)]
    if not refused:
        return
    action = next(a for a in parser._actions if a.dest == refused[0])
    value = given[refused[0]]
    name = "/".join(action.option_strings) or action.metavar or action.dest
    if action.nargs == 0:  # a flag (store_true and the like): its presence is all it says
        parser.error(f"argument {name}: allowed: {why}")
    shown = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    parser.error(f"argument {name}: {shown!r}: allowed: {why}")


def override_keys(text: str) -> list[str]:
    """The config keys the prune-run override `text` sets or deletes, by Hydra's override grammar:
    `train.l1=0.1`, `+seed=3` and `~seed` give their key, a dict value each of its keys as well
    (`train={l1:0.1}`: train and train.l1); nothing for text Hydra cannot parse (prune-run reports it)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        (override,) = OverridesParser.create().parse_overrides([text])
    except Exception:  # noqa: BLE001 - Hydra's parse errors have no common base class; prune-run says what is wrong
        return []
    key = override.key_or_group
    value = None if override.is_sweep_override() or override.is_delete() else override.value()

    def leaves(prefix: str, node: dict) -> list[str]:
        found = []
        for name, leaf in node.items():
            found += [f"{prefix}.{name}", *(leaves(f"{prefix}.{name}", leaf) if isinstance(leaf, dict) else [])]
        return found

    return [key, *(leaves(key, value) if isinstance(value, dict) else [])]


def refuse_owned(parser: argparse.ArgumentParser, overrides: Iterable[str], owned: dict[str, str]) -> None:
    """Stop (argparse's one-line error, exit 2) when one of the prune-run `overrides` a script adds to
    its commands sets a key it sets itself for each run: `owned` maps such a key (an fnmatch pattern,
    `schedule.*`) to the reason, e.g. the option that sets it. The script's commands keep the last
    value of a key (last_value_wins), so such an override would be given to every run, mislabelling
    the runs (a name built from the script's value), collapsing the script's loop (`seed=3` against
    --seeds) or sending the runs elsewhere than the folder the script's table reads (`results_dir=`).
    Keys the script fixes for every run alike may still be replaced (not listed in `owned`)."""
    from fnmatch import fnmatchcase

    for text in overrides:
        for key in override_keys(text):
            why = next((why for pattern, why in owned.items() if fnmatchcase(key, pattern)), None)
            if why is not None:
                parser.error(
                    f"argument overrides: {text!r}: allowed: overrides of keys the script does not set per run ({key}: {why})"
                )


def run_or_exit(cmd: list[str], **kwargs: Any) -> None:
    """Run `cmd` (subprocess.Popen's keyword arguments: cwd, env, stdout, ...); when it fails, exit with
    its status (its own message is on stderr, not captured) instead of a CalledProcessError traceback.
    On Ctrl-C the child, in the same process group, gets the SIGINT too: prune-run stops cleanly
    (docs/robustness.md); the script waits for that (a second Ctrl-C goes to the child as well) and
    exits with the child's status, 130 if it exited 0, without a KeyboardInterrupt traceback.
    (subprocess.run killed the child 0.25 s after the interrupt, which could cut the clean stop short.)"""
    with subprocess.Popen(cmd, **kwargs) as proc:
        interrupted = False
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:
                interrupted = True
    if code < 0:  # killed by a signal: the shell's status for it
        code = 128 - code
    if interrupted:
        sys.exit(code or 130)
    if code != 0:
        sys.exit(code)
