"""Fine-tuning a method's features on a few labels: the transfer protocol behind `ssgen finetune`
(its command: ssgen/eval/commands.py).

    stage 1  a linear classifier on the frozen features of the labelled images (the linear probe:
             ssgen.eval.probe, the same code and budget); the network is untouched
    stage 2  the whole network, the stage-1 classifier as its head, trained by cross-entropy on
             augmented labelled images; the pretrained part at `trunk_lr_scale` times the head's rate

Any method serves: its `features(x, [layer])` is the network (a GAN's discriminator, an
autoencoder's encoder, an encoder trained by tasks). What stage 2 trains is what that layer's
features depend on (`feature_parameters`): a discriminator's critic, a task's head or a decoder
get no gradient and are left out.

The fine-tuned network (ssgen.nets.heads.FinetunedNetwork) is saved by ssgen.checkpoint.save_finetuned;
ssgen.rebuild.load_finetuned rebuilds it as a module that maps float [-1, 1] images [B,3,H,W] to
logits (the teacher of SimCLRv2's distillation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ssgen.augment import NO_AUGMENTATION, PRESETS, Augmenter, view_configs
from ssgen.config import OptimConfig, ProbeConfig, bounded, choice
from ssgen.console import ProgressReport
from ssgen.errors import ConfigError
from ssgen.eval.probe import ProbeData, classifier_description, extract_features, fit_linear_classifier, top1
from ssgen.images import to_float
from ssgen.methods.base import Method
from ssgen.nets.heads import FinetunedNetwork
from ssgen.optim import build_scaled_optimizer, set_learning_rates


@dataclass
class FinetuneConfig:
    """The protocol: everything that decides the two figures, recorded beside them. `ssgen finetune`
    builds it with ssgen.config.from_dict, which checks each field's range or choices, and its
    options default to these values; stage 1's fit is the run's own probe's (ProbeConfig)."""
    layer: str                       # the feature layer the head reads
    steps: int = bounded(500, minimum=1)  # stage-2 updates
    batch_size: int = bounded(64, minimum=1)  # stage 2's (at most the labelled images)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(
        name="adam", lr=1e-3, schedule="cosine"))  # the head's rate
    # the pretrained part's rate / the head's (0: frozen in stage 2 too)
    trunk_lr_scale: float = bounded(0.1, minimum=0.0)
    augment: str = choice("weak", *PRESETS, NO_AUGMENTATION)  # an ssgen.augment preset's first view, or none
    max_iter: int = bounded(ProbeConfig.max_iter, minimum=1)  # stage 1: the probe's fit, to its tolerance, capped here
    tolerance: float = bounded(ProbeConfig.tolerance, above=0.0)
    l2: float = bounded(ProbeConfig.l2, minimum=0.0)  # stage 1: the probe's weight penalty
    feature_batch: int = bounded(ProbeConfig.batch_size, minimum=1)  # images per pass: features, testing
    seed: int = 0                    # batch order and augmentation draws

    def linear_protocol(self) -> dict:
        """What stage 1's figure depends on."""
        return {"layer": self.layer, "stage1": classifier_description(self.tolerance, self.max_iter, self.l2)}

    def protocol(self) -> dict:
        """What stage 2's figure depends on: stage 1's, and its own."""
        optim = self.optim
        return {**self.linear_protocol(), "stage2_steps": self.steps, "batch_size": self.batch_size,
                "optimizer": optim.name, "lr_head": optim.lr, "lr_trunk": optim.lr * self.trunk_lr_scale,
                **({"momentum": optim.momentum} if optim.name in ("sgd", "lars") else {}),
                "schedule": optim.schedule, "weight_decay": optim.weight_decay, "augment": self.augment,
                "seed": self.seed}


def feature_layer(method: Method, layer: str | None) -> str:
    """The layer to fine-tune from: `layer`, or the method's default; a ConfigError where the method
    has no features or not that layer."""
    if not method.feature_layers:
        raise ConfigError(f"method {method.cfg.name!r} exposes no features (feature_layers is empty): "
                          "there is no network to fine-tune")
    return method.check_features([layer] if layer else None)[0]


def feature_parameters(method: Method, layer: str, resolution: int) -> list[nn.Parameter]:
    """The trainable parameters that `layer`'s features depend on: the pretrained part that stage 2
    fine-tunes. Found by differentiating the features of a blank batch, so any method serves
    without a list of its own; in eval mode, so no running statistic or spectral-norm vector moves."""
    params = [p for p in method.parameters() if p.requires_grad]
    device = params[0].device if params else torch.device("cpu")
    was_training = method.training
    method.eval()
    try:
        output = method.features(torch.zeros(2, 3, resolution, resolution, device=device), [layer], grad=True)[layer]
    finally:
        method.train(was_training)
    if not output.requires_grad:
        return []
    grads = torch.autograd.grad(output.float().sum(), params, allow_unused=True)
    return [p for p, g in zip(params, grads) if g is not None]


