"""Heads on a representation, from one builder: a task's linear classifier (rotation, jigsaw),
SimCLR's and MoCo's projectors, BYOL's and MoCo v3's predictors, DINO's head.

    mlp(in, [hidden] * (layers - 1), out): Linear -> [norm] -> ReLU -> ... -> Linear [-> norm]

And the linear classifier of standardised features that the probe fits (ssgen/eval/probe.py), on
a method's feature layer the network that `ssgen finetune` tunes and saves (FinetunedNetwork).
"""

from __future__ import annotations

import torch
from torch import nn

from ssgen.nets.blocks import sn_linear


def mlp(in_features: int, out_features: int, hidden: int = 0, layers: int = 1, *, norm: bool = True,
        last_norm: bool = False, spectral_norm: bool = False) -> nn.Module:
    """`layers` linear layers (1: a linear head). Hidden layers have `hidden` units, batch norm
    (when `norm`) and ReLU; `last_norm` adds an affine-free batch norm on the output, as
    SimCLR v2's and MoCo v3's projectors do. `spectral_norm` on every linear layer: for heads
    on a GAN's discriminator, whose Lipschitz constant it keeps."""
    if layers < 1:
        raise ValueError(f"an MLP head needs at least 1 layer, got {layers}")
    sizes = [in_features] + [hidden] * (layers - 1) + [out_features]
    modules: list[nn.Module] = []
    for index, (size_in, size_out) in enumerate(zip(sizes, sizes[1:])):
        modules.append(sn_linear(size_in, size_out, enabled=spectral_norm))
        if index < layers - 1:
            modules += [nn.BatchNorm1d(size_out)] if norm else []
            modules.append(nn.ReLU())
    if last_norm:
        modules.append(nn.BatchNorm1d(out_features, affine=False))
    return modules[0] if len(modules) == 1 else nn.Sequential(*modules)


class LinearClassifier(nn.Module):
    """Logits of standardised features, linear((x - mean) / std): the probe's classifier, and the
    head that `ssgen finetune` starts its second stage from (the scale stays fixed: buffers)."""

    def __init__(self, num_features: int, num_classes: int, device: torch.device | str | None = None):
        super().__init__()
        self.register_buffer("mean", torch.zeros(num_features, device=device))
        self.register_buffer("std", torch.ones(num_features, device=device))
        self.linear = nn.Linear(num_features, num_classes, device=device)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features - self.mean) / self.std)


class FinetunedNetwork(nn.Module):
    """A method's feature network and a linear head: float [-1, 1] images [B,3,H,W] -> logits.
    `method` is any method (its `features(x, [layer], grad)`, ssgen/methods/base.py). Gradients
    flow through the features when enabled (training), not in torch.no_grad()."""

    def __init__(self, method: nn.Module, layer: str, head: LinearClassifier):
        super().__init__()
        self.method, self.layer, self.head = method, layer, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.method.features(x, [self.layer], grad=torch.is_grad_enabled())[self.layer]
        return self.head(features.float().flatten(1))
