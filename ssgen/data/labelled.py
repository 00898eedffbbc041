"""A labelled subset of the train split (`data.labels`): the few labels of a semi-supervised or
fine-tuning run; the rest of the split is its unlabelled set.

`data.labels` reads two ways, as the field's tables are written: a whole number of 1 or more is a
count of labels in all (CIFAR-10's "4000 labels": 400 a class), a number between 0 and 1 a share
of each class (shapes' "10%": 0.1). 0 means every image keeps its label.

The choice is class-balanced and seeded: in each class, the rows first in a seeded permutation.
It depends on the labels and the seed alone, so every process makes the same one; a run records
it (`labelled_text`, one row a line) and reads it back on resume and in `ssgen finetune`, so the
subset is what the run trained on even if the rule here changes.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch

from ssgen.errors import ConfigError, DataError


def per_class_counts(class_sizes: Sequence[int], spec: float) -> list[int]:
    """How many labels each class keeps under data.labels=`spec`."""
    if spec < 0:
        raise ConfigError(f"data.labels={spec}: expected a count of labels (1 or more), "
                          "a share of each class (between 0 and 1), or 0 for all labels")
    if spec == 0:
        return list(class_sizes)
    if spec < 1:  # a share of each class, at least one image of each
        return [min(size, max(1, round(spec * size))) for size in class_sizes]
    if spec != int(spec):
        raise ConfigError(f"data.labels={spec}: a count of labels must be a whole number "
                          "(or a share between 0 and 1)")
    count, classes = int(spec), len(class_sizes)
    if count < classes:
        raise ConfigError(f"data.labels={count}: fewer labels than the {classes} classes; "
                          "a class-balanced subset needs at least one label a class")
    base, extra = divmod(count, classes)  # the remainder goes to the first classes
    wanted = [base + (c < extra) for c in range(classes)]
    short = [c for c, (want, size) in enumerate(zip(wanted, class_sizes)) if want > size]
    if short:
        raise DataError(f"data.labels={count} asks {wanted[short[0]]} labels of class {short[0]}, which has "
                        f"{class_sizes[short[0]]} images; lower data.labels")
    return wanted


def labelled_rows(labels: torch.Tensor, spec: float, seed: int) -> torch.Tensor:
    """Sorted rows of the labelled subset: `per_class_counts` of each class, the first rows of that
    class in a permutation seeded by `seed`. Rows labelled -1 (outside any class) are never chosen."""
    classes = int(labels.max()) + 1 if len(labels) and labels.max() >= 0 else 0
    if classes == 0:
        raise DataError("data.labels needs class labels, and the train split has none; "
                        "put the images into one subfolder per class")
    # A seed of its own, derived from data.seed: the batch stream's first epoch is a permutation
    # seeded by the same number, and would otherwise open with the labelled images.
    own_seed = int.from_bytes(hashlib.sha256(f"labels/{seed}".encode()).digest()[:7], "big")
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(own_seed))
    by_class = [order[labels[order] == c] for c in range(classes)]
    counts = per_class_counts([len(rows) for rows in by_class], spec)
    return torch.cat([rows[:n] for rows, n in zip(by_class, counts)]).sort().values


def labelled_text(rows: torch.Tensor) -> str:
    return "".join(f"{int(r)}\n" for r in rows)


def parse_labelled(text: str, num_images: int) -> torch.Tensor:
    """The rows a run recorded, checked against the train split they index."""
    try:
        rows = torch.tensor([int(line) for line in text.split()], dtype=torch.long)
    except ValueError as error:
        raise DataError(f"the run's record of labelled rows is not one row number a line ({error})") from None
    if len(rows) and (rows.min() < 0 or rows.max() >= num_images):
        raise DataError(f"the run's record of labelled rows names row {int(rows.max())}, but the train split "
                        f"has {num_images:,} images: the data changed since the run started")
    return rows


def describe(rows: torch.Tensor, labels: torch.Tensor, spec: float) -> str:
    """The line a run logs about its labelled subset."""
    counts = torch.bincount(labels[rows])
    spread = f"{int(counts.min())} a class" if counts.min() == counts.max() else \
        f"{int(counts.min())}-{int(counts.max())} a class"
    return (f"data.labels={spec:g}: {len(rows):,} labelled images ({spread}), "
            f"{len(labels) - len(rows):,} unlabelled")
