"""Rotation pretext (RotNet, SS-GAN): every image in all four multiples of 90 degrees."""

import torch


def rotate4(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B,C,H,W] (square) -> ([4B,C,H,W], labels [4B]): rotations by 0, 90, 180, 270 degrees
    counter-clockwise, grouped by angle; label k means k * 90 degrees."""
    rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
    labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
    return rotated, labels
