"""SS-GAN (Chen et al., CVPR 2019): the GAN plus a 4-way rotation head on D's pooled features.

    D loss = GAN loss(upright real, upright fake) + beta  * CE(rotation | rotated REAL)
    G loss = GAN loss(upright fake)               + alpha * CE(rotation | rotated FAKE)

Each image of a subset of the batch (`rotation_fraction`) appears in all four rotations, and
upright and rotated images share one concatenated D forward pass. `rotation_only` drops the
GAN loss and the G step: the RotNet baseline trained on D's architecture.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssgen.config import ranged
from ssgen.errors import ConfigError
from ssgen.methods.base import DataInfo
from ssgen.methods.gan import GAN, GANConfig, d_adversarial_loss, g_adversarial_loss
from ssgen.nets import sn_linear
from ssgen.pretext.rotation import rotate4
from ssgen.registry import METHODS
from ssgen.parallel import world


@dataclass
class SSGANConfig(GANConfig):
    name: str = "ssgan"
    beta: float = ranged(1.0, 0.0)               # weight of D's rotation loss on real images
    alpha: float = ranged(0.2, 0.0)              # weight of G's rotation loss on fake images
    rotation_fraction: float = ranged(0.25, 0.0, 1.0, low_open=True)  # share of the batch rotated 4 ways
    rotation_only: bool = False


@METHODS.register("ssgan")
class SSGAN(GAN):
    Config = SSGANConfig

    def __init__(self, cfg: SSGANConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.rotation_head = sn_linear(self.D.feature_dim, 4, enabled=cfg.discriminator.spectral_norm)
        self.trains_generator = not cfg.rotation_only

    @classmethod
    def check_config(cls, cfg) -> None:
        # Under torchrun each process rotates that fraction of its own slice of the batch.
        processes = world()[1]
        rotated = cfg.trainer.batch_size // processes * cfg.method.rotation_fraction
        if rotated < 1 or rotated != int(rotated):
            where = f" per process ({processes} processes)" if processes > 1 else ""
            raise ConfigError(
                f"method.rotation_fraction={cfg.method.rotation_fraction} of trainer.batch_size="
                f"{cfg.trainer.batch_size} is {rotated:g} images{where}; expected a whole number >= 1 "
                "(e.g. a batch divisible by 4 with the default 0.25)")

    def d_parameters(self) -> list[torch.nn.Parameter]:
        return [*self.D.parameters(), *self.rotation_head.parameters()]

    def rotation_loss(self, features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.rotation_head(features)
        accuracy = (logits.detach().argmax(1) == labels).float().mean()
        return F.cross_entropy(logits.float(), labels), accuracy

    def rotated_subset(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Under torchrun: the first fraction of each process's slice, not of the global batch
        # (another, equally random subset of the shuffled batch; the same with fraction 1).
        return rotate4(x[: round(x.shape[0] * self.cfg.rotation_fraction)])

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        rotated, labels = self.rotated_subset(real)
        upright = [] if self.cfg.rotation_only else [real, fake]
        features = self.D(torch.cat([*upright, rotated]))
        rot_loss, rot_acc = self.rotation_loss(features[-len(rotated):], labels)
        loss = self.cfg.beta * rot_loss
        logs = {"loss/d_rotation": rot_loss.detach(), "rotation/acc_real": rot_acc}
        if not self.cfg.rotation_only:
            real_logits, fake_logits = self.D.critic(features[: 2 * len(real)]).squeeze(1).chunk(2)
            gan_loss = d_adversarial_loss(real_logits, fake_logits, self.cfg.loss)
            loss = loss + gan_loss
            logs.update({"loss/d_gan": gan_loss.detach(), "d/real_logit": real_logits.detach().mean(),
                         "d/fake_logit": fake_logits.detach().mean()})
        logs["loss/d"] = loss.detach()
        return loss, logs

    def g_loss(self, fake: torch.Tensor) -> tuple[torch.Tensor, dict]:
        rotated, labels = self.rotated_subset(fake)
        features = self.D(torch.cat([fake, rotated]))
        gan_loss = g_adversarial_loss(self.D.critic(features[: len(fake)]).squeeze(1), self.cfg.loss)
        rot_loss, rot_acc = self.rotation_loss(features[len(fake):], labels)
        loss = gan_loss + self.cfg.alpha * rot_loss
        return loss, {"loss/g": loss.detach(), "loss/g_gan": gan_loss.detach(),
                      "loss/g_rotation": rot_loss.detach(), "rotation/acc_fake": rot_acc}
