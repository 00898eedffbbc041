"""An image set: uint8 [N,3,R,R] images with int64 labels, held in memory or decoded on demand."""

from __future__ import annotations

import hashlib
from typing import Callable

import torch

from ssgen.errors import DataError

Indices = torch.Tensor | slice


def seeded_subset(num_items: int, size: int, seed: int = 0) -> torch.Tensor:
    """Sorted indices of a seeded random `size` of num_items (all when size is 0 or not
    smaller). Image folders are sorted by class, so the first N would not sample the classes."""
    if not size or size >= num_items:
        return torch.arange(num_items)
    return torch.randperm(num_items, generator=torch.Generator().manual_seed(seed))[:size].sort().values


class ImageSet:
    """Images of one split. In memory (`images` set) or lazy (`decode(i)` per image)."""

    def __init__(self, name: str, split: str, resolution: int, classes: list[str], labels: torch.Tensor,
                 images: torch.Tensor | None = None, decode: Callable[[int], torch.Tensor] | None = None,
                 identity: str = ""):
        assert (images is None) != (decode is None)
        self.name, self.split, self.resolution = name, split, resolution
        self.classes = classes
        self.labels = labels.long()
        self.images = images
        self._decode = decode
        self._identity = identity  # for lazy sets: what identifies the files' content

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, indices: Indices) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [n,3,R,R] (CPU) and int64 labels [n]."""
        if self.images is not None:
            return self.images[indices], self.labels[indices]
        rows = torch.arange(len(self))[indices]
        return torch.stack([self._decode(int(i)) for i in rows]), self.labels[rows]

    def fingerprint(self) -> str:
        """Identity of the content: changes whenever an image, label or size changes."""
        digest = hashlib.sha256(f"{self.name}|{self.split}|{self.resolution}|{len(self)}".encode())
        digest.update(self.labels.numpy().tobytes())
        if self.images is not None:
            digest.update(self.images.contiguous().numpy().tobytes())
        else:
            digest.update(self._identity.encode())
        return digest.hexdigest()[:32]

    def subset(self, size: int, seed: int) -> "ImageSet":
        """A fixed random `size` of the images (all when size is 0 or not smaller)."""
        if not size or size >= len(self):
            return self
        rows = seeded_subset(len(self), size, seed)
        if self.images is not None:
            return ImageSet(self.name, self.split, self.resolution, self.classes, self.labels[rows],
                            images=self.images[rows])
        decode = self._decode
        return ImageSet(self.name, self.split, self.resolution, self.classes, self.labels[rows],
                        decode=lambda i: decode(int(rows[i])), identity=f"{self._identity}|{seed}|{size}")


def require_labels(images: ImageSet, why: str) -> None:
    if not images.classes:
        raise DataError(f"{images.name} ({images.split}) has no class labels, but {why} needs them; "
                        "put the images into one subfolder per class")
