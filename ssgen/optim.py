"""Optimizers and learning-rate schedules by name.

A method says which parameters each of its optimizers updates and with which `OptimConfig`;
`build_optimizer` makes the optimizer: adam, adamw, sgd (momentum, nesterov) or lars, with
biases and normalisation weights (tensors of one dimension) in a group without weight decay
(and, for LARS, without trust-ratio scaling), as the self-supervised recipes do. The trainer
multiplies each group's base lr by `lr_factor` at every step: a linear warm-up, then linear
decay to 0, a cosine to 0, or a constant.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import torch

from ssgen.config import OptimConfig
from ssgen.registry import OPTIMIZERS, SCHEDULES


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose step for each weight tensor is scaled by the layer-wise trust
    ratio of You et al. (2017): trust * ||w|| / (||g|| + weight_decay * ||w||). Groups with
    `adapt: False` (biases, norms) take plain SGD steps."""

    def __init__(self, params, lr: float, momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0, trust: float = 1e-3):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov,
                                      weight_decay=weight_decay, trust=trust, adapt=True))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)  # m * 0 + grad: the first step's buffer is the grad
                lars_update(p, p.grad, state["momentum_buffer"], group, group["lr"])
        return loss


def lars_update(p: torch.Tensor, grad: torch.Tensor, buffer: torch.Tensor, group: dict, lr) -> None:
    """One LARS update of `p` in place (eager LARS.step and compiled steps share it)."""
    if group["adapt"]:
        weight_norm, grad_norm = p.norm(), grad.norm()
        ratio = group["trust"] * weight_norm / (grad_norm + group["weight_decay"] * weight_norm)
        # A zero weight (fresh bias-like tensor) or zero gradient: no scaling to compute.
        ratio = torch.where((weight_norm > 0) & (grad_norm > 0), ratio, torch.ones_like(ratio))
        grad = (grad + group["weight_decay"] * p) * ratio
    buffer.mul_(group["momentum"]).add_(grad)
    p.sub_(lr * (grad + group["momentum"] * buffer if group["nesterov"] else buffer))


