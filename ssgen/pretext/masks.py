"""Masks: inpainting masks for the context encoder (Pathak et al. 2016), bool [B, 1, H, W], True
where the image is hidden and must be predicted; and block-wise patch masks for iBOT, bool
[B, patches]. Pure tensor functions.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def central_mask(batch: int, size: int, fraction: float = 0.25, device=None) -> torch.Tensor:
    """The centred square covering `fraction` of the image (1/4: half the side)."""
    side = round(size * fraction**0.5)
    start = (size - side) // 2
    mask = torch.zeros(batch, 1, size, size, dtype=torch.bool, device=device)
    mask[..., start:start + side, start:start + side] = True
    return mask


def random_block_mask(batch: int, size: int, fraction: float = 0.25, max_blocks: int = 8,
                      generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """The union of several random rectangles (sides 1/8 to 1/4 of the image), covering at most
    `fraction`: candidate blocks are added in order while the union stays within it (the first
    block always counts)."""
    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(batch, max_blocks, 1, 1, generator=generator, device=device)

    heights, widths = (uniform(size / 8, size / 4 + 1).floor() for _ in range(2))
    tops, lefts = uniform(0, 1) * (size - heights + 1), uniform(0, 1) * (size - widths + 1)
    rows = torch.arange(size, device=device).view(1, 1, size, 1)
    cols = torch.arange(size, device=device).view(1, 1, 1, size)
    blocks = ((rows >= tops.floor()) & (rows < tops.floor() + heights)
              & (cols >= lefts.floor()) & (cols < lefts.floor() + widths))   # [B, N, H, W]
    unions = blocks.cummax(dim=1).values                                     # union of the first k
    coverage = unions.float().mean(dim=(2, 3))                               # [B, N], non-decreasing
    kept = (coverage <= fraction).sum(dim=1).clamp_min(1) - 1                # last union within budget
    return unions[torch.arange(batch, device=device), kept][:, None]


def random_region_mask(batch: int, size: int, fraction: float = 0.25, smoothness: int = 4,
                       generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Smooth random shapes covering `fraction` of the image: Gaussian noise on a coarse
    `smoothness` x `smoothness` grid, upsampled bicubically and thresholded at its per-image
    quantile (a stand-in for the paper's segmentation-mask shapes, which need a dataset)."""
    coarse = torch.randn(batch, 1, smoothness, smoothness, generator=generator, device=device)
    field = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    threshold = field.flatten(1).quantile(1 - fraction, dim=1).view(batch, 1, 1, 1)
    return field > threshold


def mask_border(mask: torch.Tensor, width: int) -> torch.Tensor:
    """The pixels of `mask` within `width` pixels (chessboard distance) of the visible area."""
    visible = (~mask).float()
    near_visible = F.max_pool2d(visible, 2 * width + 1, stride=1, padding=width) > 0
    return mask & near_visible


def patch_block_masks(n: int, grid: int, low: float, high: float, device: torch.device | str = "cpu") -> torch.Tensor:
    """bool [n, grid * grid] (row-major patches): BEiT's block-wise masking, as iBOT uses it.
    Each image masks a ratio drawn uniformly from [low, high] of its patches, as rectangles of
    at least 4 patches and aspect ratios in [0.3, 1 / 0.3], added while they fit the remaining
    count (so never more than the ratio). Drawn on the CPU from torch's global generator, which
    the trainer checkpoints."""
    masks = torch.zeros(n, grid, grid, dtype=torch.bool)
    for mask in masks:
        target = round(float(torch.empty(()).uniform_(low, high)) * grid * grid)
        for _ in range(100):  # tries; a few rectangles are usually enough
            remaining = target - int(mask.sum())
            if remaining < 4:
                break
            area = float(torch.empty(()).uniform_(4, remaining))
            ratio = math.exp(float(torch.empty(()).uniform_(math.log(0.3), math.log(1 / 0.3))))
            height, width = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
            if not (1 <= height <= grid and 1 <= width <= grid):
                continue
            top, left = int(torch.randint(0, grid - height + 1, ())), int(torch.randint(0, grid - width + 1, ()))
            new = int((~mask[top: top + height, left: left + width]).sum())
            if 0 < new <= remaining:
                mask[top: top + height, left: left + width] = True
    return masks.flatten(1).to(device)
