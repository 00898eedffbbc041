"""`entmin`: entropy minimisation (Grandvalet & Bengio 2005): unlabelled predictions are pushed
to be confident, so the decision boundary moves away from dense regions of unlabelled images.

    loss = CE(labelled) + w(t) * mean entropy of softmax(unlabelled logits)

Oliver et al. (2018) weight the entropy 0.06 on CIFAR-10; the weight ramps up as pseudo_label's.
"""

from __future__ import annotations

from dataclasses import dataclass

from ssgen.config import ranged
from ssgen.losses.semi import entropy
from ssgen.methods.semisup.base import Classifier, RampedConfig
from ssgen.registry import METHODS
from ssgen.tasks.base import encode_together


@dataclass
class EntMinConfig(RampedConfig):
    name: str = "entmin"
    weight: float = ranged(0.06, 0.0)


@METHODS.register("entmin")
class EntMin(Classifier):
    Config = EntMinConfig

    def train_step(self, next_batch, progress):
        images, labels = self.labelled(next_batch)
        unlabelled = self.augment(self.unlabelled(next_batch))
        features = encode_together(self.net.encoder, [images, unlabelled])
        loss, logs = self.supervised_loss(self.net.logits(features[0]), labels)
        unlabelled_entropy = entropy(self.net.logits(features[1]))
        logs["loss/entropy"] = unlabelled_entropy.detach()
        return self.update(loss + self.ramp(progress) * unlabelled_entropy, logs)
