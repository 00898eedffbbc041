"""An encoder trained by self-supervised tasks alone: RotNet is this with the rotation task
(configs/rotnet_*.yaml); later tasks (jigsaw, exemplar, SimCLR, ...) plug in the same way.

    loss = Σ d_weight * task loss(task inputs made from the batch)

Every task's inputs share one encoder pass per image shape. The encoder is chosen by name
(`resnet`: the SNGAN discriminator's trunk, so its probe compares with a GAN's D).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ssgen.config import MethodConfig, NetConfig, OptimConfig, net
from ssgen.methods.base import Method
from ssgen.registry import ENCODERS, METHODS
from ssgen.step import Batch, DataInfo, Progress, as_batch
from ssgen.methods.carrier import carry, prepare_tasks, tasks_follow
from ssgen.tasks.base import TaskConfig, build_tasks, check_tasks_without_generator, tasks_field
from ssgen.tasks.rotation import RotationConfig


@dataclass
class EncoderConfig(MethodConfig):
    name: str = "encoder"
    encoder: NetConfig = net(ENCODERS, width=128, spectral_norm=False)
    tasks: list[TaskConfig] = tasks_field(RotationConfig)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3, betas=[0.9, 0.999]))


@METHODS.register("encoder")
class Encoder(Method):
    Config = EncoderConfig

    def __init__(self, cfg: EncoderConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.encoder = ENCODERS.get(cfg.encoder.name, "method.encoder.name")(cfg.encoder, data.resolution, 3)
        self.tasks = build_tasks(cfg.tasks, self.encoder, data, spectral_norm=cfg.encoder.spectral_norm)
        self.feature_layers = ["encoder", *self.encoder.block_names]

    @classmethod
    def check_config(cls, cfg) -> None:
        check_tasks_without_generator(cfg, "the encoder method learns from its tasks alone", "[{name: rotation}]")

    def optimized(self):
        return {"encoder": ([*self.encoder.parameters(), *self.tasks.parameters()], self.cfg.optim)}

    steps = ("encoder",)

    def train_step(self, next_batch, progress: Progress = Progress()) -> dict[str, torch.Tensor]:
        batch = as_batch(next_batch())
        prepare_tasks(self.tasks, batch, progress)
        return self.run_step(self.encoder_step, batch, progress)

    def encoder_step(self, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        carried = carry(self.encoder, self.tasks, batch, progress,
                        weights=[task.cfg.d_weight for task in self.tasks], loss_prefix="", posed_on="real")
        self.optimize("encoder", carried.loss)
        tasks_follow(self.tasks, self.encoder, progress)
        return {**carried.logs, "loss/total": carried.loss.detach()}

    def task_carrier(self):
        return (self.encoder, self.tasks) if len(self.tasks) else None

    def compile_networks(self) -> None:
        self.encoder.compile()

    def compute_features(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        return self.encoder.block_features(x, layers)
