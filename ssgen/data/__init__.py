"""Datasets by name (shapes, folder, cifar10, cifar100, stl10) and the training batch stream.

A folder with no test split beside it gets one held out of its train split (`choose_holdout`):
whoever builds datasets for a run chooses once, logs `Holdout.message`, records
`holdout_text(holdout.members)` with the run, and passes the holdout to every `build_dataset`.
"""

from __future__ import annotations

from typing import Sequence

from ssgen.config import DataConfig
from ssgen.data import folder, shapes, torchvision_sets  # noqa: F401  (registration)
from ssgen.data.base import ImageSet, require_labels
from ssgen.data.batches import BatchStream
from ssgen.data.decoded_cache import data_log
from ssgen.data.holdout import Holdout, holdout_text, parse_holdout
from ssgen.errors import ConfigError, DataError
from ssgen.registry import DATASETS

__all__ = ["BatchStream", "Holdout", "ImageSet", "build_dataset", "choose_holdout", "data_log", "holdout_text",
           "missing_labels", "parse_holdout", "require_labels"]


def choose_holdout(cfg: DataConfig, recorded: Sequence[str] | None = None) -> Holdout:
    """The images of the train split held out as the test split.

    `recorded`: what a run recorded (`parse_holdout` of its record): those members, checked against
    the folder; empty: the run held nothing out (it had a test split, or predates holding out), so
    nothing is. None: choose now (a new run): nothing where the dataset has a test split or
    data.holdout is 0, else a seeded, class-balanced data.holdout share of each class."""
    if cfg.name == "folder":  # the only dataset that can lack a test split
        return folder.choose_holdout(cfg, recorded)
    if recorded:
        raise DataError(f"a recorded holdout of {len(recorded):,} images applies to data.name=folder, "
                        f"not data.name={cfg.name}, which has its own test split")
    return Holdout()


def build_dataset(cfg: DataConfig, split: str, holdout: Holdout | None = None) -> ImageSet:
    """The `split` ("train" or "test") of the configured dataset, subset to train/test_size.

    `holdout`: from `choose_holdout`; None chooses afresh (the same choice, unless the folder changed)."""
    if split not in ("train", "test"):
        raise ConfigError(f"split {split!r}: expected train or test")
    holdout = choose_holdout(cfg) if holdout is None else holdout
    if holdout.members:
        images = folder.held_out_split(cfg, split, holdout.members)
    elif split == "test" and holdout.refusal:
        raise DataError(holdout.refusal)
    else:
        images = DATASETS.get(cfg.name, "data.name")(cfg, split)
    return images.subset(cfg.train_size if split == "train" else cfg.test_size, cfg.seed)


def missing_labels(images: ImageSet) -> str | None:
    """Why `images` has no class labels, or None where it has them (what a probe needs)."""
    if images.classes:
        return None
    # Only a folder can come without labels; its set is named "folder:<path>".
    return f"{images.name.removeprefix('folder:')} has no class subfolders, so there are no labels"
