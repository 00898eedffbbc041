"""GAN losses on critic logits: hinge (SNGAN, SS-GAN) and non-saturating (Goodfellow et al. 2014)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("hinge", "ns")


def d_adversarial_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    # non-saturating: -log sigmoid(real) - log(1 - sigmoid(fake))
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_adversarial_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()
