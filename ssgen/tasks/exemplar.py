"""Exemplar (Dosovitskiy et al., NIPS 2014), in its two forms:

- `classes`: surrogate classes. `classes` seed images, the first ones the training stream
  delivers (gathered across processes in rank order, kept in a buffer so that a resume uses
  them), each a class of its own; the carrier learns to name the seed image behind a heavily
  augmented copy (preset `exemplar`: zooms, shifts, colour, contrast), with a classifier head.
- `batch`: the batch-wise form that S4L uses (Zhai et al. 2019): `copies` augmented copies of
  each image of the batch, embedded and L2-normalised, copies of one image pulled together by a
  batch-hard triplet loss (the farthest copy of the same image closer, by `margin`, than the
  nearest copy of another).

Neither form defines anything for G on a GAN: the classes are real images, and pulling a
fake's copies together is not a goal for G.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssgen.augment import Augmenter, augmented_views, view_configs
from ssgen.config import bounded, choice
from ssgen.images import to_float, to_uint8
from ssgen.losses.classification import cross_entropy_with_accuracy
from ssgen.nets.heads import mlp
from ssgen.parallel import gather_rows
from ssgen.registry import TASKS
from ssgen.step import Batch, Progress
from ssgen.tasks.base import Task, TaskConfig, TaskInputs


@dataclass
class ExemplarConfig(TaskConfig):
    name: str = "exemplar"
    mode: str = choice("classes", "classes", "batch")
    classes: int = bounded(1000, minimum=2)  # classes mode: seed images, one surrogate class each
    copies: int = bounded(4, minimum=2)  # batch mode: augmented copies of each image (S4L: 8)
    margin: float = bounded(0.5, minimum=0.0)  # batch mode: triplet margin on unit-length embeddings
    embedding: int = bounded(128, minimum=1)  # batch mode: embedding size
    hidden: int = bounded(512, minimum=1)  # classes mode: the classifier's hidden layer
    augment: str = "exemplar"            # an ssgen.augment preset; its first view kind is used


def batch_hard_triplet(embeddings: torch.Tensor, owners: torch.Tensor,
                       margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean of relu(d(farthest same-owner) - d(nearest other-owner) + margin), the share of rows
    whose nearest other row has the same owner), over unit-length embeddings [N, D]."""
    distance = torch.cdist(embeddings, embeddings)
    same = owners[:, None] == owners[None, :]
    itself = torch.eye(len(owners), dtype=torch.bool, device=owners.device)
    hardest_positive = distance.masked_fill(~same | itself, 0.0).amax(1)
    hardest_negative = distance.masked_fill(same, float("inf")).amin(1)
    nearest = distance.masked_fill(itself, float("inf")).argmin(1)
    matched = (owners[nearest] == owners).float().mean()
    return F.relu(hardest_positive - hardest_negative + margin).mean(), matched


@TASKS.register("exemplar")
class Exemplar(Task):
    Config = ExemplarConfig

    def __init__(self, cfg: ExemplarConfig, encoder, data, spectral_norm: bool = False):
        super().__init__(cfg, encoder, data, spectral_norm)
        views = dataclasses.replace(view_configs(cfg.augment)[0], count=cfg.copies if cfg.mode == "batch" else 1)
        self.augment = Augmenter([views], data.resolution)
        if cfg.mode == "classes":
            # The seed images are data the head is trained against: checkpointed, so a resume keeps them.
            self.register_buffer("seeds", torch.zeros(cfg.classes, 3, data.resolution, data.resolution,
                                                      dtype=torch.uint8))
            self.register_buffer("seeds_filled", torch.zeros((), dtype=torch.long))
            self.head = mlp(encoder.feature_dim, cfg.classes, hidden=cfg.hidden, layers=2, norm=False,
                            spectral_norm=spectral_norm)
        else:
            self.head = mlp(encoder.feature_dim, cfg.embedding, spectral_norm=spectral_norm)

    def inputs(self, batch: Batch, progress: Progress) -> TaskInputs:
        if self.cfg.mode == "batch":
            copies = augmented_views(self.augment, batch.images)                 # copies x [B, C, H, W]
            owners = torch.arange(len(batch.images), device=batch.images.device).repeat(len(copies))
            return TaskInputs([torch.cat(copies)], owners)
        self.collect_seeds(batch.images)
        filled = int(self.seeds_filled)  # a host read: cheap, and the draw below depends on it
        chosen = torch.randint(0, filled, (len(batch.images),), device=self.seeds.device)
        (view,) = augmented_views(self.augment, to_float(self.seeds[chosen]))
        return TaskInputs([view], chosen)

    @torch.no_grad()
    def collect_seeds(self, images: torch.Tensor) -> None:
        """Fill the seed buffer with the first images the stream delivers (all processes' rows, in
        rank order, so every process holds the same seeds)."""
        filled, size = int(self.seeds_filled), len(self.seeds)
        if filled == size:
            return
        arriving = gather_rows(to_uint8(images).flatten(1)).view(-1, *self.seeds.shape[1:])
        taken = arriving[: size - filled]
        self.seeds[filled: filled + len(taken)] = taken
        self.seeds_filled += len(taken)

    def loss(self, features, inputs, progress):
        if self.cfg.mode == "batch":
            embeddings = F.normalize(self.head(features[0]).float(), dim=1)
            loss, matched = batch_hard_triplet(embeddings, inputs.targets, self.cfg.margin)
            return loss, {"acc": matched}
        loss, accuracy = cross_entropy_with_accuracy(self.head(features[0]), inputs.targets)
        return loss, {"acc": accuracy}
