"""A test split held out of a folder of images that has none beside it (`data.holdout`).

The choice is class-balanced and seeded: in each class, the images ranked first by
sha256(data.seed, member path) are held out. It depends only on the member paths, their labels,
the fraction and the seed, so every process and machine makes the same one. A run records the
choice (`holdout_text`, one member path a line) and passes it back on resume and to later
measurements (`recorded`), so images added to the folder meanwhile go to training and the test
split stays what it was. Opening the record is the caller's business: this layer never reads a
run directory.

Why 10% by default: it takes little from training, yet leaves a test set that a probe can be read
on for the folders people bring (412 test images of 4,120: one standard error of a probe accuracy
near 50% is about 2.5 points); 20-30% would cost training images for a little less noise.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Sequence

from ssgen.errors import DataError

MIN_TEST_IMAGES = 2  # FD needs a covariance and a probe a score: two images at the very least


@dataclass(frozen=True)
class Holdout:
    """Which images of the train split are its test split instead.

    `members`: held-out member paths, sorted; kept out of training. Empty: nothing is held out
    (the dataset has a test split of its own, data.holdout is 0, or the run recorded none).
    `message`: the one line to log where images are held out. `refusal`: why a folder without a
    test split could not give one (too few images); building its test split raises it."""
    members: tuple[str, ...] = ()
    message: str = ""
    refusal: str = ""


def class_share(size: int, fraction: float) -> int:
    """Images held out of a class of `size`: the fraction, rounded half up; at least one where the
    class has two or more; never the class's last image, so a class of one stays in training only."""
    if size < 2:
        return 0
    return min(size - 1, max(1, math.floor(fraction * size + 0.5)))


def choose_members(members: Sequence[str], labels: Sequence[int], fraction: float, seed: int) -> list[str]:
    """The held-out members, sorted: in each label's group, its `class_share` ranked first by
    sha256 of the seed and the path (so the order `members` come in does not matter)."""
    groups: dict[int, list[str]] = defaultdict(list)
    for member, label in zip(members, labels):
        groups[label].append(member)
    held: list[str] = []
    for group in groups.values():
        ranked = sorted(group, key=lambda member: hashlib.sha256(f"{seed}/{member}".encode()).digest())
        held += ranked[: class_share(len(group), fraction)]
    return sorted(held)


def chosen(source: str, members: Sequence[str], labels: Sequence[int], classes: Sequence[str],
           fraction: float, seed: int) -> Holdout:
    """The seeded choice for the folder `source`, with its message, or its refusal when too few."""
    held = choose_members(members, labels, fraction, seed)
    if len(held) < MIN_TEST_IMAGES:
        return Holdout(refusal=(
            f"data.holdout={fraction:g} holds out {len(held)} of the {len(members):,} images in {source!r} "
            f"(no class gives up its only image); the probe and FD need at least {MIN_TEST_IMAGES} "
            "test images: raise data.holdout, add images, or put a test split beside it"))
    singles = sum(1 for label, size in Counter(labels).items() if size == 1 and label >= 0)
    how = f"class-balanced, seed {seed}" if classes else f"seed {seed}"
    if singles:
        how += f"; {singles} single-image class{'es' if singles > 1 else ''} kept for training only"
    return Holdout(tuple(held), (
        f"data: no test split beside {source}; holding out {fraction * 100:g}% ({len(held):,} of "
        f"{len(members):,} images, {how}) as the test split for {evaluations(classes)}"))


def recorded_holdout(source: str, members: Sequence[str], labels: Sequence[int], classes: Sequence[str],
                     recorded: Sequence[str]) -> Holdout:
    """A run's recorded choice, checked against the folder as it is now."""
    held = sorted(set(recorded))
    require_present(source, members, held)
    sizes = Counter(labels)
    held_set = set(held)
    held_sizes = Counter(label for member, label in zip(members, labels) if member in held_set)
    for label, count in sorted(held_sizes.items()):
        if count == sizes[label]:
            where = f"of class {classes[label]!r}" if label >= 0 else "outside class subfolders"
            raise DataError(f"the run's held-out test images take all {count:,} images {where} in "
                            f"{source!r}, leaving none for training")
    return Holdout(tuple(held), (
        f"data: the run's recorded holdout ({len(held):,} of {len(members):,} images in {source}) is the "
        f"test split for {evaluations(classes)}"))


def require_present(source: str, members: Sequence[str], held: Sequence[str]) -> None:
    present = set(members)
    missing = [member for member in held if member not in present]
    if missing:
        raise DataError(f"{len(missing):,} of the run's {len(held):,} held-out test images are no longer in "
                        f"{source!r} (first: {missing[0]!r}); restore them, or start a new run to hold "
                        "out afresh")


def evaluations(classes: Sequence[str]) -> str:
    return "the probe and FD" if classes else "FD (no class subfolders, so no probe)"


def holdout_text(members: Sequence[str]) -> str:
    """The record of a choice: one member path a line."""
    for member in members:
        if "\n" in member:
            raise DataError(f"held-out image {member!r} has a line break in its name; rename it")
    return "".join(f"{member}\n" for member in members)


def parse_holdout(text: str) -> list[str]:
    """The member paths of a record written by `holdout_text`."""
    return [line for line in text.split("\n") if line]
