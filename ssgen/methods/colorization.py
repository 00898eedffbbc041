"""Colorization (Zhang et al. 2016): predict the ab colour channels from the lightness L, as a
per-pixel classification over the in-gamut ab bins.

Targets are soft-encoded (a Gaussian of width `sigma` over the `neighbours` nearest bins).
Each pixel's loss is weighted by the rebalancing weight of its nearest bin, so rare saturated
colours are not drowned by the greys: weights = 1 / ((1 - gamma) * prior + gamma / Q),
scaled to expectation 1 under the prior. The prior is the ab histogram of the first
`prior_batches` training batches, kept in a buffer so that it is checkpointed (a method
never reads a file). Colours are shown by the annealed mean (temperature T).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssgen.config import bounded
from ssgen.methods.autoencoder import Autoencoder, AutoencoderConfig
from ssgen.pretext.color import (ab_bins, annealed_mean, join_lab, normalize_l, rebalancing_weights,
                                 soft_encode, split_lab)
from ssgen.registry import METHODS


@dataclass
class ColorizationConfig(AutoencoderConfig):
    name: str = "colorization"
    neighbours: int = bounded(5, minimum=1)             # bins of a soft-encoded target
    sigma: float = bounded(5.0, above=0.0)      # their Gaussian width, in ab units
    gamma: float = bounded(0.5, minimum=0.0, maximum=1.0)  # share of the uniform in the mix (1: no rebalancing)
    prior_batches: int = bounded(100, minimum=1)        # training batches the ab prior is counted over
    temperature: float = bounded(0.38, above=0.0)  # annealed-mean decoding, for display


@METHODS.register("colorization")
class Colorization(Autoencoder):
    Config = ColorizationConfig

    def __init__(self, cfg: ColorizationConfig, data):
        super().__init__(cfg, data)
        self.register_buffer("ab_bins", ab_bins().float(), persistent=False)
        self.register_buffer("ab_counts", torch.zeros(len(self.ab_bins)))
        self.register_buffer("prior_batches_seen", torch.zeros((), dtype=torch.long))

    def build_networks(self):
        return {"colorizer": self.autoencoder(1, len(ab_bins()))}

    def encoder_inputs(self, x):
        return {"colorizer": normalize_l(split_lab(x)[0])}

    @torch.no_grad()
    def update_prior(self, nearest: torch.Tensor) -> None:
        # Without a branch on the count: no host sync in the train step.
        counting = (self.prior_batches_seen < self.cfg.prior_batches).float()
        self.ab_counts += counting * torch.bincount(nearest.flatten(), minlength=len(self.ab_bins))
        self.prior_batches_seen += 1

    def class_weights(self) -> torch.Tensor:
        return rebalancing_weights(self.ab_counts, self.cfg.gamma)

    def loss(self, x):
        L, ab = split_lab(x)
        target = soft_encode(ab, self.ab_bins, self.cfg.neighbours, self.cfg.sigma)   # [B, Q, H, W]
        nearest = target.argmax(dim=1)
        self.update_prior(nearest)
        logits = self.nets["colorizer"](normalize_l(L)).float()
        per_pixel = F.cross_entropy(logits, target, reduction="none")                 # [B, H, W]
        loss = (self.class_weights()[nearest] * per_pixel).mean()
        return loss, {"loss/colorization": loss.detach(), "loss/unweighted_ce": per_pixel.detach().mean()}

    @torch.no_grad()
    def image_grids(self, real, fixed_noise):
        L, ab = split_lab(real)
        logits = self.nets["colorizer"](normalize_l(L))
        colorized = join_lab(L, annealed_mean(logits, self.ab_bins, self.cfg.temperature))
        return {"input": real, "corrupted": join_lab(L, torch.zeros_like(ab)), "output": colorized}
