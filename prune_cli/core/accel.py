"""Accelerator settings of a run (`accel.*`): bf16 autocast, channels-last memory format,
torch.compile and deterministic mode, with their pre-run checks and the helpers that apply them.

Why a group of its own: these settings change how a run computes, not what it computes, but bf16
(and, in the last bits, compiled kernels, a different memory format or deterministic algorithms)
changes its numbers. They are therefore part of the run id once any of them differs from its
default; with all defaults the group is left out of the hash, so adding it kept every earlier
run id (prune_cli/core/identity.py, docs/performance.md "GPU").

- `precision=bf16`: `torch.autocast(device_type, dtype=torch.bfloat16)` around the forward pass
  and the loss of training and evaluation (mixed precision, Micikevicius et al., ICLR 2018: the
  weights, the optimizer state and the backward's accumulation stay fp32). bf16 keeps fp32's
  exponent range, so no loss scaling is needed (Kalamkar et al., 2019, "A Study of BFLOAT16 for
  Deep Learning Training"). On a CPU without native bf16 instructions it is emulated (slow but
  correct); on a GPU without bf16 support (compute capability below 8.0) it is refused.
- `channels_last=true`: the model's 4-D parameters (convolution weights) and 4-D inputs in NHWC
  layout, which cuDNN's tensor-core convolutions prefer. On a model without 4-D weights (mlp, cnn1d)
  it would do nothing, and is refused as an override with no effect (docs/robustness.md).
- `compile=true`: `torch.compile` (TorchInductor) of the model for the training forward pass; the
  uncompiled module keeps the parameters, so masks, checkpoints and metrics see the same model.
- `deterministic=true`: `torch.use_deterministic_algorithms(True)` (an op without a deterministic
  implementation raises instead of silently varying), `cudnn.benchmark=False`, and
  `CUBLAS_WORKSPACE_CONFIG=:4096:8` (cuBLAS needs it for reproducible results on CUDA >= 10.2;
  PyTorch's "Reproducibility" notes).

This module imports nothing from the package but the shared checks, and torch only inside the
functions that need it (docs/architecture.md, layer 0).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from .checks import check, choice

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16")
# False while a sweep's jobs are checked before they are handed to a launcher that runs them on other
# machines (SLURM): what the device supports is checked by each job where it runs, not on the submit host.
CHECKS_THIS_MACHINE = contextvars.ContextVar("prune_cli_checks_this_machine", default=True)


def checks_this_machine() -> bool:
    """Whether a config's device-dependent settings are checked against this machine (see CHECKS_THIS_MACHINE)."""
    return CHECKS_THIS_MACHINE.get()


CUBLAS_DETERMINISTIC = ":4096:8"  # one of the two values cuBLAS documents as deterministic


@dataclass
class AccelConfig:
    precision: str = "fp32"  # fp32 | bf16 (autocast of the forward pass and loss, training and evaluation)
    channels_last: bool = False  # NHWC memory format for 4-D weights and inputs (CNNs; refused for models without 4-D weights)
    compile: bool = False  # torch.compile of the model for training (TorchInductor)
    deterministic: bool = False  # deterministic algorithms, cudnn.benchmark off, CUBLAS_WORKSPACE_CONFIG

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        """Refuse, before any work, a setting this machine cannot honour (named with the reason)."""
        node = OmegaConf.select(cfg, key)
        choice(cfg, f"{key}.precision", set(PRECISIONS))
        for name in ("channels_last", "compile", "deterministic"):
            value = node[name]
            check(isinstance(value, bool), f"{key}.{name}", value, "true or false")
        if not checks_this_machine():
            return  # the jobs run on other machines: each checks its device there
        device = planned_device(cfg.get("device", "auto"))
        if node.precision == "bf16":
            ok, reason = bf16_support(device)
            check(ok, f"{key}.precision", "bf16", f"fp32 on this machine (device {device})", reason)
        if node.compile:
            ok, reason = compile_support(device)
            check(ok, f"{key}.compile", True, f"false on this machine (device {device})", reason)


def is_default(node: Any) -> bool:
    """Whether an `accel` node (a config node or a plain dict) holds every default value: such a
    node is left out of the run id and the experiment key (prune_cli/core/identity.py)."""
    if node is None:
        return True
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
    return plain == dataclasses.asdict(AccelConfig())


def planned_device(setting: str) -> str:
    """The device type a run with `device=setting` will use (as prune_cli/run/experiment.py resolves it)."""
    if setting == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(setting)


def bf16_support(device: str) -> tuple[bool, str]:
    """(supported, reason when not) for bf16 autocast on a device type."""
    import torch

    if device == "cuda":
        if not torch.cuda.is_available():
            return False, "CUDA is not available here."
        # not torch.cuda.is_bf16_supported(): since torch 2.3 it says True where bf16 tensors can merely be
        # created (emulated, slowly, on a V100 or T4); bf16 arithmetic needs compute capability 8.0 (Ampere)
        major, minor = torch.cuda.get_device_capability()
        if major < 8:
            return False, (
                f"{torch.cuda.get_device_name()} (compute capability {major}.{minor}) has no bf16 arithmetic "
                "(bf16 needs compute capability 8.0 or newer; torch would emulate it)."
            )
        return True, ""
    if not torch.amp.is_autocast_available(device):
        return False, f"torch {torch.__version__} has no autocast for device type '{device}'."
    return True, ""


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles); otherwise torch emulates it."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)


