"""ssgen's parts for a training loop of one's own: the few functions that take plain tensors and
arguments where the rest of ssgen takes a config. `import ssgen` exports them with the losses,
the augmenter and the checkpoint loader (ssgen/__init__.py lists the public API)."""

from __future__ import annotations

from pathlib import Path

import torch

from ssgen.augment import Augmenter, view_configs
from ssgen.config import DataConfig, ProbeConfig
from ssgen.data import build_dataset
from ssgen.eval.probe import fit_probe
from ssgen.losses.classification import cross_entropy_with_accuracy
from ssgen.pretext.rotation import rotate4
from ssgen.rebuild import LoadedRun, load_run


def load_images(name: str = "shapes", split: str = "train", size: int = 0, path: str = "",
                resolution: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [N,3,R,R] and int64 labels [N] (-1: none) of a dataset by name (`shapes`,
    embedded; `folder` with `path` a folder or .zip of images; `cifar10` with torchvision's root
    as `path`). `size`: a seeded random subset of that many (0: all)."""
    sizes = {"train_size": size} if split == "train" else {"test_size": size}
    images = build_dataset(DataConfig(name=name, path=path, resolution=resolution, seed=seed, **sizes), split)
    return images.get(slice(None))


def augmenter(preset: str, resolution: int) -> Augmenter:
    """The views of an augmentation preset (simclr, byol, moco_v2, dino, exemplar, weak), drawn
    per image on the images' device: `augmenter("simclr", 32)(images)` -> [view1, view2], each in
    [-1, 1] like its input."""
    return Augmenter(view_configs(preset), resolution)


def rotation_loss(logits_of, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SS-GAN's rotation task on one's own network: each of `images` [B,3,R,R] in all four
    rotations, `logits_of(rotated)` its 4-way logits [4B, 4]; (cross-entropy, accuracy).
    On a discriminator: add beta x this on real images to D's loss, alpha x this on fakes to G's."""
    rotated, labels = rotate4(images)
    return cross_entropy_with_accuracy(logits_of(rotated), labels)


def linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, max_iter: int = ProbeConfig.max_iter,
                 l2: float = ProbeConfig.l2) -> float:
    """Test top-1 of ssgen's linear probe on features one extracted ([N, F] and [M, F]): a
    logistic regression of the standardised features, full-batch L-BFGS in float64 to a
    gradient tolerance, as `ssgen probe` fits it."""
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    return fit_probe(train_features, train_labels, test_features, test_labels, num_classes, max_iter, l2).accuracy


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """A trained run from a checkpoint file or a run directory (its newest checkpoint). `.method`
    gives `features(x)` (D's or the encoder's, {layer: [B, F]} of float images in [-1, 1]) and,
    for a generative method, `sample(n)` (EMA weights where there are some); `.cfg` and `.step`
    say what it is."""
    return load_run(path, torch.device(device), warn=lambda message: None)
