"""MoCo's queue of negative keys (v1/v2): the one place where keys wait to be negatives."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssgen.parallel import gather_rows


class Queue(nn.Module):
    """The latest `size` keys of the global batches, first in first out.

    `keys` [size, dim] starts as random unit vectors, as in MoCo, so that every slot is a usable
    negative from the first step (zeros would need a count and a mask until the queue is full).
    `position` is the slot the next key goes to: the oldest key's. Both are buffers, so a
    checkpoint resumes the queue exactly. Any batch size works: writes wrap around the end."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("position", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Put the global batch's keys [N, dim] (every process's, in rank order, under torchrun) in
        place of the N oldest. Call it after the loss, so a batch's keys are not its own negatives."""
        keys = gather_rows(keys.detach())
        size = len(self.keys)
        kept = keys[-size:]  # a batch longer than the queue leaves only its last `size` keys
        start = self.position + (len(keys) - len(kept))
        slots = (start + torch.arange(len(kept), device=self.keys.device)) % size
        self.keys[slots] = kept.to(self.keys.dtype)
        self.position.copy_((self.position + len(keys)) % size)
