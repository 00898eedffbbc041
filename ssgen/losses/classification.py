"""Cross-entropy over pretext (or class) labels, with the accuracy to log beside it."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def cross_entropy_with_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean cross-entropy in float32, top-1 accuracy as a 0-d tensor: no host sync)."""
    accuracy = (logits.detach().argmax(1) == labels).float().mean()
    return F.cross_entropy(logits.float(), labels), accuracy
