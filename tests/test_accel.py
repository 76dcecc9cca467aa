"""The accelerator settings (`accel.*`, prune_cli/core/accel.py) against independent computations:
bf16 autocast against a forward pass cast to bf16 by hand and against fp32 training, channels-last
against the contiguous model, deterministic mode by bit-identical reruns, the compiled forward by
counting what the training loop calls, the run id against the hash of the config without the group,
and the pre-run checks. The CUDA parts are marked `cuda` and skipped without a GPU
(`pytest -m cuda`, run by scripts/gpu_check.sh)."""

from __future__ import annotations

import copy
import os

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from prune_cli.core.accel import Accel, AccelConfig, is_default
from prune_cli.core.errors import ConfigError, UnknownKeyError
from prune_cli.core.identity import config_hash, run_id
from prune_cli.data.splits import DataSplits
from prune_cli.models import build_model
from prune_cli.models.mlp import MLP
from prune_cli.training import TrainConfig, evaluate, train
from tests.helpers import TinyConvChain, compose, composed, validated

HAS_CUDA = torch.cuda.is_available()


def on_cuda(test):
    """Marked `cuda` (selected by `pytest -m cuda`) and skipped, with the reason, without a GPU."""
    return pytest.mark.cuda(pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU (scripts/gpu_check.sh runs these)")(test))


def blobs(n: int = 192, dim: int = 8, classes: int = 3, seed: int = 0, device: str = "cpu") -> DataSplits:
    g = torch.Generator().manual_seed(seed)
    centers = 2.0 * torch.randn(classes, dim, generator=g)
    y = torch.arange(n) % classes
    x = centers[y] + torch.randn(n, dim, generator=g)
    t = lambda a: a.to(device)  # noqa: E731
    return DataSplits(t(x[:128]), t(y[:128]), t(x[128:160]), t(y[128:160]), t(x[160:]), t(y[160:]), num_classes=classes)


def train_cfg(**overrides):
    return OmegaConf.merge(OmegaConf.structured(TrainConfig), {"epochs": 4, "batch_size": 32, "lr": 0.05, **overrides})


def trained(model: nn.Module, data: DataSplits, accel: Accel, seed: int = 1, **overrides) -> list[dict]:
    return train(model, data, train_cfg(**overrides), torch.Generator().manual_seed(seed), "t", accel=accel)


# ----------------------------------------------------------------------------- bf16


def test_bf16_forward_is_the_hand_cast_bf16_forward_and_not_fp32():
    """Under the run's autocast each Linear computes in bf16: the logits equal a forward pass with
    inputs, weights and biases cast to bf16 by hand (and the ReLU in bf16), and differ from fp32."""
    torch.manual_seed(0)
    model, x = MLP(8, [32], 3), torch.randn(64, 8)
    fc1, fc2 = model.net[1], model.net[3]
    with Accel(precision="bf16").autocast():
        auto = model(x)
    bf = lambda t: t.detach().to(torch.bfloat16)  # noqa: E731
    by_hand = nn.functional.linear(torch.relu(nn.functional.linear(bf(x), bf(fc1.weight), bf(fc1.bias))), bf(fc2.weight), bf(fc2.bias))
    assert auto.dtype == torch.bfloat16
    torch.testing.assert_close(auto.float(), by_hand.float(), rtol=0, atol=0)
    fp32 = model(x)
    assert (auto.float() - fp32).abs().max() > 1e-4  # really lower precision than fp32
    # ... and no worse than bf16's rounding (unit roundoff 2^-8 relative) allows for these sums
    assert (auto.float() - fp32).abs().max() < 0.05 * fp32.abs().max()


def test_bf16_training_runs_in_bf16_and_tracks_fp32():
    """Training with precision=bf16 runs the forward pass in bf16 (a hook sees bf16 activations)
    and its per-epoch losses stay within 0.03 of fp32 training from the same initialisation and
    batch order. Why 0.03: bf16 rounds each operand to 8 significant bits (relative error 2^-9),
    so the logits (|z| of a few units, sums of 8-32 products accumulated in fp32) move by about
    1e-2 and the cross-entropy by at most that; over 4 epochs of SGD at lr 0.05 on this
    well-separated problem the two trajectories do not drift further (measured gap below 1e-4)."""
    data = blobs()
    torch.manual_seed(0)
    fp32_model = MLP(8, [32, 32], 3)
    bf16_model = copy.deepcopy(fp32_model)
    seen = {}

    def record(module, inputs, output):
        seen.setdefault("train" if module.training else "eval", output.dtype)

    bf16_model.net[1].register_forward_hook(record)
    fp32_hist = trained(fp32_model, data, Accel())
    bf16_hist = trained(bf16_model, data, Accel(precision="bf16"))
    assert seen == {"train": torch.bfloat16, "eval": torch.bfloat16}  # training and validation passes
    assert all(p.dtype == torch.float32 for p in bf16_model.parameters())  # master weights stay fp32
    gaps = [abs(a["train_loss"] - b["train_loss"]) for a, b in zip(fp32_hist, bf16_hist)]
    assert max(gaps) < 0.03, gaps
    assert fp32_hist[-1]["train_loss"] < 0.5 * fp32_hist[0]["train_loss"]  # the comparison is of a model that learns
    assert bf16_hist[-1]["train_loss"] < 0.5 * bf16_hist[0]["train_loss"]
    assert fp32_hist != bf16_hist  # bf16 did change the numbers


def test_bf16_evaluation_loss_and_predictions_match_a_hand_computation():
    torch.manual_seed(0)
    data = blobs()
    model = MLP(8, [32], 3)
    ev = evaluate(model, data.test_x, data.test_y, 7, Accel(precision="bf16"))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(data.test_x).float()
    assert torch.equal(ev.predictions, logits.argmax(1))
    assert ev.loss == pytest.approx(float(nn.functional.cross_entropy(logits, data.test_y)), rel=1e-2)


# ----------------------------------------------------------------------------- channels_last


def test_channels_last_weights_inputs_and_outputs():
    """The conv weights and the batches the model sees are NHWC; the outputs equal the contiguous
    model's (fp32, the same sums in another order: within 1e-5)."""
    torch.manual_seed(0)
    model = TinyConvChain()
    reference = copy.deepcopy(model)
    accel = Accel(channels_last=True)
    accel.prepare_model(model)
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs)
    x = torch.randn(5, 4, 6, 6)
    xl = accel.inputs(x)
    assert xl.is_contiguous(memory_format=torch.channels_last) and torch.equal(xl, x)
    torch.testing.assert_close(model(xl), reference(x), rtol=1e-5, atol=1e-6)


