"""`pseudo_label` (Lee 2013): the network's own confident predictions on unlabelled images as
hard labels.

    loss = CE(labelled) + w(t) * mean over unlabelled of [max p >= threshold] * CE(p, argmax p)

w(t) ramps linearly from 0 (Lee: so that the early, mostly wrong, predictions do not train the
network on its own mistakes); the threshold is Oliver et al.'s (2018) variant, 0.95 there.
"""

from __future__ import annotations

from dataclasses import dataclass

from ssgen.config import ranged
from ssgen.losses.semi import pseudo_label_loss
from ssgen.methods.semisup.base import Classifier, RampedConfig
from ssgen.registry import METHODS
from ssgen.tasks.base import encode_together


@dataclass
class PseudoLabelConfig(RampedConfig):
    name: str = "pseudo_label"
    threshold: float = ranged(0.95, 0.0, 1.0)  # least top probability for an unlabelled image to count


@METHODS.register("pseudo_label")
class PseudoLabel(Classifier):
    Config = PseudoLabelConfig

    def train_step(self, next_batch, progress):
        images, labels = self.labelled(next_batch)
        unlabelled = self.augment(self.unlabelled(next_batch))
        features = encode_together(self.net.encoder, [images, unlabelled])
        loss, logs = self.supervised_loss(self.net.logits(features[0]), labels)
        pseudo, kept = pseudo_label_loss(self.net.logits(features[1]), self.cfg.threshold)
        weight = self.ramp(progress)
        logs.update({"loss/pseudo_label": pseudo.detach(), "pseudo_label/kept": kept})
        return self.update(loss + weight * pseudo, logs)
