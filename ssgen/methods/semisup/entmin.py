"""`entmin`: entropy minimisation (Grandvalet & Bengio 2005): unlabelled predictions are pushed
to be confident, so the decision boundary moves away from dense regions of unlabelled images.

    loss = CE(labelled) + w(t) * mean entropy of softmax(unlabelled logits)

Oliver et al. (2018) weight the entropy 0.06 on CIFAR-10; the weight ramps up as pseudo_label's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ssgen.config import bounded
from ssgen.losses.semi import entropy
from ssgen.methods.semisup.base import LABELLED, UNLABELLED, Classifier, RampedConfig
from ssgen.registry import METHODS


@dataclass
class EntMinConfig(RampedConfig):
    name: str = "entmin"
    weight: float = bounded(0.06, minimum=0.0)


@METHODS.register("entmin")
class EntMin(Classifier):
    Config = EntMinConfig

    draws = (LABELLED, UNLABELLED)

    def classify_step(self, batch, progress):
        loss, logs, unlabelled_logits = self.supervised_and_unlabelled(batch)
        unlabelled_entropy = entropy(unlabelled_logits)
        logs["loss/entropy"] = unlabelled_entropy.detach()
        return self.update(loss + self.ramped_weight * unlabelled_entropy, logs)
