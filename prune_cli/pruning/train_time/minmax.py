"""`schedule=minmax`: adversarial regularisation against membership inference (Nasr, Shokri and
Houmansadr, "Machine Learning with Membership Privacy using Adversarial Regularization", CCS 2018),
the min-max comparison of Wang et al., "Against Membership Inference Attack: Pruning is All You
Need" (IJCAI 2021).

An attack model h(p, y) -> P(member), on the classifier's softmax output p and the one-hot label y,
plays against the classifier f:

    max_h  G(h, f) = E_{(x,y) in D}[log h(f(x), y)] + E_{(x',y') in D'}[log(1 - h(f(x'), y'))]
    min_f  E_{(x,y) in D}[loss(f(x), y)] + lambda * E_{(x,y) in D}[log h(f(x), y)]

D is the training set (members), D' a reference set from the same distribution that f never trains
on: the validation split. Every optimizer step of f first takes `attack_steps` Adam steps of h on the
current training batch against an equally large reference batch (Nasr et al.'s Algorithm 1, with the
member batch of the classifier step), then adds lambda x the attack's member gain to the loss. The
attack architecture follows Nasr et al. at a smaller width: a branch on p, a branch on y, and a
joint layer on both.

Plan: the dense baseline, then from the same initialisation adversarially regularised training (the
`train` config), magnitude pruning to `sparsity` with the run's method (none at sparsity 0: the plain
defence), adversarially regularised fine-tuning.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from torch.nn import functional as F

from ...core.checks import check, finite, positive_int
from ...core.config_base import ScheduleConfig, config_schema
from ...core.errors import ConfigError
from ...schedules import register_schedule
from ...schedules.steps import Dense, Prune, Record, Restart, Step, TrainWithHook
from . import HookContext, TrainHook, register_train_hook


@config_schema("schedule", "minmax")
@dataclass
class MinMaxConfig(ScheduleConfig):
    name: str = "minmax"
    adv_lambda: float = 1.0  # lambda: weight of the attack's gain in the classifier's loss
    attack_steps: int = 1  # k: attack updates per classifier step
    attack_lr: float = 1e-3  # Adam learning rate of the attack model
    attack_width: int = 64  # hidden width of the attack model's branches

    reads = ()  # its steps are fixed: from the initialisation, one pruning event, regularised fine-tuning
    # the attack never reads the method: at sparsity 0 (no pruning event) the method and its options do nothing
    # (prune_cli/run/unused_options.py `_nothing_pruned`)
    method_unread_unpruned = True

    @staticmethod
    def unused(cfg: DictConfig, key: str) -> dict[str, str]:
        """The attack's options where the classifier ignores the attack: with adv_lambda=0 its loss adds
        0 x the attack's gain, so the trained model is the same whatever the attack (only history's
        attack_loss, the attack's own training loss, changes; membership leakage is metrics.membership's)."""
        s = OmegaConf.select(cfg, key)
        if s.adv_lambda != 0:
            return {}
        why = (
            f"with {key}.adv_lambda=0 the classifier's loss adds 0 x the attack's gain, so the attack changes no weight of "
            "the model (only history's attack_loss, the attack's own loss, moves); this is the plain, undefended training"
        )
        return {f"{key}.{name}": why for name in ("attack_steps", "attack_lr", "attack_width")}

    @staticmethod
    def check(cfg: DictConfig, key: str) -> None:
        s = OmegaConf.select(cfg, key)
        check(finite(s.adv_lambda) and s.adv_lambda >= 0, f"{key}.adv_lambda", s.adv_lambda, "a number >= 0")
        positive_int(cfg, f"{key}.attack_steps")
        check(finite(s.attack_lr) and s.attack_lr > 0, f"{key}.attack_lr", s.attack_lr, "a positive number")
        width = s.attack_width
        check(
            isinstance(width, int) and width >= 2 and width % 2 == 0,
            f"{key}.attack_width",
            width,
            "an even integer >= 2 (the attack's prediction and label branches are attack_width / 2 wide each)",
        )

    @staticmethod
    def check_val_examples(cfg: DictConfig, examples: int) -> None:
        """The validation split is the attack's reference set of non-members: it must not be empty
        (prune_cli/run/prevalidate.py check_data_sizes: as declared, and once the data is loaded)."""
        from ...data.splits import empty_val_reason

        check(
            examples != 0,
            "dataset.val_fraction",
            cfg.dataset.val_fraction,
            f"a fraction that holds out validation examples with schedule=minmax (the validation split is the attack's "
            f"reference set of non-members; here {empty_val_reason(cfg.dataset)})",
        )


class AttackModel(nn.Module):
    """h(p, y): P(member) from the softmax output p and the one-hot label y (Nasr et al. 2018, Fig. 2)."""

    def __init__(self, num_classes: int, width: int):
        super().__init__()
        self.prediction = nn.Sequential(nn.Linear(num_classes, width), nn.ReLU(), nn.Linear(width, width // 2), nn.ReLU())
        self.label = nn.Sequential(nn.Linear(num_classes, width // 2), nn.ReLU())
        self.joint = nn.Sequential(nn.Linear(width, width // 2), nn.ReLU(), nn.Linear(width // 2, 1))

    def forward(self, probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The attack's logit: log h / (1 - h)."""
        onehot = F.one_hot(y, probs.shape[1]).to(probs.dtype)
        return self.joint(torch.cat([self.prediction(probs), self.label(onehot)], 1)).squeeze(1)


