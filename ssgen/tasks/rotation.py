"""Rotation (RotNet, Gidaris et al. 2018; SS-GAN, Chen et al. 2019): predict which of 0, 90,
180, 270 degrees an image was rotated by, with a linear head on the carrier's features.

A `fraction` of the batch appears in all four rotations (SS-GAN rotates a quarter of it). On a
GAN, D learns the task on rotated real images (d_weight: SS-GAN's beta = 1) and G is rewarded
when D reads the rotation of its rotated fakes (g_weight: SS-GAN's alpha = 0.2).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ssgen.config import bounded
from ssgen.errors import ConfigError
from ssgen.losses.classification import cross_entropy_with_accuracy
from ssgen.nets.heads import mlp
from ssgen.parallel import world
from ssgen.pretext.rotation import rotate4
from ssgen.registry import TASKS
from ssgen.step import Batch, Progress
from ssgen.tasks.base import Task, TaskConfig, TaskInputs


@dataclass
class RotationConfig(TaskConfig):
    name: str = "rotation"
    fraction: float = bounded(0.25, above=0.0, maximum=1.0)  # share of the batch shown in all four rotations


@TASKS.register("rotation")
class Rotation(Task):
    Config = RotationConfig
    default_g_weight = 0.2
    has_generator_side = True
    scored_on_test_images = True

    def __init__(self, cfg: RotationConfig, encoder, data, spectral_norm: bool = False):
        super().__init__(cfg, encoder, data, spectral_norm)
        self.head = mlp(encoder.feature_dim, 4, spectral_norm=spectral_norm)

    @classmethod
    def check_config(cls, task_cfg: RotationConfig, cfg, key) -> None:
        super().check_config(task_cfg, cfg, key)
        # Under torchrun each process rotates that fraction of its own slice of the batch.
        processes = world().size
        rotated = cfg.trainer.batch_size // processes * task_cfg.fraction
        if rotated < 1 or rotated != int(rotated):
            where = f" per process ({processes} processes)" if processes > 1 else ""
            raise ConfigError(
                f"{key('fraction')}={task_cfg.fraction} of trainer.batch_size={cfg.trainer.batch_size} is "
                f"{rotated:g} images{where}; expected a whole number >= 1 "
                "(e.g. a batch divisible by 4 with the default 0.25)")

    def inputs(self, batch: Batch, progress: Progress) -> TaskInputs:
        # Under torchrun: the first fraction of each process's slice, not of the global batch
        # (another, equally random subset of the shuffled batch; the same with fraction 1).
        images = batch.images
        return self.inputs_for(images[: round(images.shape[0] * self.cfg.fraction)])

    def inputs_for(self, images: torch.Tensor) -> TaskInputs:
        rotated, labels = rotate4(images)  # grouped by angle: the first len(images) rows are images
        return TaskInputs([rotated], labels, from_batch=len(images))

    def loss(self, features, inputs, progress):
        loss, accuracy = cross_entropy_with_accuracy(self.head(features[0]), inputs.targets)
        return loss, {"acc": accuracy}
