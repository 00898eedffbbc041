"""Denoising autoencoder (Vincent et al. 2008): reconstruct the clean image from a corrupted one.

Corruptions (ssgen.pretext.noise): additive Gaussian noise (level = std in [-1, 1] units),
masking (level = fraction of pixels dropped to grey) or salt-and-pepper (level = fraction of
pixels set to black or white). Loss: mean squared error over the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssgen.config import choice, bounded
from ssgen.errors import ConfigError
from ssgen.methods.autoencoder import Autoencoder, AutoencoderConfig, grid_generator
from ssgen.pretext.noise import NOISES
from ssgen.registry import METHODS
from ssgen.parallel import global_draw


@dataclass
class DenoisingConfig(AutoencoderConfig):
    name: str = "denoising"
    noise: str = choice("gaussian", *NOISES)
    level: float = bounded(0.5, above=0.0)   # Gaussian std, or the corrupted fraction (<= 1)


@METHODS.register("denoising")
class Denoising(Autoencoder):
    Config = DenoisingConfig

    @classmethod
    def check_config(cls, cfg) -> None:
        if cfg.method.noise != "gaussian" and cfg.method.level > 1:
            raise ConfigError(f"method.level={cfg.method.level} is a fraction of pixels for "
                              f"{cfg.method.noise} noise; expected <= 1")

    def build_networks(self):
        return {"denoiser": self.autoencoder(3, 3)}

    def reconstruct(self, x: torch.Tensor, generator: torch.Generator | None = None):
        # global_draw: under torchrun each process's noise is its slice of the global batch's.
        corrupted = global_draw(lambda rows: NOISES[self.cfg.noise](rows, self.cfg.level, generator), x)
        return corrupted, torch.tanh(self.nets["denoiser"](corrupted))

    def loss(self, x):
        _, output = self.reconstruct(x)
        loss = F.mse_loss(output.float(), x)
        return loss, {"loss/reconstruction": loss.detach()}

    @torch.no_grad()
    def image_grids(self, real, fixed_noise):
        corrupted, output = self.reconstruct(real, grid_generator(real))
        return {"input": real, "corrupted": corrupted.clamp(-1, 1), "output": output.float()}
