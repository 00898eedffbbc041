"""What a training step is handed: a batch, where the run is, and what the data is.

A low layer (torch only): the batch stream makes `Batch`es, the trainer makes `Progress`,
and methods and tasks read both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Batch:
    images: torch.Tensor   # float [-1, 1] [B, 3, H, W] on the training device
    labels: torch.Tensor   # int64 [B]; -1 where an image is unlabelled
    indices: torch.Tensor  # int64 [B]: each image's row in the training set

    @classmethod
    def unlabelled(cls, images: torch.Tensor) -> "Batch":
        """A batch of bare images (no labels, no dataset rows): -1 everywhere."""
        missing = torch.full((images.shape[0],), -1, dtype=torch.long, device=images.device)
        return cls(images, missing, missing.clone())


def join_batches(batches: list[Batch]) -> Batch:
    """One batch of several, rows in order (a single batch as it is)."""
    if len(batches) == 1:
        return batches[0]
    return Batch(*(torch.cat(parts) for parts in zip(*((b.images, b.labels, b.indices) for b in batches))))


def as_batch(data: Batch | torch.Tensor) -> Batch:
    """A Batch as is; a bare image tensor as an unlabelled batch (handy in tests and notebooks)."""
    return data if isinstance(data, Batch) else Batch.unlabelled(data)


@dataclass(frozen=True)
class Progress:
    """The step being taken (1-based) of `total`: what momentum, temperature and ramp schedules follow."""
    step: int = 1
    total: int = 1

    @property
    def fraction(self) -> float:
        """0 at the first step, approaching 1 at the last."""
        return (self.step - 1) / self.total


@dataclass
class DataInfo:
    """What a method needs to know about its data to build its networks."""
    resolution: int
