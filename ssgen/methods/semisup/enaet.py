"""`enaet` (Wang et al. 2019, EnAET: an ensemble of auto-encoding transformations): the
classifier's encoder also learns to tell, from an image and its transformed copy, the parameters
of the transformation (AET, Zhang et al. 2019), for an ensemble of transformations; and its
predictions on t(x) are held to those on x.

    loss = CE(labelled) + aet_weight * mean over kinds of MSE(head_kind([f(x), f(t(x))]), params of t)
                        + w(t) * mean over kinds of KL(p(x) || p(t(x)))       on unlabelled x

The kinds (ssgen/pretext/transformations.py): projective, affine, similarity, euclidean, and the
non-spatial ccbs (colour, contrast, brightness, sharpness). One regression head per kind, on the
concatenated features. The paper builds this on MixMatch; here it is built on the plain classifier,
so its figures show what the transformations add to `supervised`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ssgen.config import bounded
from ssgen.errors import ConfigError
from ssgen.losses.semi import consistency_kl
from ssgen.methods.semisup.base import LABELLED, UNLABELLED, Classifier, RampedConfig
from ssgen.nets.heads import mlp
from ssgen.pretext.transformations import PARAMETERS, TRANSFORMATIONS, random_transformation
from ssgen.registry import METHODS
from ssgen.methods.carrier import encode_together


@dataclass
class EnAETConfig(RampedConfig):
    name: str = "enaet"
    transformations: list[str] = field(default_factory=lambda: list(TRANSFORMATIONS))
    aet_weight: float = bounded(1.0, minimum=0.0)  # of the parameter regression, summed over the kinds' mean
    hidden: int = bounded(128, minimum=1)  # the regression heads' hidden layer
    # `weight` (RampedConfig): the KL consistency's, ramped up over the run


@METHODS.register("enaet")
class EnAET(Classifier):
    Config = EnAETConfig

    def build_networks(self, cfg: EnAETConfig) -> None:
        super().build_networks(cfg)
        dim = self.net.encoder.feature_dim
        self.regressors = nn.ModuleDict({kind: mlp(2 * dim, PARAMETERS[kind], hidden=cfg.hidden, layers=2, norm=False)
                                         for kind in cfg.transformations})

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        kinds = cfg.method.transformations
        if not kinds:
            raise ConfigError(f"method.transformations is empty; expected some of {', '.join(TRANSFORMATIONS)}")
        for index, kind in enumerate(kinds):
            if kind not in TRANSFORMATIONS:
                raise ConfigError(f"method.transformations[{index}]: unknown transformation {kind!r}; "
                                  f"valid: {', '.join(TRANSFORMATIONS)}")
        if len(set(kinds)) < len(kinds):
            raise ConfigError(f"method.transformations lists a kind twice: {kinds}")

    def optimized(self):
        return {"classifier": ([*self.net.parameters(), *self.regressors.parameters()], self.cfg.optim)}

    draws = (LABELLED, UNLABELLED)

    def classify_step(self, batch, progress):
        parts = self.parts(batch)
        images, labels = self.augment(parts[LABELLED].images), parts[LABELLED].labels
        unlabelled = self.augment(parts[UNLABELLED].images)
        transformed = [random_transformation(kind, unlabelled) for kind in self.cfg.transformations]
        features = encode_together(self.net.encoder, [images, unlabelled, *[t for t, _ in transformed]])
        loss, logs = self.supervised_loss(self.net.logits(features[0]), labels)
        original, original_logits = features[1], self.net.logits(features[1])
        aet, kl = 0.0, 0.0
        for kind, (_, parameters), seen in zip(self.cfg.transformations, transformed, features[2:]):
            predicted = self.regressors[kind](torch.cat([original, seen], 1))
            regression = F.mse_loss(predicted.float(), parameters.float())
            logs[f"loss/aet_{kind}"] = regression.detach()
            aet = aet + regression / len(transformed)
            kl = kl + consistency_kl(original_logits, self.net.logits(seen)) / len(transformed)
        logs.update({"loss/aet": aet.detach(), "loss/kl": kl.detach()})
        return self.update(loss + self.cfg.aet_weight * aet + self.ramped_weight * kl, logs)