def test_channels_last_training_keeps_the_format_and_follows_the_contiguous_model():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 4, 6, 6, generator=g), torch.randint(0, 4, (48,), generator=g)
    data = DataSplits(x[:32], y[:32], x[32:40], y[32:40], x[40:], y[40:], num_classes=4)
    model = TinyConvChain()
    reference = copy.deepcopy(model)
    accel = Accel(channels_last=True)
    accel.prepare_model(model)
    formats = []
    model.c1.register_forward_pre_hook(lambda m, a: formats.append(a[0].is_contiguous(memory_format=torch.channels_last)) and None)
    masks = {"c2.weight": (torch.rand(8, 8, 3, 3, generator=g) > 0.5).float()}
    train(model, data, train_cfg(epochs=2, batch_size=8, lr=0.02), torch.Generator().manual_seed(1), "t", masks, accel=accel)
    train(reference, data, train_cfg(epochs=2, batch_size=8, lr=0.02), torch.Generator().manual_seed(1), "t", masks)
    assert formats and all(formats)  # every training and validation batch
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
    assert torch.all(model.c2.weight[masks["c2.weight"] == 0] == 0)  # masks still enforced
    for (name, a), b in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_channels_last_is_a_no_op_for_an_mlp():
    model = MLP(8, [16], 3)
    before = {n: p.clone() for n, p in model.named_parameters()}
    Accel(channels_last=True).prepare_model(model)
    assert all(torch.equal(before[n], p) and p.is_contiguous() for n, p in model.named_parameters())
    x = torch.randn(4, 8)
    assert Accel(channels_last=True).inputs(x) is x


# ----------------------------------------------------------------------------- deterministic


