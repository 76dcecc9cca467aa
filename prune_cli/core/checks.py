"""Small value checks shared by every schema's `check`: each raises ConfigError naming the key, the bad
value and what is allowed."""

from __future__ import annotations

import math

from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError
from .writable import directory_problem


def check(ok: bool, key: str, value, allowed: str, hint: str = "") -> None:
    if not ok:
        raise ConfigError(key, value, allowed, hint)


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def choice(cfg: DictConfig, key: str, choices) -> None:
    value = OmegaConf.select(cfg, key)
    check(value in choices, key, value, "one of " + ", ".join(sorted(choices)))


def positive_int(cfg: DictConfig, key: str, minimum: int = 1) -> None:
    value = OmegaConf.select(cfg, key)
    check(isinstance(value, int) and value >= minimum, key, value, f"an integer >= {minimum}")


# The largest seed: seeds are stored as 64-bit signed integers (torch.manual_seed, the tables' seed column).
MAX_SEED = 2**63 - 1


def seed_option(cfg: DictConfig, key: str, nullable: bool = False) -> None:
    """A seed (the run's `seed`, a score's `method.batch_seed`, a metric's `seed`): an integer in
    [0, 2^63 - 1], which torch's and numpy's generators accept and a 64-bit table column holds. One
    range for every seed-like option, so that none passes the pre-run pass and overflows in
    `manual_seed` after dense training; `nullable`: null also allowed (draw from a generator the run derives)."""
    value = OmegaConf.select(cfg, key)
    ok = (nullable and value is None) or (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEED)
    check(ok, key, value, f"{'null or ' if nullable else ''}an integer in [0, {MAX_SEED}] (2^63 - 1)")


def data_seed(cfg: DictConfig, key: str) -> None:
    """A dataset's generation seed (`dataset.data_seed` of synthetic and mnist1d): an integer in numpy's
    seed range [0, 2^32), which torch's generators accept too; one range for every generated dataset."""
    seed = OmegaConf.select(cfg, key)
    ok = isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32
    check(ok, key, seed, "an integer in [0, 2^32) (numpy's seed range)")


def check_widths(cfg: DictConfig, key: str) -> None:
    """Hidden widths of a fully connected model (mlp, ntk_mlp): a non-empty list of positive integers."""
    value = OmegaConf.to_container(OmegaConf.select(cfg, key))  # a nested list ([[16]]) reaches here as lists
    ok = len(value) >= 1 and all(isinstance(w, int) and not isinstance(w, bool) and w >= 1 for w in value)
    check(ok, key, value, "a non-empty list of positive integers, e.g. [256,256]")


def fraction(cfg: DictConfig, key: str, lo: float, hi: float, hi_open: bool = True) -> None:
    value = OmegaConf.select(cfg, key)
    ok = finite(value) and lo <= value and (value < hi if hi_open else value <= hi)
    negative_zero = ok and value == 0 and math.copysign(1.0, value) < 0  # -0.0 hashes and names a run of its own
    allowed = f"a number in [{lo}, {hi}{')' if hi_open else ']'}" + (" (write 0, not -0.0)" if negative_zero else "")
    check(ok and not negative_zero, key, value, allowed)


def usable_directory(cfg: DictConfig, key: str, try_create: bool = False) -> None:
    """A directory option (`results_dir`, `dense_cache.dir`): a non-empty path prune-cli can write or
    create (`directory_problem`)."""
    value = OmegaConf.select(cfg, key)
    problem = directory_problem(str(value), try_create) if isinstance(value, str) and value.strip() else "it is empty"
    check(problem is None, key, value, "a directory prune-run can write or create", f"Here {problem}." if problem else "")
