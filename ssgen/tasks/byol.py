"""BYOL (Grill et al., NeurIPS 2020): the online network (carrier, projector, predictor) predicts
a momentum target's (carrier, projector) projection of the other view; the loss is the
normalised MSE 2 - 2 cos, both ways. The target follows the online network with a momentum that
rises from `momentum` to 1 on a cosine over the run."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ssgen.config import bounded
from ssgen.losses.distillation import byol_loss
from ssgen.nets.heads import mlp
from ssgen.registry import TASKS
from ssgen.tasks.embedding import EmbeddingConfig, EmbeddingTask, follow, matching_accuracy, teacher


@dataclass
class BYOLConfig(EmbeddingConfig):
    name: str = "byol"
    augment: str = "byol"
    hidden: int = bounded(4096, minimum=1)       # the paper's projector and predictor width
    predictor_hidden: int = bounded(4096, minimum=1)
    momentum: float = bounded(0.99, minimum=0.0, maximum=1.0)  # solo-learn's CIFAR base (paper: 0.996 on ImageNet)


@TASKS.register("byol")
class BYOL(EmbeddingTask):
    Config = BYOLConfig

    def __init__(self, cfg: BYOLConfig, encoder, data, spectral_norm: bool = False):
        super().__init__(cfg, encoder, data, spectral_norm)
        self.predictor = mlp(cfg.dim, cfg.dim, hidden=cfg.predictor_hidden, layers=2)
        self.target = teacher(encoder, self.projector, cfg.momentum)

    def loss(self, features, inputs, progress):
        p1, p2 = self.predictor(torch.cat(self.project(features))).chunk(2)
        with torch.no_grad():
            t1, t2 = self.target(torch.cat(inputs.images)).chunk(2)
        loss = byol_loss(p1, t2) + byol_loss(p2, t1)
        return loss, {"acc": matching_accuracy(p1, t2)}

    def after_update(self, encoder, progress):
        follow(self.target, encoder, self.projector, progress)
