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

from ssgen.config import bounded, same_as
from ssgen.methods.gan import GAN, GANConfig, check_ema
from ssgen.registry import METHODS
from ssgen.tasks.base import check_tasks, listed_keys
from ssgen.tasks.rotation import Rotation, RotationConfig

# SS-GAN's name for each field of its rotation task.
PAPER_NAMES = {"beta": "d_weight", "alpha": "g_weight", "rotation_fraction": "fraction"}
TASK_NAMES = {task_field: paper for paper, task_field in PAPER_NAMES.items()}


@dataclass
class SSGANConfig(GANConfig):
    name: str = "ssgan"
    beta: float = same_as(RotationConfig, "d_weight")             # weight of D's rotation loss on real images
    alpha: float = bounded(Rotation.default_g_weight, minimum=0.0)  # weight of G's rotation loss on fake images
    rotation_fraction: float = same_as(RotationConfig, "fraction")  # share of the batch rotated 4 ways


def ssgan_tasks(cfg: SSGANConfig) -> list:
    """The rotation task that SS-GAN's own fields configure, then any further tasks on D."""
    rotation = RotationConfig(**{task_field: getattr(cfg, paper) for paper, task_field in PAPER_NAMES.items()})
    return [rotation, *cfg.tasks]


@METHODS.register("ssgan")
class SSGAN(GAN):
    Config = SSGANConfig

    def task_configs(self):
        return ssgan_tasks(self.cfg)

    @classmethod
    def check_config(cls, cfg) -> None:
        check_ema(cfg)
        check_tasks(ssgan_tasks(cfg.method), cfg, [lambda field: f"method.{TASK_NAMES.get(field, field)}",
                                                   *listed_keys(len(cfg.method.tasks))])

    @property
    def rotation_head(self):
        """The rotation task's linear head on D's features."""
        return self.tasks[0].head