def test_deterministic_mode_is_switched_on_for_the_run_and_restored(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    with Accel(deterministic=True).applied():
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()  # an offending op raises
        assert torch.backends.cudnn.benchmark is False
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before
    with Accel().applied():  # the default touches nothing
        assert torch.are_deterministic_algorithms_enabled() == before[0]


def test_deterministic_training_is_bit_identical():
    data = blobs()
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = MLP(8, [32, 32], 3)
        accel = Accel(deterministic=True)
        with accel.applied():
            trained(model, data, accel)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


# ----------------------------------------------------------------------------- compile


def test_compile_trains_through_the_compiled_forward_once_per_model(monkeypatch):
    """The training loop's forward pass goes through torch.compile's result, compiled once per model
    and reused across phases; evaluation and the parameters stay on the module itself. (A stand-in
    for torch.compile that counts calls: TorchInductor itself is checked in the slow test below.)"""
    compiled, calls = [], []

    def fake_compile(model):
        compiled.append(model)

        def forward(x):
            calls.append(len(x))
            return model(x)

        return forward

    monkeypatch.setattr(torch, "compile", fake_compile)
    data = blobs()
    torch.manual_seed(0)
    model = MLP(8, [16], 3)
    accel = Accel(compile=True)
    trained(model, data, accel, epochs=1)
    trained(model, data, accel, epochs=1)
    assert compiled == [model]
    assert calls == [32] * 8  # 2 phases x 128 examples / 32: every training batch, no evaluation batch


def test_training_hooks_train_through_the_compiled_forward_or_say_they_do_not(monkeypatch, caplog):
    """A training-time method's phase (admm, greg, minmax: hooks that keep TrainHook.forward) goes through
    the compiled forward too; before, any hook bypassed it silently. A hook with a forward of its own
    (AutoPrune's gates, layer pruning's sections) runs that forward uncompiled, and the log says so."""
    from prune_cli.train_hooks import TrainHook

    calls = []

    def fake_compile(model):
        def forward(x):
            calls.append(len(x))
            return model(x)

        return forward

    class OwnForward(TrainHook):
        def forward(self, model, x):
            return model(x) * 1.0

    monkeypatch.setattr(torch, "compile", fake_compile)
    data = blobs()
    torch.manual_seed(0)
    model = MLP(8, [16], 3)
    accel = Accel(compile=True)
    train(model, data, train_cfg(epochs=1), torch.Generator().manual_seed(1), "t", accel=accel, hook=TrainHook())
    assert calls == [32] * 4
    train(model, data, train_cfg(epochs=1), torch.Generator().manual_seed(1), "gated", accel=accel, hook=OwnForward())
    assert calls == [32] * 4 and "accel.compile" in caplog.text and "gated" in caplog.text


@pytest.mark.slow  # TorchInductor's first compile of even a tiny MLP takes 40 s or more on 2 CPU cores
def test_compiled_training_equals_eager_training():
    data = blobs()
    torch.manual_seed(0)
    eager = MLP(8, [32], 3)
    comp = copy.deepcopy(eager)
    e_hist = trained(eager, data, Accel(), epochs=2)
    c_hist = trained(comp, data, Accel(compile=True), epochs=2)
    for a, b in zip(e_hist, c_hist):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
    for a, b in zip(eager.parameters(), comp.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------- a whole run


def test_a_bf16_deterministic_run_records_bf16_evaluations_and_restores_the_switches(tmp_path):
    """Through prune-run's own run function: the recorded test loss of the fine-tuned model is the
    bf16 evaluation of the saved weights (recomputed here), not the fp32 one; deterministic mode is
    off again after the run."""
    import pandas as pd

    from prune_cli.data import DATASETS
    from prune_cli.data.splits import build_splits
    from prune_cli.run.experiment import run
    from tests.conftest import FAST

    cfg = compose([*FAST, "metrics.regions.enabled=false", "accel.precision=bf16", "accel.deterministic=true"], tmp_path)
    before = torch.are_deterministic_algorithms_enabled()
    run_dir = run(cfg, tmp_path / "run")
    assert torch.are_deterministic_algorithms_enabled() == before
    rows = pd.read_csv(run_dir / "metrics.csv")
    recorded = rows.query("phase == 'finetuned' and split == 'test' and metric == 'loss'").value.item()
    data = build_splits(DATASETS.get(cfg.dataset.name)(cfg.dataset), cfg.dataset, cfg.seed, torch.device("cpu"))
    model = build_model(cfg.model, data.input_shape, data.num_classes)
    model.load_state_dict(torch.load(run_dir / "model_finetuned.pt", weights_only=True))
    bf16 = evaluate(model, data.test_x, data.test_y, 1024, Accel(precision="bf16")).loss
    fp32 = evaluate(model, data.test_x, data.test_y, 1024).loss
    assert recorded == pytest.approx(bf16, rel=1e-6, abs=1e-7) and bf16 != fp32


# ----------------------------------------------------------------------------- run ids and keys


def test_default_accel_leaves_the_run_id_and_experiment_key_unchanged():
    """With every default the run id is the hash of the config without the group (as before it existed)."""
    from prune_cli.results import experiment_keys
    from prune_cli.run.dense_cache import dense_key

    cfg = composed("results_dir=results")
    assert is_default(cfg.accel)
    without = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "accel"])
    assert config_hash(cfg) == config_hash(without)
    assert dense_key(cfg, "cpu") == dense_key(without, "cpu")
    saved = OmegaConf.to_container(cfg, resolve=False)
    old = {k: v for k, v in saved.items() if k != "accel"}
    table, varying = experiment_keys({"new": saved, "old": old})
    assert table.loc["new", "experiment"] == table.loc["old", "experiment"] and varying == []


