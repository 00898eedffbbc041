"""SS-GAN (Chen et al., CVPR 2019): the GAN (gan.py) with the rotation task (tasks/rotation.py)
on its discriminator, in the paper's terms:

    D loss = GAN loss(upright real, upright fake) + beta  * CE(rotation head(D(rotated REAL)), angles)
    G loss = GAN loss(upright fake)               + alpha * CE(rotation head(D(rotated FAKE)), angles)

`beta`, `alpha` and `rotation_fraction` are the rotation task's d_weight, g_weight and
fraction. Further tasks listed under `tasks` join it on D. RotNet, the rotation task without a
GAN, is the `encoder` method with the rotation task (configs/rotnet_*.yaml).

One D step, and where each part of it is written:

    n_dis times per G step: a real batch                   GAN.train_step          methods/gan.py
    fakes from G, without G's gradients                    GAN.d_step              methods/gan.py
    the rows D sees (drawn there) and the loss's sum       GAN.d_loss              methods/gan.py
    rotate real[:R] by 90, 180, 270; labels 0-3            Rotation.inputs         tasks/rotation.py
    one D pass; the 0-degree rows reuse real's features    carry                   methods/carrier.py
    GAN loss: hinge (or non-saturating)                    d_adversarial_loss      losses/adversarial.py
    beta * CE(rotation head(features), angles)             Rotation.loss, carry    tasks/rotation.py
    D's update                                             Method.optimize         methods/base.py
"""

from __future__ import annotations

from dataclasses import dataclass

from ssgen.config import ranged
from ssgen.methods.gan import GAN, GANConfig, check_ema
from ssgen.registry import METHODS
from ssgen.tasks.base import check_tasks, listed_keys
from ssgen.tasks.rotation import RotationConfig

# The rotation task's fields under the names SS-GAN's config gives them.
PAPER_NAMES = {"d_weight": "method.beta", "g_weight": "method.alpha", "fraction": "method.rotation_fraction"}


@dataclass
class SSGANConfig(GANConfig):
    name: str = "ssgan"
    beta: float = ranged(1.0, 0.0)               # weight of D's rotation loss on real images
    alpha: float = ranged(0.2, 0.0)              # weight of G's rotation loss on fake images
    rotation_fraction: float = ranged(0.25, 0.0, 1.0, low_open=True)  # share of the batch rotated 4 ways


def rotation_config(cfg: SSGANConfig) -> RotationConfig:
    return RotationConfig(d_weight=cfg.beta, g_weight=cfg.alpha, fraction=cfg.rotation_fraction)


@METHODS.register("ssgan")
class SSGAN(GAN):
    Config = SSGANConfig

    def task_configs(self):
        return [rotation_config(self.cfg), *self.cfg.tasks]

    @classmethod
    def check_config(cls, cfg) -> None:
        check_ema(cfg)
        tasks = [rotation_config(cfg.method), *cfg.method.tasks]
        check_tasks(tasks, cfg, [lambda field: PAPER_NAMES.get(field, f"method.{field}"),
                                 *listed_keys(len(cfg.method.tasks))])

    @property
    def rotation_head(self):
        """The rotation task's linear head on D's features."""
        return self.tasks[0].head
