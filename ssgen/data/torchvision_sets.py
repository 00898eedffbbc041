"""`cifar10`, `cifar100`, `stl10` through torchvision: `data.path` is torchvision's root folder;
`data.download=true` fetches them there on a machine with internet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ssgen.config import DataConfig
from ssgen.data.base import ImageSet
from ssgen.errors import DataError
from ssgen.registry import DATASETS


def _load(name: str, cfg: DataConfig, split: str):
    from torchvision import datasets

    root = str(Path(cfg.path or "data").expanduser())
    try:
        if name == "stl10":
            return datasets.STL10(root, split=split, download=cfg.download)
        cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
        return cls(root, train=split == "train", download=cfg.download)
    except (RuntimeError, OSError) as err:
        how = ("set data.download=true on a machine with internet, point data.path at the folder that "
               "holds torchvision's files, or use data.name=folder with data.path=<folder or .zip of images>")
        reason = str(err).splitlines()[0]
        raise DataError(f"{name} ({split}) is not available under {root!r} ({reason}); {how}") from None


def torchvision_set(name: str, cfg: DataConfig, split: str) -> ImageSet:
    dataset = _load(name, cfg, split)
    data = np.asarray(dataset.data)
    images = torch.from_numpy(data if name == "stl10" else data.transpose(0, 3, 1, 2)).contiguous()
    if images.shape[-1] != cfg.resolution:
        images = F.interpolate(images.float(), size=(cfg.resolution, cfg.resolution), mode="bilinear",
                               antialias=True, align_corners=False).round().clamp(0, 255).to(torch.uint8)
    labels = torch.as_tensor(np.asarray(dataset.targets if hasattr(dataset, "targets") else dataset.labels))
    return ImageSet(name, split, cfg.resolution, list(dataset.classes), labels, images=images)


for _name in ("cifar10", "cifar100", "stl10"):
    DATASETS.register(_name)(lambda cfg, split, _name=_name: torchvision_set(_name, cfg, split))