def test_each_non_default_accel_value_changes_the_run_id_and_dense_key():
    from prune_cli.run.dense_cache import dense_key

    base = composed("results_dir=results")
    ids, keys = {run_id(base)}, {dense_key(base, "cpu")}
    for override in ("accel.precision=bf16", "accel.channels_last=true", "accel.compile=true", "accel.deterministic=true"):
        changed = composed("results_dir=results", override)
        assert not is_default(changed.accel)
        ids.add(run_id(changed))
        keys.add(dense_key(changed, "cpu"))  # a bf16 run never reuses an fp32 dense model
    assert len(ids) == len(keys) == 5


# ----------------------------------------------------------------------------- pre-run checks


def test_bad_precision_is_refused_naming_key_value_and_choices():
    with pytest.raises(ConfigError) as err:
        validated("accel.precision=fp16")
    assert err.value.key == "accel.precision" and err.value.value == "fp16"
    assert "bf16" in str(err.value) and "fp32" in str(err.value)


def test_unknown_accel_key_is_refused_with_the_closest_name():
    with pytest.raises(UnknownKeyError) as err:
        validated("+accel.precison=bf16")
    assert err.value.key == "accel.precison" and "accel.precision" in str(err.value)


def test_bf16_is_refused_on_a_gpu_without_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla V100")
    cfg = composed("accel.precision=bf16", "device=cuda")
    with pytest.raises(ConfigError) as err:
        AccelConfig.check(cfg, "accel")
    assert err.value.key == "accel.precision" and "7.0" in str(err.value) and "8.0" in str(err.value)


def test_compile_is_refused_without_a_cpp_compiler(monkeypatch):
    import shutil

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ConfigError) as err:
        validated("accel.compile=true", "device=cpu")
    assert err.value.key == "accel.compile" and "C++ compiler" in str(err.value)


def test_compile_is_refused_on_a_gpu_older_than_triton_supports(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (6, 1))
    cfg = composed("accel.compile=true", "device=cuda")
    with pytest.raises(ConfigError) as err:
        AccelConfig.check(cfg, "accel")
    assert err.value.key == "accel.compile" and "6.1" in str(err.value)


def test_valid_settings_pass_on_this_machine():
    validated("accel.precision=bf16", "accel.channels_last=true", "accel.deterministic=true", "device=cpu")


# ----------------------------------------------------------------------------- CUDA (skipped without a GPU)


@on_cuda
def test_cuda_bf16_training_tracks_fp32():
    data = blobs(device="cuda")
    torch.manual_seed(0)
    fp32_model = MLP(8, [32, 32], 3).cuda()
    bf16_model = copy.deepcopy(fp32_model)
    seen = []
    bf16_model.net[1].register_forward_hook(lambda m, i, o: seen.append(o.dtype) and None)
    fp32_hist = trained(fp32_model, data, Accel(device_type="cuda"))
    bf16_hist = trained(bf16_model, data, Accel(device_type="cuda", precision="bf16"))
    assert seen and set(seen) == {torch.bfloat16}
    assert max(abs(a["train_loss"] - b["train_loss"]) for a, b in zip(fp32_hist, bf16_hist)) < 0.03


