"""Unconditional GAN baseline: n_dis D steps per G step, hinge or non-saturating loss, optional EMA of G.

SS-GAN (ssgan.py) subclasses this and overrides only `d_loss` and `g_loss`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Sequence

import torch
import torch.nn.functional as F

from ssgen.config import MethodConfig, NetConfig, OptimConfig, choice, ranged
from ssgen.methods.base import DataInfo, Method, NextBatch
from ssgen.registry import DISCRIMINATORS, GENERATORS, METHODS
from ssgen.parallel import local_slice, world


def d_adversarial_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    # non-saturating: -log sigmoid(real) - log(1 - sigmoid(fake))
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_adversarial_loss(fake_logits: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()


@dataclass
class GANConfig(MethodConfig):
    name: str = "gan"
    loss: str = choice("hinge", "hinge", "ns")
    n_dis: int = ranged(5, 1)                       # D steps per G step
    generator: NetConfig = field(default_factory=lambda: NetConfig(width=256))
    discriminator: NetConfig = field(default_factory=lambda: NetConfig(width=128))
    g_optim: OptimConfig = field(default_factory=OptimConfig)
    d_optim: OptimConfig = field(default_factory=OptimConfig)
    ema_decay: float = ranged(0.0, 0.0, 0.99999)    # EMA of G's weights for sampling; 0: off
    sample_batch: int = ranged(256, 2)              # G batch when drawing many samples (FID)


def adam(params, cfg: OptimConfig) -> torch.optim.Adam:
    # fused Adam is one kernel per step on CUDA; the CPU build falls back to the default path.
    fused = all(p.is_cuda for p in params) or None
    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay,
                            fused=fused)


@METHODS.register("gan")
class GAN(Method):
    Config = GANConfig
    generative = True

    def __init__(self, cfg: GANConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.G = GENERATORS.get(cfg.generator.name, "method.generator.name")(cfg.generator, data.resolution)
        self.D = DISCRIMINATORS.get(cfg.discriminator.name, "method.discriminator.name")(
            cfg.discriminator, data.resolution)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if cfg.ema_decay > 0 else None
        self.feature_layers = ["penultimate", *self.D.block_names]
        self.trains_generator = True

    def d_parameters(self) -> list[torch.nn.Parameter]:
        """Everything D's optimizer updates (SS-GAN adds its rotation head)."""
        return list(self.D.parameters())

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        # Built lazily, after the trainer moved the method to its device (fused Adam needs that).
        if not hasattr(self, "_optimizers"):
            self._optimizers = {"d": adam(self.d_parameters(), self.cfg.d_optim),
                                "g": adam(list(self.G.parameters()), self.cfg.g_optim)}
        return self._optimizers

    # ---------------------------------------------------------------- losses
    def critic(self, x: torch.Tensor) -> torch.Tensor:
        return self.D.critic(self.D(x)).squeeze(1)

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        # One D pass over real and fake together: fewer, larger kernels (D has no batch norm).
        real_logits, fake_logits = self.critic(torch.cat([real, fake])).chunk(2)
        loss = d_adversarial_loss(real_logits, fake_logits, self.cfg.loss)
        return loss, {"loss/d": loss.detach(), "d/real_logit": real_logits.detach().mean(),
                      "d/fake_logit": fake_logits.detach().mean()}

    def g_loss(self, fake: torch.Tensor) -> tuple[torch.Tensor, dict]:
        loss = g_adversarial_loss(self.critic(fake), self.cfg.loss)
        return loss, {"loss/g": loss.detach()}

    # ---------------------------------------------------------------- training
    def noise(self, n: int, generator: torch.Generator | None = None,
              device: torch.device | None = None) -> torch.Tensor:
        device = device or next(self.G.parameters()).device
        return torch.randn(n, self.G.z_dim, generator=generator, device=device)

    def training_noise(self, n: int) -> torch.Tensor:
        """This process's n latents out of the global batch's (identical to one process's draw)."""
        return local_slice(self.noise(n * world()[1]))

    def train_step(self, next_batch: NextBatch) -> dict[str, torch.Tensor]:
        opt = self.optimizers()
        logs: dict[str, torch.Tensor] = {}
        for _ in range(self.cfg.n_dis):
            real = next_batch()
            fake = None  # rotation-only training (RotNet) needs no fakes
            if self.trains_generator:
                with torch.no_grad():
                    fake = self.G(self.training_noise(real.shape[0]))
            loss, logs = self.d_loss(real, fake)
            self.optimize(opt["d"], loss)
        if self.trains_generator:
            fake = self.G(self.training_noise(real.shape[0]))
            loss, g_logs = self.g_loss(fake)
            self.optimize(opt["g"], loss)
            logs.update(g_logs)
            self.update_ema()
        return logs

    @torch.no_grad()
    def update_ema(self) -> None:
        if self.G_ema is None:
            return
        ema, live = list(self.G_ema.parameters()), list(self.G.parameters())
        torch._foreach_lerp_(ema, live, 1.0 - self.cfg.ema_decay)
        for ema_buffer, buffer in zip(self.G_ema.buffers(), self.G.buffers()):
            ema_buffer.copy_(buffer)

    def compile_networks(self) -> None:
        self.G.compile()
        self.D.compile()

    # ---------------------------------------------------------------- evaluation
    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Samples from the EMA G where there is one. G's batch norm uses batch statistics,
        as in training, so samples are drawn in batches of `sample_batch`."""
        G = self.G_ema if self.G_ema is not None else self.G
        device = next(G.parameters()).device
        z = self.noise(n, generator, torch.device("cpu"))
        # Near-equal chunks: never a batch of one, whose batch statistics are undefined.
        chunks = z.tensor_split(-(-n // self.cfg.sample_batch))
        return torch.cat([G(chunk.to(device)).float() for chunk in chunks])

    def skip_samples(self, n: int, generator: torch.Generator) -> None:
        self.noise(n, generator, torch.device("cpu"))  # the latents `sample` draws, without G's work

    def fixed_noise(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.noise(n, generator, torch.device("cpu"))

    @torch.no_grad()
    def image_grids(self, real: torch.Tensor, fixed_noise: torch.Tensor | None) -> dict[str, torch.Tensor]:
        G = self.G_ema if self.G_ema is not None else self.G
        device = next(G.parameters()).device
        return {"samples": G(fixed_noise.to(device)).float()}

    @torch.no_grad()
    def features(self, x: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        return self.D.block_features(x, self.check_features(layers))
