"""The two image conventions: uint8 0..255 (data, storage, FID) and float in [-1, 1] (networks)."""

import torch


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 [B,C,H,W] 0..255 -> float32 [-1, 1]."""
    return images.float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 0..255 (clamped, rounded)."""
    return images.float().add(1.0).mul_(127.5).round_().clamp_(0, 255).to(torch.uint8)