def compile_support(device: str) -> tuple[bool, str]:
    """(supported, reason when not) for torch.compile with the default TorchInductor backend: it needs
    TorchDynamo on this Python and platform, a C++ compiler for CPU code, Triton and a GPU of compute
    capability 7.0 or newer for CUDA code."""
    import torch

    try:
        from torch._dynamo.eval_frame import check_if_dynamo_supported

        check_if_dynamo_supported()
    except Exception as err:  # noqa: BLE001 - any reason dynamo gives is the reason to report
        return False, f"torch.compile is not supported with Python {sys.version.split()[0]} and torch {torch.__version__}: {err}"
    if device == "cuda":
        from torch.utils._triton import has_triton

        if not torch.cuda.is_available():
            return False, "CUDA is not available here."
        major, minor = torch.cuda.get_device_capability()
        if major < 7:
            return False, f"TorchInductor's Triton kernels need compute capability 7.0 or newer; this GPU has {major}.{minor}."
        if not has_triton():
            return False, "TorchInductor needs Triton for CUDA code and it is not installed (pip install triton)."
        return True, ""
    compilers = [os.environ.get("CXX", ""), "g++", "c++", "clang++"]
    if not any(c and shutil.which(c) for c in compilers):
        return False, "TorchInductor needs a C++ compiler for CPU code and none was found (CXX, g++, c++, clang++)."
    return True, ""


@dataclass
class Accel(AccelConfig):
    """The settings of a run's `accel` node (AccelConfig's fields, declared once there) for one device
    type, and the helpers that apply them.

    The default instance (`Accel()`) changes nothing: plain fp32, contiguous tensors, eager mode."""

    device_type: str = "cpu"
    _compiled: dict = field(default_factory=dict, repr=False, compare=False)  # id(model) -> compiled module

    @classmethod
    def from_config(cls, node: Any, device_type: str) -> "Accel":
        """The run's `accel` node (None: every default) for `device_type`."""
        if node is None:
            return cls(device_type=device_type)
        values = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        return cls(device_type=device_type, **values)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context for a forward pass and its loss: bf16 autocast, or nothing for fp32."""
        if self.precision != "bf16":
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=self.device_type, dtype=torch.bfloat16)

    def inputs(self, x):
        """A batch in the run's memory format (channels-last applies to 4-D image batches only;
        a no-op when the batch already has that layout)."""
        if self.channels_last and x.dim() == 4:
            import torch

            return x.contiguous(memory_format=torch.channels_last)
        return x

    def prepare_model(self, model):
        """Convert the model's 4-D parameters and buffers to channels-last (in place; returns it)."""
        if self.channels_last:
            import torch

            model.to(memory_format=torch.channels_last)
        return model

    def training_forward(self, model):
        """The callable the training loop runs the forward pass with: the compiled model when
        `compile=true` (compiled once per model object and reused across training phases)."""
        if not self.compile:
            return model
        key = id(model)
        if key not in self._compiled or self._compiled[key][0] is not model:
            import torch

            self._compiled[key] = (model, torch.compile(model))
        return self._compiled[key][1]

    @contextlib.contextmanager
    def applied(self) -> Iterator["Accel"]:
        """The process-wide switches of deterministic mode (and CUBLAS_WORKSPACE_CONFIG, unless the user set
        it) for the duration of a run, restored afterwards (a sweep runs many configs in one process)."""
        import torch

        before = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
            torch.backends.cudnn.benchmark,
        )
        workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")  # the user's own setting, or None
        if self.precision == "bf16" and self.device_type == "cpu" and not native_bf16_cpu():
            log.warning(
                "accel.precision=bf16: this CPU has no native bf16 instructions (AVX512-BF16 or AMX); PyTorch "
                "emulates them: correct, but several times slower than fp32 (docs/performance.md, GPU)"
            )
        if self.deterministic:
            if "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
                if self.device_type == "cuda" and torch.cuda.is_initialized():
                    log.warning(
                        "accel.deterministic: CUDA was initialised in this process before CUBLAS_WORKSPACE_CONFIG "
                        "was set; export CUBLAS_WORKSPACE_CONFIG=%s before starting prune-run to be sure cuBLAS "
                        "uses a deterministic workspace",
                        CUBLAS_DETERMINISTIC,
                    )
                os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_DETERMINISTIC
            torch.use_deterministic_algorithms(True, warn_only=False)
            torch.backends.cudnn.benchmark = False
        try:
            yield self
        finally:
            torch.use_deterministic_algorithms(before[0], warn_only=before[1])
            torch.backends.cudnn.benchmark = before[2]
            if workspace is None:  # set for this run only (cuBLAS read it once; processes started later inherit it)
                os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)

    def describe(self) -> str:
        """One line for the run's log."""
        settings = ", ".join(f"{f.name}={getattr(self, f.name)}" for f in dataclasses.fields(AccelConfig))
        return f"{settings} on {self.device_type}"


FP32 = Accel()  # the default: what training and evaluation do when no settings are given