@on_cuda
def test_cuda_channels_last_resnet_outputs_equal_contiguous():
    torch.backends.cudnn.allow_tf32, before = False, torch.backends.cudnn.allow_tf32  # exact fp32 convolutions
    try:
        torch.manual_seed(0)
        model = build_model(OmegaConf.create({"name": "resnet20"}), (3, 32, 32), 10).cuda().eval()
        reference = copy.deepcopy(model)
        accel = Accel(device_type="cuda", channels_last=True)
        accel.prepare_model(model)
        x = torch.randn(16, 3, 32, 32, device="cuda")
        with torch.no_grad():
            torch.testing.assert_close(model(accel.inputs(x)), reference(x), rtol=1e-4, atol=1e-4)
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
    finally:
        torch.backends.cudnn.allow_tf32 = before


@on_cuda
def test_cuda_deterministic_resnet_training_is_bit_identical_and_refuses_nondeterministic_ops():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(96, 3, 32, 32, generator=g).cuda(), torch.randint(0, 10, (96,), generator=g).cuda()
    data = DataSplits(x[:64], y[:64], x[64:80], y[64:80], x[80:], y[80:], num_classes=10, augment=True)
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = build_model(OmegaConf.create({"name": "resnet20"}), (3, 32, 32), 10).cuda()
        accel = Accel(device_type="cuda", deterministic=True, channels_last=True)
        accel.prepare_model(model)
        with accel.applied():
            trained(model, data, accel, epochs=1, batch_size=16)
            with pytest.raises(RuntimeError, match="deterministic"):
                torch.histc(torch.rand(100, device="cuda"))  # has no deterministic CUDA implementation
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


@on_cuda
def test_cuda_compiled_training_matches_eager():
    data = blobs(device="cuda")
    torch.manual_seed(0)
    eager = MLP(8, [32], 3).cuda()
    comp = copy.deepcopy(eager)
    e_hist = trained(eager, data, Accel(device_type="cuda"), epochs=2)
    c_hist = trained(comp, data, Accel(device_type="cuda", compile=True), epochs=2)
    for a, b in zip(e_hist, c_hist):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-3)


@on_cuda
def test_cuda_splits_arrive_equal_through_pinned_non_blocking_copies():
    from prune_cli.data.splits import build_splits
    from prune_cli.data.synthetic import SyntheticConfig  # noqa: F401  (the dataset plugin)
    from prune_cli.data import DATASETS

    cfg = composed("dataset=synthetic", "results_dir=results").dataset
    raw = DATASETS.get(cfg.name)(cfg)
    on_cpu, on_gpu = build_splits(raw, cfg, 0, torch.device("cpu")), build_splits(raw, cfg, 0, torch.device("cuda"))
    for name in ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"):
        assert getattr(on_gpu, name).is_cuda and torch.equal(getattr(on_gpu, name).cpu(), getattr(on_cpu, name))


def test_the_dense_reference_model_has_the_runs_memory_layout():
    """With accel.channels_last=true the run's model is channels-last but the dense reference the
    metrics time it against (Experiment.dense_model) was rebuilt in the default layout: latency and
    speedup credited the layout's gain to pruning (masked_dense, the same work as dense, 1.24x)."""
    from types import SimpleNamespace

    from helpers import composed

    from prune_cli.core.accel import Accel
    from prune_cli.models import build_model
    from prune_cli.run.experiment import Experiment

    cfg = composed("dataset=mnist", "model=lenet5", "accel.channels_last=true")
    shape = (1, 28, 28)
    state = build_model(cfg.model, shape, 10).state_dict()
    data = SimpleNamespace(input_shape=shape, num_classes=10)
    accel = Accel.from_config(cfg.accel, "cpu")
    fake = SimpleNamespace(cfg=cfg, data=data, device=torch.device("cpu"), dense_state=state, accel=accel)
    dense = Experiment.dense_model(fake)
    convs = [p for p in dense.parameters() if p.dim() == 4 and p.shape[1] > 1]  # one input channel: both layouts at once
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs)


def test_deterministic_mode_puts_the_cublas_workspace_setting_back(monkeypatch):
    """`Accel.applied` restored the deterministic flags but left CUBLAS_WORKSPACE_CONFIG=:4096:8 in the
    environment for the later runs of a sweep and the processes they start (accel audit)."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with Accel(deterministic=True, device_type="cpu").applied():
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's own setting stays
    with Accel(deterministic=True, device_type="cpu").applied():
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
