"""The two image conventions: uint8 0..255 (data, storage, FID) and float in [-1, 1] (networks),
and the square grids that show a batch."""

from pathlib import Path

import torch


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B,C,H,W] 0..255 -> float32 [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 0..255 (clamped, rounded)."""
    return images.float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)


def save_grid(images: torch.Tensor, path: str | Path) -> torch.Tensor:
    """A float [-1, 1] batch as a square-ish grid PNG at `path`; returns the uint8 [3, H, W] grid."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid(to_uint8(images.cpu()), nrow=max(1, int(len(images) ** 0.5)), padding=1)
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)
    return grid
