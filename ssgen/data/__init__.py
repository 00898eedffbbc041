"""Datasets by name (shapes, folder, cifar10, cifar100, stl10) and the training batch stream."""

from __future__ import annotations

from ssgen.config import DataConfig
from ssgen.data import folder, shapes, torchvision_sets  # noqa: F401  (registration)
from ssgen.data.base import ImageSet, require_labels
from ssgen.data.batches import BatchStream
from ssgen.errors import ConfigError
from ssgen.registry import DATASETS

__all__ = ["BatchStream", "ImageSet", "build_dataset", "require_labels"]


def build_dataset(cfg: DataConfig, split: str) -> ImageSet:
    """The `split` ("train" or "test") of the configured dataset, subset to train/test_size."""
    if split not in ("train", "test"):
        raise ConfigError(f"split {split!r}: expected train or test")
    images = DATASETS.get(cfg.name, "data.name")(cfg, split)
    return images.subset(cfg.train_size if split == "train" else cfg.test_size, cfg.seed)
