"""Training batches (images, labels, dataset rows): shuffled every epoch, random horizontal
flips, exact to resume.

Each epoch's order and flips are drawn up front from a private generator, so the stream's state
is (generator, order, flips, position) and a resumed run sees the very batches an uninterrupted
one would. Under torchrun every process draws the same global batch and keeps its slice.
Sets that fit are held on the training device as uint8 and indexed there; others stream through
a DataLoader.

With a labelled subset (`data.labels`), the stream's labels are -1 outside it, and
`labelled()` draws batches of the labelled images alone, from a stream of their own (its own
order and state): a semi-supervised step takes a labelled batch and an unlabelled one.
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
                 device_resident: str = "auto", rank: int = 0, world_size: int = 1, workers: int = 2,
                 labelled: torch.Tensor | None = None, rows: torch.Tensor | None = None, pool=None):
        """`labelled`: rows of the labelled subset (None: every image keeps its label).
        `rows`: draw from these rows only; `pool`: their images already on the device (both for
        the labelled sub-stream, which shares its parent's images)."""
        self.rows = torch.arange(len(images)) if rows is None else rows
        if len(self.rows) < batch_size:
            what = "images" if rows is None else "labelled images (data.labels)"
            raise DataError(f"{images.name} ({images.split}) has {len(self.rows)} {what}, fewer than "
                            f"trainer.batch_size={batch_size}")
        self.images, self.batch_size, self.device, self.flip = images, batch_size, device, flip
        self.rank, self.world_size, self.workers = rank, world_size, workers
        self.generator = torch.Generator().manual_seed(seed)
        nbytes = len(images) * 3 * images.resolution ** 2
        resident = device_resident == "yes" or (device_resident == "auto" and nbytes <= DEVICE_LIMIT)
        self.pool = pool
        if resident and pool is None:
            self.pool = (images.images if images.in_memory else images.get(slice(None))[0]).to(device)
        self.labels = images.labels.to(device, copy=True)  # masked below: never the set's own tensor
        self.labelled_stream = None
        if labelled is not None:
            hidden = torch.ones(len(images), dtype=torch.bool)
            hidden[labelled] = False
            self.labels[hidden.to(device)] = -1
            # Its own seed: the unlabelled stream's batches stay what they are without a subset.
            self.labelled_stream = BatchStream(
                images, min(batch_size, len(labelled)), device, flip=flip, seed=seed + 1,
                device_resident=device_resident, rank=rank, world_size=world_size, workers=workers,
                rows=labelled, pool=self.pool)
        self._new_epoch()

    def labelled(self) -> Batch:
        """A batch of labelled images only: from the labelled subset's own stream, or, where every
        image is labelled, the next batch."""
        return self() if self.labelled_stream is None else self.labelled_stream()

    @property
    def labelled_count(self) -> int:
        return len(self.images) if self.labelled_stream is None else len(self.labelled_stream.rows)

    def _new_epoch(self) -> None:
        self.order = self.rows[torch.randperm(len(self.rows), generator=self.generator)]
        self.flips = torch.rand(len(self.rows), generator=self.generator) < 0.5
        self.position = 0
        self._loader = None

    def _local(self, rows: torch.Tensor) -> torch.Tensor:
        return local_slice(rows, self.rank, self.world_size)

    def __call__(self) -> Batch:
        if self.position + self.batch_size > len(self.rows):  # drop the ragged end
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
                       for i in range(start, len(self.rows) - self.batch_size + 1, self.batch_size)]
            self._loader = iter(DataLoader(_Rows(self.images), batch_sampler=batches,
                                           num_workers=self.workers, pin_memory=self.device.type == "cuda"))
        return self._loader

    def state_dict(self) -> dict:
        state = {"generator": self.generator.get_state(), "order": self.order, "flips": self.flips,
                 "position": self.position}
        if self.labelled_stream is not None:
            state["labelled"] = self.labelled_stream.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.flips, self.position = state["order"], state["flips"], int(state["position"])
        self._loader = None
        if self.labelled_stream is not None and "labelled" in state:
            self.labelled_stream.load_state_dict(state["labelled"])
