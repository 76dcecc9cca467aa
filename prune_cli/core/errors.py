"""User-facing errors: a message that names the key, the bad value and what is allowed."""

import re


class PruneCliError(Exception):
    """An error caused by the user's input or environment, reported without a traceback."""


class InputError(PruneCliError):
    """Bad input (a config value, a dataset's files): a single run stopped by one leaves no run
    directory behind, like a run refused before it started (prune_cli/cli.py; docs/robustness.md)."""


class ConfigError(InputError):
    """A config value is invalid; raised before any data is loaded or any result is written."""

    def __init__(self, key: str, value, allowed: str, hint: str = ""):
        self.key, self.value, self.allowed, self.hint = key, value, allowed, hint
        message = f"Invalid value for config key '{key}': {value!r}. Allowed: {allowed}."
        if hint:
            message += f" {hint}"
        super().__init__(message)


class UnknownKeyError(ConfigError):
    """A key no schema declares (a typo, often added with Hydra's `+`): never silently ignored."""

    def __init__(self, key: str, value, valid: list[str], close: list[str], where: str = ""):
        self.key, self.value, self.allowed = key, value, ", ".join(valid)
        given = [] if value is None and where else [f"value {value!r}"]
        given += [f"set in config '{where}'"] if where else []
        message = (
            f"Unknown config key '{key}' ({', '.join(given)}): no schema declares it, so it would change "
            f"nothing. Valid keys there: {', '.join(valid)}."
        )
        if close:
            message += " Did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
        PruneCliError.__init__(self, message)


class DatasetFilesMissing(InputError):
    """The dataset's files are not under dataset.root and download is off."""


class DatasetFileUnreadable(InputError):
    """A dataset file exists but cannot be read (truncated, foreign, or refused by the safe reader)."""


class DatasetContentError(InputError):
    """A dataset's examples do not fit what a run needs: an empty split, labels outside its classes."""


class TrainingDiverged(PruneCliError):
    """The loss became NaN or infinite."""


class AnotherRunsDirectory(PruneCliError):
    """The run directory holds another run: its COMPLETE or shared-tables marker, or its checkpoint, names
    another run id (prune_cli/run/experiment.py, prune_cli/run/checkpoint.py)."""


def unreadable_reason(err: Exception) -> str:
    """Why a saved torch file could not be read, in one line for a warning. torch's refusal of a pickle
    of other objects under weights_only=True goes on to explain how to load it unsafely, with terminal
    escape codes: never advice for a file prune-run finds in its folders, so it is named plainly. The
    same refusal comes for bytes that are no pickle torch writes (a damaged file, a plain pickle, text),
    and torch's reader of its legacy format answers text with a bare KeyError: those are named as not a
    file torch.save writes, not as a pickle of other objects."""
    foreign = "it is not a file torch.save writes, or it is damaged"
    if "Weights only load failed" in str(err):
        if "Unsupported global" in str(err):
            return "it holds objects other than tensors and plain containers (not a file prune-run writes)"
        return f"{foreign} (torch's safe reader finds no pickle of tensors and plain containers in it)"
    if isinstance(err, KeyError) and _raised_in_torch_reader(err):
        return f"{foreign} (torch's reader of its legacy format: KeyError {err})"
    first = str(err).splitlines()[0] if str(err) else ""
    text = re.sub(r"\x1b\[[0-9;]*m", "", first).strip()
    return f"{type(err).__name__}: {text}" if text else f"{type(err).__name__} (no message; the file may be empty or truncated)"


def _raised_in_torch_reader(err: Exception) -> bool:
    """Whether `err` was raised inside torch.load's own readers (torch/serialization.py and its safe
    unpickler), not by the code that reads the loaded contents (a missing key of a checkpoint)."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = tb.tb_frame.f_code.co_filename.replace("\\", "/") if tb is not None else ""
    return where.endswith(("torch/serialization.py", "torch/_weights_only_unpickler.py"))


def cannot_use(path, err: OSError) -> str:
    """The one line's text for a file the environment refused (a full disk, a quota, a permission):
    prune-run's and prune-report's wording alike (docs/robustness.md, "a full disk")."""
    return f"cannot use {path}: {err.strerror or err}"
