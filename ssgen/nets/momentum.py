"""A momentum copy of a network: the EMA generator of a GAN, BYOL's target, MoCo's key encoder,
DINO's and iBOT's teacher, Noisy Student's teacher. One class for all of them.

    copy <- m * copy + (1 - m) * live        (parameters; buffers are copied)

`m` is constant, or follows BYOL's cosine from `momentum` at the first step to 1 at the last:
m = 1 - (1 - momentum) * (cos(pi * t) + 1) / 2. Before step `start` m is 0: the copy is the live
network (compare_gan's EMA of G, which starts averaging at its ema_start_step). The copy is a
submodule, so it is checkpointed
with the method and a resumed run continues exactly.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ssgen.step import Progress

SCHEDULES = ("constant", "cosine")


class MomentumCopy(nn.Module):
    def __init__(self, live: nn.Module, momentum: float, schedule: str = "constant", start: int = 0):
        super().__init__()
        if schedule not in SCHEDULES:
            raise ValueError(f"momentum schedule {schedule!r}: expected one of {', '.join(SCHEDULES)}")
        self.copy = copy.deepcopy(live).requires_grad_(False)
        self.momentum, self.schedule, self.start = momentum, schedule, start

    def momentum_at(self, progress: Progress) -> float:
        if self.start and progress.step < self.start:  # start 0 never reads the step
            return 0.0
        if self.schedule == "constant":
            return self.momentum
        return 1.0 - (1.0 - self.momentum) * (math.cos(math.pi * progress.fraction) + 1.0) / 2.0

    @torch.no_grad()
    def update(self, live: nn.Module, progress: Progress = Progress()) -> None:
        weight = 1.0 - self.momentum_at(progress)
        torch._foreach_lerp_(list(self.copy.parameters()), list(live.parameters()), weight)
        for mine, theirs in zip(self.copy.buffers(), live.buffers()):
            mine.copy_(theirs)

    def forward(self, *args, **kwargs):
        return self.copy(*args, **kwargs)
