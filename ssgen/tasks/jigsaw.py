"""Jigsaw (Noroozi & Favaro, ECCV 2016): cut the image into 3x3 tiles with gaps and jitter,
shuffle them by one of `permutations` permutations chosen far apart in Hamming distance
(ssgen/pretext/jigsaw.py), and predict which permutation it was.

The carrying network is the shared tile encoder: every tile goes through it (one pass for all
tiles of the batch), each tile normalised on its own so that tiles cannot be matched by their
colour statistics; a classifier over the 9 tiles' features, concatenated in their shuffled
order, names the permutation. Tiles are 8 px at 32 px images, so the carrier must be
convolutional (D's trunk, ResNet-18), not a ViT with a fixed patch grid.

On a GAN, D solves the puzzles of real images (d_weight); with g_weight > 0, G is rewarded when
D solves the puzzles of its fakes, as SS-GAN does for rotation (not in the Jigsaw paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ssgen.config import bounded
from ssgen.errors import ConfigError
from ssgen.losses.classification import cross_entropy_with_accuracy
from ssgen.nets.heads import mlp
from ssgen.pretext.jigsaw import jigsaw_puzzles, normalise_tiles, permutation_set
from ssgen.registry import TASKS
from ssgen.step import Batch, Progress
from ssgen.tasks.base import Task, TaskConfig, TaskInputs

TILES = 9  # a 3x3 grid


@dataclass
class JigsawConfig(TaskConfig):
    name: str = "jigsaw"
    permutations: int = bounded(100, minimum=2, maximum=1000)  # classes: the paper's best trade-off is 100 to 1000
    fraction: float = bounded(1.0, above=0.0, maximum=1.0)  # share of the batch made into puzzles
    hidden: int = bounded(512, minimum=1)        # the classifier's hidden layer (the paper's fc7: 4096)
    normalise_tiles: bool = True


@TASKS.register("jigsaw")
class Jigsaw(Task):
    Config = JigsawConfig
    has_generator_side = True
    scored_on_test_images = True

    def __init__(self, cfg: JigsawConfig, encoder, data, spectral_norm: bool = False):
        super().__init__(cfg, encoder, data, spectral_norm)
        if hasattr(encoder, "tokens"):
            raise ConfigError(f"the jigsaw task encodes {TILES} small tiles per image; the "
                              f"{type(encoder).__name__} encoder has a fixed patch grid: use resnet or resnet18")
        # Persistent: the set is part of what the classifier learned, and a resume must use it.
        self.register_buffer("permutations", permutation_set(cfg.permutations, TILES))
        self.classifier = mlp(TILES * encoder.feature_dim, cfg.permutations, hidden=cfg.hidden, layers=2,
                              norm=False, spectral_norm=spectral_norm)

    def inputs(self, batch: Batch, progress: Progress) -> TaskInputs:
        return self.inputs_for(batch.images[: round(len(batch.images) * self.cfg.fraction)])

    def inputs_for(self, images: torch.Tensor) -> TaskInputs:
        tiles, labels = jigsaw_puzzles(images, self.permutations)         # [B, 9, C, t, t]
        if self.cfg.normalise_tiles:
            tiles = normalise_tiles(tiles)
        return TaskInputs([tiles.flatten(0, 1)], labels)                  # one batch of B * 9 tiles

    def loss(self, features, inputs, progress):
        per_puzzle = features[0].unflatten(0, (-1, TILES)).flatten(1)     # [B, 9 * F], shuffled order
        loss, accuracy = cross_entropy_with_accuracy(self.classifier(per_puzzle), inputs.targets)
        return loss, {"acc": accuracy}
