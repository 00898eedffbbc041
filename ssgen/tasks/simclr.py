"""SimCLR (Chen et al., ICML 2020): two augmented views of each image, the carrier's features
through a projector MLP, NT-Xent over the 2N views with a temperature; under torchrun the
negatives are the global batch's (losses/contrastive.py). SimCLR v2's deeper projector is
`layers: 3`."""

from __future__ import annotations

from dataclasses import dataclass

from ssgen.config import bounded
from ssgen.losses.contrastive import nt_xent
from ssgen.registry import TASKS
from ssgen.tasks.embedding import EmbeddingConfig, EmbeddingTask, matching_accuracy


@dataclass
class SimCLRConfig(EmbeddingConfig):
    name: str = "simclr"
    augment: str = "simclr"
    temperature: float = bounded(0.2, above=0.0)   # solo-learn's CIFAR value (paper: 0.5 at batch 512)


@TASKS.register("simclr")
class SimCLR(EmbeddingTask):
    Config = SimCLRConfig

    def loss(self, features, inputs, progress):
        z1, z2 = self.project(features)
        return nt_xent(z1, z2, self.cfg.temperature), {"acc": matching_accuracy(z1, z2)}
