"""`entmin`: entropy minimisation (Grandvalet & Bengio 2005): unlabelled predictions are pushed
to be confident, so the decision boundary moves away from dense regions of unlabelled images.

    loss = CE(labelled) + w(t) * mean entropy of softmax(unlabelled logits)

Oliver et al. (2018) weight the entropy 0.06 on CIFAR-10; the weight ramps up as pseudo_label's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ssgen.config import ranged
from ssgen.losses.semi import entropy
from ssgen.methods.semisup.base import LABELLED, UNLABELLED, Classifier, RampedConfig
from ssgen.registry import METHODS
from ssgen.tasks.base import encode_together


@dataclass
class EntMinConfig(RampedConfig):
    name: str = "entmin"
    weight: float = ranged(0.06, 0.0)


@METHODS.register("entmin")
class EntMin(Classifier):
    Config = EntMinConfig

    draws = (LABELLED, UNLABELLED)

    def classify_step(self, batch, progress):
        parts = self.parts(batch)
        labelled, unlabelled = parts[LABELLED], parts[UNLABELLED]
        features = encode_together(self.net.encoder, [self.augment(labelled.images), self.augment(unlabelled.images)])
        loss, logs = self.supervised_loss(self.net.logits(features[0]), labelled.labels)
        unlabelled_entropy = entropy(self.net.logits(features[1]))
        logs["loss/entropy"] = unlabelled_entropy.detach()
        return self.update(loss + self.ramped_weight * unlabelled_entropy, logs)
