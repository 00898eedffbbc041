"""`pseudo_label` (Lee 2013): the network's own confident predictions on unlabelled images as
hard labels.

    loss = CE(labelled) + w(t) * mean over unlabelled of [max p >= threshold] * CE(p, argmax p)

w(t) ramps linearly from 0 (Lee: so that the early, mostly wrong, predictions do not train the
network on its own mistakes); the threshold is Oliver et al.'s (2018) variant, 0.95 there.
"""

from __future__ import annotations

from dataclasses import dataclass

from ssgen.config import bounded
from ssgen.losses.semi import pseudo_label_loss
from ssgen.methods.semisup.base import LABELLED, UNLABELLED, Classifier, RampedConfig
from ssgen.registry import METHODS


@dataclass
class PseudoLabelConfig(RampedConfig):
    name: str = "pseudo_label"
    threshold: float = bounded(0.95, minimum=0.0, maximum=1.0)  # least top probability for an unlabelled image to count


@METHODS.register("pseudo_label")
class PseudoLabel(Classifier):
    Config = PseudoLabelConfig

    draws = (LABELLED, UNLABELLED)

    def classify_step(self, batch, progress):
        loss, logs, unlabelled_logits = self.supervised_and_unlabelled(batch)
        pseudo, kept = pseudo_label_loss(unlabelled_logits, self.cfg.threshold)
        logs.update({"loss/pseudo_label": pseudo.detach(), "pseudo_label/kept": kept})
        return self.update(loss + self.ramped_weight * pseudo, logs)
