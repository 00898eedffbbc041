"""Corruptions for the denoising autoencoder (Vincent et al. 2008). Pure tensor functions on
float [-1, 1] images [B, C, H, W]; `level` is the noise's std or the corrupted fraction."""

from __future__ import annotations

import torch


def gaussian_noise(x: torch.Tensor, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Additive Gaussian noise with std `level` (in [-1, 1] image units)."""
    return x + level * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _pixel_mask(x: torch.Tensor, fraction: float, generator: torch.Generator | None) -> torch.Tensor:
    """bool [B, 1, H, W]: each pixel (all its channels together) chosen with probability `fraction`."""
    b, _, h, w = x.shape
    return torch.rand(b, 1, h, w, generator=generator, device=x.device) < fraction


def masking_noise(x: torch.Tensor, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A `level` fraction of the pixels dropped to 0 (mid-grey)."""
    return x.masked_fill(_pixel_mask(x, level, generator), 0.0)


def salt_and_pepper_noise(x: torch.Tensor, level: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A `level` fraction of the pixels set to black or white, each with probability 1/2."""
    hit = _pixel_mask(x, level, generator)
    white = torch.rand(hit.shape, generator=generator, device=x.device) < 0.5
    return torch.where(hit, white.to(x.dtype) * 2 - 1, x)


NOISES = {"gaussian": gaussian_noise, "masking": masking_noise, "salt_and_pepper": salt_and_pepper_noise}