def member_gain(attack: nn.Module, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """E_D[log h(f(x), y)]: the attack's log-likelihood of calling the training batch members; the
    classifier adds lambda x this to its loss, so its gradient step lowers it."""
    return F.logsigmoid(attack(logits.softmax(1), y)).mean()


def attack_loss(attack: nn.Module, member_logits, member_y, ref_logits, ref_y) -> torch.Tensor:
    """-G(h, f): binary cross-entropy of members (label 1) against reference examples (label 0)."""
    m = attack(member_logits.softmax(1), member_y)
    r = attack(ref_logits.softmax(1), ref_y)
    return F.binary_cross_entropy_with_logits(m, torch.ones_like(m)) + F.binary_cross_entropy_with_logits(r, torch.zeros_like(r))


class MinMaxHook(TrainHook):
    def __init__(self, ctx: HookContext):
        self.ctx = ctx
        self.options = ctx.config.schedule
        self.seed = int(ctx.config.seed)
        data = ctx.prune.data
        if data is None or len(data.val_y) == 0:  # known only once loaded: a random subset (max_train_samples)
            raise ConfigError(
                "dataset.val_fraction",
                ctx.config.dataset.val_fraction,
                "a fraction that holds out validation examples with schedule=minmax (the loaded validation split is empty)",
            )
        self.ref_x, self.ref_y = data.val_x, data.val_y
        self.num_classes = int(data.num_classes)

    def _fresh(self) -> None:
        with torch.random.fork_rng(devices=[]):  # the attack's own seeded initialisation; the run's RNG is untouched
            torch.manual_seed(self.seed)
            self.attack = AttackModel(self.num_classes, int(self.options.attack_width)).to(self.ctx.device)
        self.optimizer = torch.optim.Adam(self.attack.parameters(), lr=self.options.attack_lr)
        self.gen = torch.Generator().manual_seed(self.seed)  # reference batches
        self.last_attack_loss = float("nan")

    def start(self, model: nn.Module) -> None:
        self._fresh()

    def extra_loss(self, model, x, y, logits) -> Optional[torch.Tensor]:
        index = torch.randint(len(self.ref_y), (len(y),), generator=self.gen).to(self.ref_y.device)
        ref_logits = reference_logits(model, self.ref_x[index])
        for _ in range(self.options.attack_steps):
            self.optimizer.zero_grad(set_to_none=True)
            loss = attack_loss(self.attack, logits.detach(), y, ref_logits, self.ref_y[index])
            loss.backward()
            self.optimizer.step()
        self.last_attack_loss = float(loss.detach())
        for p in self.attack.parameters():
            p.requires_grad_(False)
        gain = member_gain(self.attack, logits, y)
        for p in self.attack.parameters():
            p.requires_grad_(True)
        return self.options.adv_lambda * gain

    def epoch_row(self) -> dict:
        return {"attack_loss": self.last_attack_loss}

    def state_dict(self) -> dict:
        return {
            "attack": copy.deepcopy(self.attack.state_dict()),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "generator": self.gen.get_state().clone(),
            "last_attack_loss": self.last_attack_loss,
        }

    def resume(self, model, state: dict) -> None:
        self._fresh()
        self.attack.load_state_dict(state["attack"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.gen = torch.Generator()
        self.gen.set_state(state["generator"])
        self.last_attack_loss = float(state["last_attack_loss"])


@register_train_hook("minmax")
def build(ctx: HookContext) -> TrainHook:
    return MinMaxHook(ctx)


@register_schedule("minmax")
def plan(cfg: DictConfig) -> list[Step]:
    """dense baseline -> adversarially regularised training from the same initialisation -> prune to
    `sparsity` with the run's method (skipped at 0) -> adversarially regularised fine-tuning."""
    steps: list[Step] = [Dense(), Record("dense"), Restart("init"), TrainWithHook("minmax", "train", "minmax", int(cfg.train.epochs))]
    if cfg.sparsity > 0:
        steps.append(Prune(1.0 - cfg.sparsity))
    steps += [Record("pruned"), TrainWithHook("minmax", "finetune", "finetuned", int(cfg.finetune.epochs)), Record("finetuned")]
    return steps


def reference_logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's logits on reference (non-member) inputs, without gradients, in the member batch's
    (training) mode, so that the attack cannot tell the two apart by BatchNorm's batch statistics;
    the running statistics stay those of the training batches. The pass runs on copies of the buffers
    (torch.func.functional_call): restoring them in place afterwards modified tensors that autograd
    had saved for the member batch's backward pass (BatchNorm's running statistics, res_mlp's gates)."""
    copies = {name: b.clone() for name, b in model.named_buffers()}
    with torch.no_grad():
        return torch.func.functional_call(model, copies, (x,), strict=False)
