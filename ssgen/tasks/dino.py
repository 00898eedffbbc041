"""DINO (Caron et al., ICCV 2021): self-distillation without labels. A student (carrier + head)
matches, on every view, the softmax of a momentum teacher on the *other* global views; the
teacher's outputs are centred (an EMA of their mean) and sharpened (a low temperature, warmed
up over the first steps), which keeps them from collapsing. Multi-crop: two global views and
several small local views; the teacher sees only the global ones (losses/distillation.py).

The head: an MLP to a bottleneck, L2-normalised, then a weight-normalised linear layer to K
prototypes whose norm is held at 1 (DINO's norm_last_layer). ReLU, not DINO's GELU, between the
MLP's layers (ssgen's one MLP builder).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ssgen.augment import Augmenter, augmented_views, view_configs
from ssgen.config import bounded
from ssgen.losses.distillation import DINOLoss
from ssgen.nets.heads import mlp
from ssgen.registry import TASKS
from ssgen.step import Batch, Progress
from ssgen.tasks.base import Task, TaskConfig, TaskInputs
from ssgen.tasks.embedding import follow, teacher


@dataclass
class DINOConfig(TaskConfig):
    name: str = "dino"
    augment: str = "dino"                        # its full-size views (first) are the global views
    prototypes: int = bounded(4096, minimum=2)   # K (solo-learn's CIFAR value; ImageNet: 65536)
    hidden: int = bounded(2048, minimum=1)
    bottleneck: int = bounded(256, minimum=1)
    student_temp: float = bounded(0.1, above=0.0)
    teacher_temp: float = bounded(0.04, above=0.0)
    warmup_teacher_temp: float = bounded(0.04, above=0.0)
    warmup_steps: int = bounded(0, minimum=0)    # of the teacher temperature
    center_momentum: float = bounded(0.9, minimum=0.0, maximum=1.0)
    momentum: float = bounded(0.996, minimum=0.0, maximum=1.0)  # the teacher's, rising to 1 on a cosine


class PrototypeHead(nn.Module):
    def __init__(self, in_features: int, prototypes: int, hidden: int, bottleneck: int):
        super().__init__()
        self.mlp = mlp(in_features, bottleneck, hidden=hidden, layers=3, norm=False)
        self.prototypes = weight_norm(nn.Linear(bottleneck, prototypes, bias=False))
        with torch.no_grad():
            self.prototypes.parametrizations.weight.original0.fill_(1.0)
        self.prototypes.parametrizations.weight.original0.requires_grad_(False)  # rows of norm 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prototypes(F.normalize(self.mlp(x), dim=-1))


@TASKS.register("dino")
class DINO(Task):
    Config = DINOConfig

    def __init__(self, cfg: DINOConfig, encoder, data, spectral_norm: bool = False):
        super().__init__(cfg, encoder, data, spectral_norm)
        views = view_configs(cfg.augment)
        self.global_views = sum(view.count for view in views if view.size == 1.0)
        self.augment = Augmenter(views, data.resolution)
        self.head = PrototypeHead(encoder.feature_dim, cfg.prototypes, cfg.hidden, cfg.bottleneck)
        self.teacher = teacher(encoder, self.head, cfg.momentum)
        self.criterion = DINOLoss(cfg.prototypes, cfg.student_temp, cfg.teacher_temp, cfg.warmup_teacher_temp,
                                  cfg.warmup_steps, cfg.center_momentum)

    def inputs(self, batch: Batch, progress: Progress) -> TaskInputs:
        return TaskInputs(augmented_views(self.augment, batch.images))

    def loss(self, features, inputs, progress):
        student = list(self.head(torch.cat(features)).split([len(f) for f in features]))
        with torch.no_grad():
            teacher_out = self.teacher(torch.cat(inputs.images[: self.global_views])).chunk(self.global_views)
        loss = self.criterion(student, list(teacher_out), progress.step - 1)
        agreement = (student[0].argmax(1) == teacher_out[1].argmax(1)).float().mean()
        return loss, {"acc": agreement}

    def after_update(self, encoder, progress):
        follow(self.teacher, encoder, self.head, progress)