@OPTIMIZERS.register("adam")
def adam(groups: list[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused(groups))


@OPTIMIZERS.register("adamw")
def adamw(groups: list[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), fused=fused(groups))


@OPTIMIZERS.register("sgd")
def sgd(groups: list[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)


@OPTIMIZERS.register("lars")
def lars(groups: list[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    return LARS(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, trust=cfg.trust)


def fused(groups: list[dict]) -> bool | None:
    # Fused Adam is one kernel per step on CUDA; the CPU build takes the default path.
    return all(p.is_cuda for group in groups for p in group["params"]) or None


def parameter_groups(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> list[dict]:
    """One group, or with weight decay two: weights decayed; biases and norm weights (1-d) not,
    and not trust-scaled by LARS."""
    params = [p for p in params if p.requires_grad]
    if cfg.weight_decay == 0 or cfg.decay_norms_and_biases:
        return [{"params": params, "weight_decay": cfg.weight_decay}]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": cfg.weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "adapt": False}]


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """The optimizer `cfg.name` over `params` (call after the parameters are on their device)."""
    return build_scaled_optimizer([(params, 1.0)], cfg)


def build_scaled_optimizer(parts: Sequence[tuple[Iterable[torch.nn.Parameter], float]],
                           cfg: OptimConfig) -> torch.optim.Optimizer:
    """One optimizer `cfg.name` over several sets of parameters, each at its own multiple of cfg.lr
    (fine-tuning: a lower rate for the pretrained part than for the new head)."""
    groups = [{**group, "lr": cfg.lr * scale} for params, scale in parts for group in parameter_groups(params, cfg)]
    if cfg.name != "lars":  # only LARS knows the `adapt` key
        for group in groups:
            group.pop("adapt", None)
    optimizer = OPTIMIZERS.get(cfg.name, "optim.name")(groups, cfg)
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]  # the schedule scales this; checkpointed with the optimizer
    return optimizer


# ---------------------------------------------------------------- updates inside a compiled step
# torch's optimizers break a compiled graph on purpose at step() (and refuse a gradient set
# inside it), so a whole-step graph updates the weights itself: the same arithmetic as each
# optimizer's eager step, on the optimizer's own state tensors, so that checkpoints are the
# same for both paths and a run can resume on either.
def prepare_state(optimizer: torch.optim.Optimizer) -> None:
    """Create each parameter's state as the optimizer's first eager step would, before a compiled
    step is traced (zero moments, step 0; a zero momentum buffer, which the first step fills with
    the gradient as SGD's clone does). Existing state (a resumed run) is kept."""
    kind = optimizer_kind(optimizer)
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state[p]
            if kind in ("adam", "adamw"):
                if "step" not in state:
                    # On the parameter's device (as fused and capturable Adam keep it): no host scalar in the graph.
                    state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                elif state["step"].device != p.device:
                    state["step"] = state["step"].to(p.device)
            elif (kind == "lars" or group["momentum"]) and state.get("momentum_buffer") is None:
                state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)


def optimizer_kind(optimizer: torch.optim.Optimizer) -> str:
    # AdamW first: in some torch versions it subclasses Adam.
    for kind, cls in (("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam), ("sgd", torch.optim.SGD),
                      ("lars", LARS)):
        if isinstance(optimizer, cls):
            return kind
    raise ValueError(f"{type(optimizer).__name__} has no update for compiled steps; "
                     "expected adam, adamw, sgd or lars")


@torch.no_grad()
def compiled_update(optimizer: torch.optim.Optimizer, grads: list[torch.Tensor | None],
                    lrs: list[torch.Tensor]) -> None:
    """One step of `optimizer` with `grads` (in the order of its groups' parameters) and the
    learning rate of each group as a 0-d tensor: a Python float would be baked into the graph,
    and the schedule changes it at every step. A parameter without a gradient is left alone,
    as the eager step leaves it."""
    kind, grads = optimizer_kind(optimizer), iter(grads)
    for group, lr in zip(optimizer.param_groups, lrs):
        for p in group["params"]:
            grad = next(grads)
            if grad is None:
                continue
            state = optimizer.state[p]
            if kind in ("adam", "adamw"):
                adam_update(p, grad, state, group, lr, decoupled=kind == "adamw")
            elif kind == "sgd":
                sgd_update(p, grad, state, group, lr)
            else:
                lars_update(p, grad, state["momentum_buffer"], group, lr)


def adam_update(p, grad, state: dict, group: dict, lr, decoupled: bool) -> None:
    beta1, beta2 = group["betas"]
    state["step"] += 1
    step = state["step"]
    if group["weight_decay"]:
        if decoupled:
            p.mul_(1 - lr * group["weight_decay"])
        else:
            grad = grad + group["weight_decay"] * p
    state["exp_avg"].lerp_(grad, 1 - beta1)
    state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (state["exp_avg_sq"].sqrt() / (1 - beta2 ** step).sqrt()).add_(group["eps"])
    p.sub_(lr / (1 - beta1 ** step) * state["exp_avg"] / denom)


def sgd_update(p, grad, state: dict, group: dict, lr) -> None:
    if group["weight_decay"]:
        grad = grad + group["weight_decay"] * p
    if group["momentum"]:
        buffer = state["momentum_buffer"].mul_(group["momentum"]).add_(grad, alpha=1 - group["dampening"])
        grad = grad + group["momentum"] * buffer if group["nesterov"] else buffer
    p.sub_(lr * grad)


# ---------------------------------------------------------------- schedules
# (fraction of the post-warm-up steps done, in [0, 1)) -> multiplier of the base lr
SCHEDULES.register("linear")(lambda done: 1.0 - done)
SCHEDULES.register("cosine")(lambda done: 0.5 * (1.0 + math.cos(math.pi * done)))
SCHEDULES.register("constant")(lambda done: 1.0)


def lr_factor(cfg: OptimConfig, step: int, total: int) -> float:
    """Multiplier of the base lr at 1-based `step` of `total`: warm-up from 1/warmup_steps to 1
    over the first warmup_steps, then the schedule from 1 towards 0 at the last step."""
    if step <= cfg.warmup_steps:
        return step / cfg.warmup_steps
    done = (step - 1 - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    return SCHEDULES.get(cfg.schedule, "optim.schedule")(done)


def set_learning_rates(optimizer: torch.optim.Optimizer, cfg: OptimConfig, step: int, total: int) -> None:
    factor = lr_factor(cfg, step, total)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