@torch.no_grad()
def network_accuracy(network: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                     device: torch.device) -> float:
    """Top-1 of a network on uint8 images, in eval mode (its mode is put back)."""
    was_training = network.training
    network.eval()
    try:
        logits = torch.cat([network(to_float(chunk.to(device))) for chunk in images.split(batch_size)])
    finally:
        network.train(was_training)
    return top1(logits, labels)


def linear_stage(method: Method, data: ProbeData, cfg: FinetuneConfig, device: torch.device,
                 log: Callable[[str], None] | None = None) -> tuple[FinetunedNetwork, float]:
    """Stage 1: the linear probe of the frozen features, fit on the labelled images; returns the
    network with that classifier as its head, and its test top-1. The method is left as it was."""
    feature_layer(method, cfg.layer)
    train = extract_features(method, data.train_images, [cfg.layer], cfg.feature_batch, device, log,
                             "train features")[cfg.layer]
    test = extract_features(method, data.test_images, [cfg.layer], cfg.feature_batch, device, log,
                            "test features")[cfg.layer]
    if log is not None:
        log(f"stage 1: fitting the linear classifier ({classifier_description(cfg.tolerance, cfg.max_iter, cfg.l2)})")
    head, fit = fit_linear_classifier(train, data.train_labels, data.num_classes, cfg.max_iter, cfg.l2, cfg.tolerance)
    if log is not None:
        log(f"stage 1: {fit.iterations} L-BFGS iterations, {'converged' if fit.converged else 'NOT converged'}")
    with torch.no_grad():
        accuracy = top1(head(test), data.test_labels)
    return FinetunedNetwork(method, cfg.layer, head), accuracy


class FineTuner:
    """Stage 2's updates: the head at the optimizer's rate, the pretrained part at trunk_lr_scale
    times it, each step's rate from the schedule; augmentation drawn from torch's global RNG."""

    def __init__(self, network: FinetunedNetwork, cfg: FinetuneConfig, resolution: int):
        self.network, self.cfg = network, cfg
        self.trunk = feature_parameters(network.method, network.layer, resolution)
        self.optimizer = build_scaled_optimizer([(self.trunk, cfg.trunk_lr_scale),
                                                 (network.head.parameters(), 1.0)], cfg.optim)
        self.augmenter = None if cfg.augment == NO_AUGMENTATION else Augmenter(
            [dataclasses.replace(view_configs(cfg.augment)[0], count=1)], resolution)

    def step(self, images: torch.Tensor, labels: torch.Tensor, step: int) -> torch.Tensor:
        """One update on float [-1, 1] images (augmented here); `step`: 1-based, for the schedule."""
        set_learning_rates(self.optimizer, self.cfg.optim, step, self.cfg.steps)
        if self.augmenter is not None:
            images = self.augmenter(images)[0]
        self.network.train()
        loss = F.cross_entropy(self.network(images), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def batch_rows(num_items: int, batch_size: int, generator: torch.Generator):
    """Endless batches of row numbers: seeded permutations, one epoch after another, full batches."""
    batch_size = min(batch_size, num_items)
    while True:
        order = torch.randperm(num_items, generator=generator)
        for start in range(0, num_items - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def full_stage(network: FinetunedNetwork, data: ProbeData, cfg: FinetuneConfig, device: torch.device,
               log: Callable[[str], None] | None = None) -> float:
    """Stage 2: fine-tune the whole network on the labelled images; returns its test top-1."""
    torch.manual_seed(cfg.seed)  # the augmentation's draws
    tuner = FineTuner(network, cfg, data.train_images.shape[-1])
    images, labels = data.train_images.to(device), data.train_labels.to(device)
    batches = batch_rows(len(labels), cfg.batch_size, torch.Generator().manual_seed(cfg.seed))
    report = ProgressReport(cfg.steps, "stage 2", log or (lambda line: None), every=max(1, cfg.steps // 10),
                            unit="steps", bar=log is not None)
    try:
        for step in range(1, cfg.steps + 1):
            rows = next(batches).to(device)
            loss = tuner.step(to_float(images[rows]), labels[rows], step)
            report.update(1, loss=loss.item())
    finally:
        report.close()
    return network_accuracy(network, data.test_images, data.test_labels, cfg.feature_batch, device)
