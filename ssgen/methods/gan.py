"""Unconditional GAN: n_dis D steps per G step, hinge or non-saturating loss, optional EMA of G,
and any self-supervised tasks on D (`tasks`).

    D loss = GAN loss(real, fake)  + Σ d_weight * task loss(task inputs made from REAL images)
    G loss = GAN loss(fake)        + Σ g_weight * task loss(task inputs made from FAKE images)

The GAN loss sees the images as they are; the tasks see their own inputs (rotations, crops,
tiles). Real, fake and every task's inputs share one D pass (D has no batch-dependent layers).
SS-GAN (ssgan.py) is this with the rotation task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch

from ssgen.config import MethodConfig, NetConfig, OptimConfig, by_name, choice, net, bounded
from ssgen.errors import ConfigError
from ssgen.losses.adversarial import KINDS, d_adversarial_loss, g_adversarial_loss
from ssgen.methods.base import Method, NextBatch
from ssgen.nets.base import DiscriminatorConfig
from ssgen.nets.momentum import MomentumCopy
from ssgen.parallel import local_slice, near_equal_sizes, world
from ssgen.registry import DISCRIMINATORS, GENERATORS, METHODS
from ssgen.step import Batch, DataInfo, Progress, as_batch
from ssgen.methods.carrier import carry, prepare_tasks, tasks_follow
from ssgen.tasks.base import TaskConfig, build_tasks, check_tasks, listed_keys, tasks_field


@dataclass
class GANConfig(MethodConfig):
    name: str = "gan"
    loss: str = choice("hinge", *KINDS)
    n_dis: int = bounded(5, minimum=1)              # D steps per G step
    generator: NetConfig = net(GENERATORS, width=256)
    discriminator: DiscriminatorConfig = by_name(DISCRIMINATORS, lambda: DiscriminatorConfig(width=128))
    g_optim: OptimConfig = field(default_factory=lambda: OptimConfig(betas=[0.0, 0.9]))  # SNGAN's Adam
    d_optim: OptimConfig = field(default_factory=lambda: OptimConfig(betas=[0.0, 0.9]))
    z_distribution: str = choice("normal", "normal", "uniform")  # G's latent: N(0, 1), or U(-1, 1) (compare_gan)
    ema_decay: float = bounded(0.0, minimum=0.0, maximum=0.99999)  # EMA of G's weights for sampling; 0: off
    ema_start: int = bounded(0, minimum=0)          # G step the EMA starts averaging at; before it, G's weights
    sample_batch: int = bounded(256, minimum=2)     # G batch when drawing many samples (FID)
    tasks: list[TaskConfig] = tasks_field()         # self-supervised tasks on D, e.g. [{name: rotation}]


def check_ema(cfg) -> None:
    start, steps = cfg.method.ema_start, cfg.trainer.steps
    if start and not cfg.method.ema_decay:
        raise ConfigError(f"method.ema_start: {start} starts an EMA that is off (method.ema_decay: 0); "
                          "expected ema_decay > 0 (e.g. 0.9999), or ema_start 0")
    if start > steps:
        raise ConfigError(f"method.ema_start: {start} is beyond trainer.steps ({steps}): the EMA would never "
                          f"average; expected at most {steps}")


@METHODS.register("gan")
class GAN(Method):
    Config = GANConfig
    generative = True

    def __init__(self, cfg: GANConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.G = GENERATORS.get(cfg.generator.name, "method.generator.name")(cfg.generator, data.resolution)
        self.D = DISCRIMINATORS.get(cfg.discriminator.name, "method.discriminator.name")(
            cfg.discriminator, data.resolution)
        self.G_ema = MomentumCopy(self.G, cfg.ema_decay, start=cfg.ema_start) if cfg.ema_decay > 0 else None
        self.tasks = build_tasks(self.task_configs(), self.D, data, spectral_norm=cfg.discriminator.spectral_norm)
        self.feature_layers = ["penultimate", *self.D.block_names]

    def task_configs(self) -> list[TaskConfig]:
        return list(self.cfg.tasks)

    @classmethod
    def check_config(cls, cfg) -> None:
        check_ema(cfg)
        check_tasks(cfg.method.tasks, cfg, listed_keys(len(cfg.method.tasks)))

    def optimized(self):
        return {"d": ([*self.D.parameters(), *self.tasks.parameters()], self.cfg.d_optim),
                "g": (list(self.G.parameters()), self.cfg.g_optim)}

    # ---------------------------------------------------------------- losses
    def d_loss(self, real: Batch | torch.Tensor, fake: torch.Tensor,
               progress: Progress = Progress()) -> tuple[torch.Tensor, dict]:
        """D's loss: GAN loss(D(real), D(fake)) + Σ d_weight * task loss(D(the task's views of real)).

        One D pass over the rows below (D has no batch-dependent layers). With SS-GAN's rotation
        task, B = batch size and R = rotation_fraction * B:

            rows:  0 ... B-1 | B ... 2B-1 | 2B ... 2B+R-1 | ... 2B+2R-1 | ... 2B+3R-1
            image: real      | fake       | real[:R] 90°  | real[:R] 180° | real[:R] 270°
            read:  critic    | critic     | rotation head, with rows 0 ... R-1 as the 0° views

        The rotation head's labels are then [0]*R + [1]*R + [2]*R + [3]*R (pretext.rotate4)."""
        real = as_batch(real)
        carried = carry(self.D, self.tasks, real, progress, beside=[real.images, fake],
                        weights=[task.cfg.d_weight for task in self.tasks], loss_prefix="d_", posed_on="real")
        real_logits, fake_logits = self.D.critic(torch.cat(carried.beside)).squeeze(1).chunk(2)
        gan_loss = d_adversarial_loss(real_logits, fake_logits, self.cfg.loss)
        loss = gan_loss + carried.loss
        logs = {"d/real_logit": real_logits.detach().mean(), "d/fake_logit": fake_logits.detach().mean()}
        gan_log = {"loss/d_gan": gan_loss.detach()} if self.tasks else {}
        return loss, {**carried.logs, **gan_log, **logs, "loss/d": loss.detach()}

    def g_loss(self, fake: torch.Tensor, progress: Progress = Progress()) -> tuple[torch.Tensor, dict]:
        """G's loss: GAN loss(D(fake)) + Σ g_weight * task loss(D(the task's views of fake)), over the
        tasks with a G side; one D pass, laid out as in d_loss without the real rows."""
        tasks = [task for task in self.tasks if task.g_weight > 0]
        carried = carry(self.D, tasks, Batch.unlabelled(fake), progress, beside=[fake],
                        weights=[task.g_weight for task in tasks], loss_prefix="g_", posed_on="fake")
        gan_loss = g_adversarial_loss(self.D.critic(carried.beside[0]).squeeze(1), self.cfg.loss)
        loss = gan_loss + carried.loss
        gan_log = {"loss/g_gan": gan_loss.detach()} if tasks else {}
        return loss, {"loss/g": loss.detach(), **gan_log, **carried.logs}

    # ---------------------------------------------------------------- training
    def noise(self, n: int, generator: torch.Generator | None = None,
              device: torch.device | None = None) -> torch.Tensor:
        device = device or next(self.G.parameters()).device
        if self.cfg.z_distribution == "uniform":
            return torch.rand(n, self.G.z_dim, generator=generator, device=device) * 2 - 1
        return torch.randn(n, self.G.z_dim, generator=generator, device=device)

    def training_noise(self, n: int) -> torch.Tensor:
        """This process's n latents out of the global batch's (identical to one process's draw)."""
        return local_slice(self.noise(n * world().size))

    steps = ("d", "g")

    def train_step(self, next_batch: NextBatch, progress: Progress = Progress()) -> dict[str, torch.Tensor]:
        logs: dict[str, torch.Tensor] = {}
        for _ in range(self.cfg.n_dis):
            real = as_batch(next_batch())
            prepare_tasks(self.tasks, real, progress)
            logs = self.run_step(self.d_step, real, progress)
        return {**logs, **self.run_step(self.g_step, real, progress)}

    def d_step(self, real: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            fake = self.G(self.training_noise(len(real.images)))
        loss, logs = self.d_loss(real, fake, progress)
        self.optimize("d", loss)
        tasks_follow(self.tasks, self.D, progress)
        return logs

    def g_step(self, real: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        """G's update; `real` gives only the batch size (G's loss sees no real image)."""
        fake = self.G(self.training_noise(len(real.images)))
        loss, logs = self.g_loss(fake, progress)
        self.optimize("g", loss)
        if self.G_ema is not None:
            self.G_ema.update(self.G, progress)
        return logs

    def task_carrier(self):
        return (self.D, self.tasks) if len(self.tasks) else None

    def compile_networks(self) -> None:
        self.G.compile()
        self.D.compile()

    # ---------------------------------------------------------------- evaluation
    @property
    def sampler(self) -> torch.nn.Module:
        return self.G_ema if self.G_ema is not None else self.G

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Samples from the EMA G where there is one. G's batch norm uses batch statistics,
        as in training, so samples are drawn in near-equal batches of at most `sample_batch`."""
        z = self.noise(n, generator, torch.device("cpu"))
        return self.generate(z.split(near_equal_sizes(n, self.cfg.sample_batch)))

    @torch.no_grad()
    def generate(self, latents: Sequence[torch.Tensor], network: torch.nn.Module | None = None) -> torch.Tensor:
        """The sampler's (or `network`'s: the trained G) images of each latent batch, concatenated.
        In train mode G also moves its running statistics and spectral-norm vectors: they are put
        back, so that measuring a run (FD, grids) leaves its checkpoint as training made it."""
        network = self.sampler if network is None else network
        device = next(self.G.parameters()).device
        kept = [buffer.clone() for buffer in network.buffers()]
        try:
            return torch.cat([network(z.to(device)).float() for z in latents])
        finally:
            for buffer, value in zip(network.buffers(), kept):
                buffer.copy_(value)

    def skip_samples(self, n: int, generator: torch.Generator) -> None:
        self.noise(n, generator, torch.device("cpu"))  # the latents `sample` draws, without G's work

    def fixed_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.noise(n, generator, torch.device("cpu"))

    @torch.no_grad()
    def image_grids(self, real: torch.Tensor, fixed_noise: torch.Tensor | None) -> dict[str, torch.Tensor]:
        return {"samples": self.generate([fixed_noise])}

    def compute_features(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        return self.D.block_features(x, layers)
