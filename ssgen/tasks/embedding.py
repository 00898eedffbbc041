"""What the joint-embedding tasks share (SimCLR, MoCo, BYOL, DINO, iBOT): augmented views of
each image made on the device (ssgen/augment), a head on the carrier's features from the one
MLP builder, and a momentum copy of carrier + head for the tasks that have a teacher.

None of them defines anything for G on a GAN: they shape D's features of real images. (ContraD,
Jeong & Shin 2021, also contrasts fakes; that is a different recipe, not this one.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ssgen.augment import Augmenter, augmented_views, view_configs
from ssgen.config import bounded
from ssgen.nets.momentum import MomentumCopy
from ssgen.step import Batch, Progress
from ssgen.tasks.base import Task, TaskConfig, TaskInputs


@dataclass
class EmbeddingConfig(TaskConfig):
    augment: str = "simclr"                      # an ssgen.augment preset: which views, how many
    hidden: int = bounded(2048, minimum=1)       # the projector's hidden width
    dim: int = bounded(256, minimum=1)           # the projection's size
    layers: int = bounded(2, minimum=1)          # the projector's linear layers


class EmbeddingTask(Task):
    """Views of each real image through the carrier, then a projector."""

    def __init__(self, cfg: EmbeddingConfig, encoder, data, spectral_norm: bool = False):
        super().__init__(cfg, encoder, data, spectral_norm)
        self.augment = Augmenter(view_configs(cfg.augment), data.resolution)
        self.projector = self.build_projector(encoder.feature_dim)

    def build_projector(self, in_features: int) -> nn.Module:
        return mlp_projector(in_features, self.cfg)

    def inputs(self, batch: Batch, progress: Progress) -> TaskInputs:
        return TaskInputs(augmented_views(self.augment, batch.images))

    def project(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """The projector on every view at once (its batch norm sees all views, as one pass would)."""
        return list(self.projector(torch.cat(features)).split([len(f) for f in features]))


def mlp_projector(in_features: int, cfg: EmbeddingConfig, last_norm: bool = False) -> nn.Module:
    from ssgen.nets.heads import mlp

    return mlp(in_features, cfg.dim, hidden=cfg.hidden, layers=cfg.layers, last_norm=last_norm)


def teacher(encoder: nn.Module, head: nn.Module, momentum: float) -> MomentumCopy:
    """A momentum copy of carrier + head, its momentum rising to 1 on BYOL's cosine schedule."""
    return MomentumCopy(nn.Sequential(encoder, head), momentum, schedule="cosine")


def follow(copy: MomentumCopy, encoder: nn.Module, head: nn.Module, progress: Progress) -> None:
    copy.update(nn.Sequential(encoder, head), progress)


def matching_accuracy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Share of rows of `a` whose most similar row of `b` (cosine) is their own: how well the
    views of one image find each other in the batch. Logged as the task's accuracy."""
    similarity = F.normalize(a.detach().float(), dim=1) @ F.normalize(b.detach().float(), dim=1).T
    return (similarity.argmax(1) == torch.arange(len(a), device=a.device)).float().mean()
