"""Training batches (images, labels, dataset rows): shuffled every epoch, random horizontal
flips, exact to resume.

Each epoch's order and flips are drawn up front from a private generator, so the stream's state
is (generator, order, flips, position) and a resumed run sees the very batches an uninterrupted
one would. Under torchrun every process draws the same global batch and keeps its slice.
Sets that fit are held on the training device as uint8 and indexed there; others stream through
a DataLoader.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from ssgen.data.base import ImageSet
from ssgen.errors import DataError
from ssgen.images import to_float
from ssgen.parallel import local_slice
from ssgen.step import Batch

DEVICE_LIMIT = 4 << 30  # bytes of uint8 images held on the device under device_resident=auto


class _Rows(Dataset):
    def __init__(self, images: ImageSet):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images.get(torch.tensor([i]))[0][0]


class BatchStream:
    def __init__(self, images: ImageSet, batch_size: int, device: torch.device, *, flip: bool, seed: int,
                 device_resident: str = "auto", rank: int = 0, world_size: int = 1, workers: int = 2):
        if len(images) < batch_size:
            raise DataError(f"{images.name} ({images.split}) has {len(images)} images, fewer than "
                            f"trainer.batch_size={batch_size}")
        self.images, self.batch_size, self.device, self.flip = images, batch_size, device, flip
        self.rank, self.world_size, self.workers = rank, world_size, workers
        self.generator = torch.Generator().manual_seed(seed)
        nbytes = len(images) * 3 * images.resolution ** 2
        resident = device_resident == "yes" or (device_resident == "auto" and nbytes <= DEVICE_LIMIT)
        self.pool = None
        if resident:
            self.pool = (images.images if images.in_memory else images.get(slice(None))[0]).to(device)
        self.labels = images.labels.to(device)
        self._new_epoch()

    def _new_epoch(self) -> None:
        self.order = torch.randperm(len(self.images), generator=self.generator)
        self.flips = torch.rand(len(self.images), generator=self.generator) < 0.5
        self.position = 0
        self._loader = None

    def _local(self, rows: torch.Tensor) -> torch.Tensor:
        return local_slice(rows, self.rank, self.world_size)

    def __call__(self) -> Batch:
        if self.position + self.batch_size > len(self.images):  # drop the ragged end
            self._new_epoch()
        span = slice(self.position, self.position + self.batch_size)
        self.position += self.batch_size
        rows, flips = self._local(self.order[span]).to(self.device), self._local(self.flips[span])
        if self.pool is not None:
            images = self.pool[rows]
        else:
            images = next(self._stream()).to(self.device, non_blocking=True)
        if self.flip:
            mirror = flips.to(self.device)[:, None, None, None]
            images = torch.where(mirror, images.flip(3), images)
        return Batch(to_float(images), self.labels[rows], rows)

    def _stream(self):
        """Prefetching loader over the rest of this epoch's batches (streamed sets only)."""
        if self._loader is None:
            start = self.position - self.batch_size
            batches = [self._local(self.order[i: i + self.batch_size]).tolist()
                       for i in range(start, len(self.images) - self.batch_size + 1, self.batch_size)]
            self._loader = iter(DataLoader(_Rows(self.images), batch_sampler=batches,
                                           num_workers=self.workers, pin_memory=self.device.type == "cuda"))
        return self._loader

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order, "flips": self.flips,
                "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.flips, self.position = state["order"], state["flips"], int(state["position"])
        self._loader = None
