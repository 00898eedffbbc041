"""MoCo (He et al. 2020; Chen et al. 2020, 2021): queries from the carrier and a projector,
keys from a momentum copy of both.

- v1: a linear projector, keys matched against a queue of earlier keys (InfoNCE);
- v2: v1 with an MLP projector, blur in the views and a cosine lr (the config's schedule);
- v3: no queue; a predictor on the queries and a deeper projector ending in batch norm; each
  query against the global batch's keys, both ways (losses/contrastive.py). Works on the ViT.

Queries are symmetric in v1/v2 too (each view is a query once), as solo-learn's CIFAR recipes
do, and both views' keys join the queue. Shuffle-BN's equivalent in one process: the keys are
computed in `key_groups` groups of a random permutation of the key batch, so a key encoder
with batch norm cannot match a query to its key through the batch's statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ssgen.config import choice, bounded
from ssgen.losses.contrastive import in_batch_info_nce, info_nce
from ssgen.losses.queue import Queue
from ssgen.nets.heads import mlp
from ssgen.registry import TASKS
from ssgen.tasks.embedding import EmbeddingConfig, EmbeddingTask, follow, matching_accuracy, mlp_projector, teacher


@dataclass
class MoCoConfig(EmbeddingConfig):
    name: str = "moco"
    version: str = choice("v2", "v1", "v2", "v3")
    augment: str = "moco_v2"
    dim: int = bounded(128, minimum=1)           # v1/v2: 128; v3: 256
    temperature: float = bounded(0.2, above=0.0)   # v1: 0.07
    queue: int = bounded(16384, minimum=1)       # v1/v2: negatives kept
    momentum: float = bounded(0.99, minimum=0.0, maximum=1.0)  # base of the key encoder's cosine (v1/v2 papers: 0.999)
    predictor_hidden: int = bounded(4096, minimum=1)  # v3
    key_groups: int = bounded(2, minimum=1)      # shuffle-BN's groups for the key batch


@TASKS.register("moco")
class MoCo(EmbeddingTask):
    Config = MoCoConfig

    def __init__(self, cfg: MoCoConfig, encoder, data, spectral_norm: bool = False):
        super().__init__(cfg, encoder, data, spectral_norm)
        if cfg.version == "v3":
            self.predictor = mlp(cfg.dim, cfg.dim, hidden=cfg.predictor_hidden, layers=2)
        else:
            self.queue = Queue(cfg.queue, cfg.dim)
        self.key_encoder = teacher(encoder, self.projector, cfg.momentum)

    def build_projector(self, in_features):
        if self.cfg.version == "v1":  # a linear projection
            return mlp(in_features, self.cfg.dim)
        return mlp_projector(in_features, self.cfg, last_norm=self.cfg.version == "v3")

    @torch.no_grad()
    def keys(self, views: list[torch.Tensor]) -> list[torch.Tensor]:
        images = torch.cat(views)
        order = torch.randperm(len(images), device=images.device)
        shuffled = torch.cat([self.key_encoder(group) for group in images[order].chunk(self.cfg.key_groups)])
        keys = torch.empty_like(shuffled)
        keys[order] = shuffled
        return list(keys.chunk(len(views)))

    def loss(self, features, inputs, progress):
        q1, q2 = self.project(features)
        k1, k2 = self.keys(inputs.images)
        if self.cfg.version == "v3":
            q1, q2 = self.predictor(torch.cat([q1, q2])).chunk(2)
            loss = in_batch_info_nce(q1, k2, self.cfg.temperature) + in_batch_info_nce(q2, k1, self.cfg.temperature)
        else:
            negatives = self.queue.keys.clone()  # the queue as it was before this batch's keys
            loss = (info_nce(q1, k2, negatives, self.cfg.temperature)
                    + info_nce(q2, k1, negatives, self.cfg.temperature)) / 2
            self.queue.enqueue(torch.cat([k1, k2]))
        return loss, {"acc": matching_accuracy(q1, k2)}

    def after_update(self, encoder, progress):
        follow(self.key_encoder, encoder, self.projector, progress)
