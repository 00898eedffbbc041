"""Building blocks of the SNGAN-style networks: spectral-norm layers, generator batch norms
(plain or self-modulated by z) and the residual blocks that resample by 2.

Initialisation follows the SNGAN reference code: xavier_uniform with gain sqrt(2) for the
convolutions inside a residual branch (they are followed by ReLUs), gain 1 for shortcuts,
linear layers and output convolutions.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

RESIDUAL_GAIN = math.sqrt(2.0)


# ---------------------------------------------------------------- layers
def initialised(layer: nn.Module, gain: float = 1.0) -> nn.Module:
    nn.init.xavier_uniform_(layer.weight, gain)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def with_spectral_norm(layer: nn.Module, enabled: bool = True) -> nn.Module:
    # One power iteration per training-mode forward, as in SNGAN; eval mode reuses the estimate.
    return spectral_norm(layer) if enabled else layer


def sn_conv(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
            padding: int | None = None, enabled: bool = True, gain: float = 1.0) -> nn.Module:
    """Conv2d (spectrally normalised when `enabled`); padding defaults to 'same' for stride 1."""
    padding = (kernel_size - 1) // 2 if padding is None else padding
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
    return with_spectral_norm(initialised(conv, gain), enabled)


def sn_linear(in_features: int, out_features: int, enabled: bool = True, gain: float = 1.0) -> nn.Module:
    return with_spectral_norm(initialised(nn.Linear(in_features, out_features), gain), enabled)


# ---------------------------------------------------------------- generator norms
class BatchNorm2d(nn.BatchNorm2d):
    """Batch norm that accepts (and ignores) the latent, so that G's blocks call every norm alike."""

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(x)


class SelfModulatedBatchNorm2d(nn.Module):
    """Self-modulated batch norm (Chen et al. 2019): gamma and beta are functions of z through a
    one-hidden-layer MLP. The MLP's output layer starts at zero with bias (gamma=1, beta=0), so
    at initialisation this is exactly batch norm with the identity affine; the dependence on z is
    learned (the output layer gets gradients from the first step, as its input is non-zero)."""

    def __init__(self, channels: int, z_dim: int, hidden: int = 32):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.modulation = nn.Sequential(initialised(nn.Linear(z_dim, hidden)), nn.ReLU(),
                                        nn.Linear(hidden, 2 * channels))
        nn.init.zeros_(self.modulation[-1].weight)
        with torch.no_grad():
            self.modulation[-1].bias.copy_(torch.cat([torch.ones(channels), torch.zeros(channels)]))

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.modulation(z)[:, :, None, None].chunk(2, dim=1)  # [B, C, 1, 1] each
        return self.norm(x) * gamma + beta


def generator_norm(channels: int, z_dim: int, self_modulated: bool) -> nn.Module:
    return SelfModulatedBatchNorm2d(channels, z_dim) if self_modulated else BatchNorm2d(channels)


# ---------------------------------------------------------------- residual blocks
def upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downsample(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


class ResBlockUp(nn.Module):
    """G block: norm -> ReLU -> upsample x2 -> conv3x3 -> norm -> ReLU -> conv3x3, plus an
    upsampled 1x1-conv shortcut. `norm` is a generator_norm factory: (channels) -> module(x, z)."""

    def __init__(self, in_channels: int, out_channels: int,
                 norm: Callable[[int], nn.Module] = BatchNorm2d):
        super().__init__()
        self.norm1, self.norm2 = norm(in_channels), norm(out_channels)
        self.conv1 = sn_conv(in_channels, out_channels, enabled=False, gain=RESIDUAL_GAIN)
        self.conv2 = sn_conv(out_channels, out_channels, enabled=False, gain=RESIDUAL_GAIN)
        self.shortcut = sn_conv(in_channels, out_channels, kernel_size=1, enabled=False)

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(upsample(F.relu(self.norm1(x, z))))
        h = self.conv2(F.relu(self.norm2(h, z)))
        return h + self.shortcut(upsample(x))  # [B, out, 2H, 2W]


class ResBlockDown(nn.Module):
    """D block: ReLU -> conv3x3 -> ReLU -> conv3x3 (-> avgpool x2), plus a 1x1-conv shortcut
    (-> avgpool) when the shape changes. No normalisation: D must not depend on the batch."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = True,
                 spectral_norm: bool = True):
        super().__init__()
        self.downsample = downsample
        self.conv1 = sn_conv(in_channels, out_channels, enabled=spectral_norm, gain=RESIDUAL_GAIN)
        self.conv2 = sn_conv(out_channels, out_channels, enabled=spectral_norm, gain=RESIDUAL_GAIN)
        learned_shortcut = downsample or in_channels != out_channels
        self.shortcut = (sn_conv(in_channels, out_channels, kernel_size=1, enabled=spectral_norm)
                         if learned_shortcut else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.conv1(F.relu(x))))
        shortcut = self.shortcut(x)
        if self.downsample:
            h, shortcut = downsample(h), downsample(shortcut)
        return h + shortcut  # [B, out, H/2, W/2] (or [B, out, H, W])


class OptimizedResBlockDown(nn.Module):
    """D's first block: no ReLU on the input image, and the shortcut pools before its 1x1 conv
    (same result as conv-then-pool, at a quarter of the cost)."""

    def __init__(self, in_channels: int, out_channels: int, spectral_norm: bool = True):
        super().__init__()
        self.conv1 = sn_conv(in_channels, out_channels, enabled=spectral_norm, gain=RESIDUAL_GAIN)
        self.conv2 = sn_conv(out_channels, out_channels, enabled=spectral_norm, gain=RESIDUAL_GAIN)
        self.shortcut = sn_conv(in_channels, out_channels, kernel_size=1, enabled=spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = downsample(self.conv2(F.relu(self.conv1(x))))
        return h + self.shortcut(downsample(x))  # [B, out, H/2, W/2]
