"""Split-brain autoencoder (Zhang et al. 2017): two half-width networks, one predicting the
ab channels from L, the other L from ab; the representation is both encoders' features
concatenated (as wide as one full-width encoder).

`loss: classification` (the paper's better choice) is cross-entropy over quantized values:
the in-gamut ab bins and 50 L bins; `regression` is L2 on the normalised channels. Predicted
bins are shown by their annealed mean (temperature T).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssgen.config import choice, bounded
from ssgen.methods.autoencoder import Autoencoder, AutoencoderConfig
from ssgen.pretext.color import (L_BINS, ab_bins, ab_to_bin, annealed_mean, denormalize_ab, denormalize_l,
                                 join_lab, l_bin_centres, l_to_bin, normalize_ab, normalize_l, split_lab)
from ssgen.registry import METHODS


@dataclass
class SplitBrainConfig(AutoencoderConfig):
    name: str = "split_brain"
    loss: str = choice("classification", "classification", "regression")
    temperature: float = bounded(0.38, above=0.0)  # annealed-mean decoding, for display


@METHODS.register("split_brain")
class SplitBrain(Autoencoder):
    Config = SplitBrainConfig

    def __init__(self, cfg: SplitBrainConfig, data):
        super().__init__(cfg, data)
        self.register_buffer("ab_bins", ab_bins().float(), persistent=False)
        self.register_buffer("l_bins", l_bin_centres(), persistent=False)

    def build_networks(self):
        classify = self.cfg.loss == "classification"
        return {"l_to_ab": self.autoencoder(1, len(ab_bins()) if classify else 2, width_divisor=2),
                "ab_to_l": self.autoencoder(2, L_BINS if classify else 1, width_divisor=2)}

    def encoder_inputs(self, x):
        L, ab = split_lab(x)
        return {"l_to_ab": normalize_l(L), "ab_to_l": normalize_ab(ab)}

    def predictions(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw outputs of both halves (float32): logits, or normalised channels."""
        views = self.encoder_inputs(x)
        return {name: net(views[name]).float() for name, net in self.nets.items()}

    def loss(self, x):
        L, ab = split_lab(x)
        out = self.predictions(x)
        if self.cfg.loss == "classification":
            ab_loss = F.cross_entropy(out["l_to_ab"], ab_to_bin(ab, self.ab_bins))
            l_loss = F.cross_entropy(out["ab_to_l"], l_to_bin(L))
        else:
            ab_loss = F.mse_loss(out["l_to_ab"], normalize_ab(ab))
            l_loss = F.mse_loss(out["ab_to_l"], normalize_l(L))
        loss = ab_loss + l_loss
        return loss, {"loss/split_brain": loss.detach(), "loss/l_to_ab": ab_loss.detach(),
                      "loss/ab_to_l": l_loss.detach()}

    @torch.no_grad()
    def image_grids(self, real, fixed_noise):
        L, ab = split_lab(real)
        out = self.predictions(real)
        if self.cfg.loss == "classification":
            predicted_ab = annealed_mean(out["l_to_ab"], self.ab_bins, self.cfg.temperature)
            predicted_l = annealed_mean(out["ab_to_l"], self.l_bins, self.cfg.temperature)
        else:
            predicted_ab, predicted_l = denormalize_ab(out["l_to_ab"]), denormalize_l(out["ab_to_l"])
        return {"input": real,
                "corrupted": join_lab(L, torch.zeros_like(ab)),                      # what l_to_ab sees
                "corrupted_ab": join_lab(torch.full_like(L, 50.0), ab),               # what ab_to_l sees
                "output": join_lab(L, predicted_ab),                                  # colourised
                "output_l": join_lab(predicted_l, ab)}
