"""`Accel` takes its settings from `AccelConfig` (prune_cli/core/accel.py): one list of fields, so a
setting added to the config reaches the helpers, the equality that decides whether the run logs its
settings, and the log line, without a second copy to keep in step."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from prune_cli.core.accel import Accel, AccelConfig

# Every setting with a value other than its default, written out by hand (not read from the code).
CHANGED = {"precision": "bf16", "channels_last": True, "compile": True, "deterministic": True}


def test_accel_has_exactly_the_config_settings_with_their_defaults():
    settings = {f.name: f.default for f in dataclasses.fields(AccelConfig)}
    assert settings == {"precision": "fp32", "channels_last": False, "compile": False, "deterministic": False}
    own = {f.name: f.default for f in dataclasses.fields(Accel) if f.name in settings}
    assert own == settings
    assert {f.name for f in dataclasses.fields(Accel)} - set(settings) == {"device_type", "_compiled"}


@pytest.mark.parametrize("name", sorted(CHANGED))
def test_from_config_takes_each_setting_from_the_node(name):
    node = OmegaConf.structured(AccelConfig)
    node[name] = CHANGED[name]
    accel = Accel.from_config(node, "cuda")
    assert accel.device_type == "cuda"
    assert getattr(accel, name) == CHANGED[name]
    assert all(getattr(accel, other) == getattr(AccelConfig(), other) for other in CHANGED if other != name)
    assert accel != Accel(device_type="cuda")  # a changed setting is logged (prune_cli/run/experiment.py)


def test_from_config_without_a_node_or_with_defaults_is_the_default():
    assert Accel.from_config(None, "cpu") == Accel()
    assert Accel.from_config(OmegaConf.structured(AccelConfig), "cpu") == Accel()
    assert Accel.from_config({"precision": "bf16"}, "cpu") == Accel(precision="bf16")


def test_an_unknown_setting_is_refused():
    with pytest.raises(TypeError):
        Accel.from_config({"precison": "bf16"}, "cpu")


def test_describe_names_every_setting_and_the_device():
    assert Accel(device_type="cuda", **CHANGED).describe() == (
        "precision=bf16, channels_last=True, compile=True, deterministic=True on cuda"
    )
    assert Accel().describe() == "precision=fp32, channels_last=False, compile=False, deterministic=False on cpu"
