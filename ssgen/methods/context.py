"""Context encoder (Pathak et al. 2016): inpaint a hidden region of the image from its context.

The mask (ssgen.pretext.masks) is central, random blocks or random smooth regions covering
`fraction` of the image. As in the paper, the network predicts the whole masked region but
sees a ring of `overlap` pixels of it, the rest filled with the (batch) mean colour; the L2
loss on the masked region weights that ring `overlap_weight` times, so the fill must agree
with its surroundings. With `adversarial`, a discriminator of its own judges the completed
images and the loss is (1 - w) * L2 + w * adversarial (paper: w = 0.001).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ssgen.config import NetConfig, OptimConfig, choice, net, bounded
from ssgen.losses.adversarial import KINDS, d_adversarial_loss, g_adversarial_loss
from ssgen.methods.autoencoder import Autoencoder, AutoencoderConfig, grid_generator
from ssgen.pretext.masks import central_mask, mask_border, random_block_mask, random_region_mask
from ssgen.parallel import global_draw
from ssgen.registry import DISCRIMINATORS, METHODS


@dataclass
class ContextConfig(AutoencoderConfig):
    name: str = "context"
    mask: str = choice("random_region", "central", "random_block", "random_region")
    fraction: float = bounded(0.25, above=0.0, maximum=0.75)  # of the image hidden (at most, for blocks)
    overlap: int = bounded(1, minimum=0)        # visible ring of the masked region, in pixels (paper: 4 at 128 px)
    overlap_weight: float = bounded(10.0, minimum=0.0)  # L2 weight of that ring relative to the hidden part
    adversarial: bool = False
    adversarial_weight: float = bounded(0.001, minimum=0.0, maximum=1.0)
    gan_loss: str = choice("ns", *KINDS)
    discriminator: NetConfig = net(DISCRIMINATORS, width=128)
    d_optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=2e-4, betas=[0.5, 0.999]))


@METHODS.register("context")
class ContextEncoder(Autoencoder):
    Config = ContextConfig

    def __init__(self, cfg: ContextConfig, data):
        super().__init__(cfg, data)
        self.D = (DISCRIMINATORS.get(cfg.discriminator.name, "method.discriminator.name")(
            cfg.discriminator, data.resolution) if cfg.adversarial else None)

    def build_networks(self):
        return {"inpainter": self.autoencoder(3, 3)}

    def optimized(self):
        optimized = super().optimized()
        if self.D is not None:
            optimized["discriminator"] = (list(self.D.parameters()), self.cfg.d_optim)
        return optimized

    def compile_networks(self) -> None:
        super().compile_networks()
        if self.D is not None:
            self.D.compile()

    def mask(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, size, cfg = x.shape[0], x.shape[-1], self.cfg
        if cfg.mask == "central":
            return central_mask(batch, size, cfg.fraction, device=x.device)
        make = random_block_mask if cfg.mask == "random_block" else random_region_mask
        return make(batch, size, cfg.fraction, generator=generator, device=x.device)

    def inpaint(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """-> (mask, ring, network input, completed image, raw prediction)."""
        # global_draw: under torchrun each process's masks are its slice of the global batch's.
        mask = global_draw(lambda rows: self.mask(rows, generator), x)
        ring = mask_border(mask, self.cfg.overlap)
        mean_colour = x.mean(dim=(0, 2, 3), keepdim=True)
        context = torch.where(mask & ~ring, mean_colour, x)
        prediction = torch.tanh(self.nets["inpainter"](context)).float()
        return mask, ring, context, torch.where(mask, prediction, x), prediction

    def loss(self, x):
        mask, ring, _, completed, prediction = self.inpaint(x)
        weights = mask.float() + (self.cfg.overlap_weight - 1) * ring.float()   # ring is inside the mask
        l2 = (weights * (prediction - x) ** 2).sum() / (weights.sum() * x.shape[1]).clamp_min(1)
        logs = {"loss/l2": l2.detach()}
        if self.D is None:
            return l2, logs
        # The discriminator's step first, on the completion as it is now.
        d_loss = d_adversarial_loss(*self.D.score(torch.cat([x, completed.detach()])).chunk(2), self.cfg.gan_loss)
        self.optimize("discriminator", d_loss)
        adversarial = g_adversarial_loss(self.D.score(completed), self.cfg.gan_loss)
        w = self.cfg.adversarial_weight
        loss = (1 - w) * l2 + w * adversarial
        logs.update({"loss/d": d_loss.detach(), "loss/adversarial": adversarial.detach(), "loss/total": loss.detach()})
        return loss, logs

    @torch.no_grad()
    def image_grids(self, real, fixed_noise):
        _, _, context, completed, _ = self.inpaint(real, grid_generator(real))
        return {"input": real, "corrupted": context, "output": completed}
