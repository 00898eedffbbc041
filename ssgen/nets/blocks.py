"""Building blocks of the SNGAN-style networks: spectral-norm layers, generator batch norms
(plain or self-modulated by z) and the residual blocks that resample by 2.

Initialisation follows the SNGAN reference code: xavier_uniform with gain sqrt(2) for the
convolutions inside a residual branch (they are followed by ReLUs), gain 1 for shortcuts,
linear layers and output convolutions.

The blocks compute each 3x3 convolution that sits next to a x2 resampling as one strided
convolution (`conv_then_pool`, `upsample_then_conv`): the same network, parameters and gradients,
with 4/9 of the multiply-adds (tests/test_nets_blocks.py holds them to the plain composition).
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


# ---------------------------------------------------------------- resampling
def upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downsample(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2)


def box_sum(weight: torch.Tensor) -> torch.Tensor:
    """A [O, I, 3, 3] kernel convolved with a 2x2 box of ones: [O, I, 4, 4], each tap the sum of
    the 3x3 taps that an output pixel reaches through a 2x2 resampling cell."""
    return sum(F.pad(weight, (left, 1 - left, top, 1 - top)) for top in (0, 1) for left in (0, 1))


def conv_then_pool(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """avg_pool2d(conv(x), 2) for a 3x3 convolution with padding 1, as one stride-2 convolution:
    each pooled pixel is the mean of four 3x3 windows, which is one 4x4 window."""
    return F.conv2d(x, box_sum(conv.weight) / 4, conv.bias, stride=2, padding=1)


def upsample_then_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """conv(upsample(x)) for a 3x3 convolution with padding 1, as one stride-2 transposed
    convolution: nearest upsampling is the adjoint of 2x2 sum pooling, so the box-summed kernel
    serves again, flipped, with conv_transpose2d's [in, out] weight layout."""
    kernel = box_sum(conv.weight).flip(2, 3).transpose(0, 1)
    return F.conv_transpose2d(x, kernel, conv.bias, stride=2, padding=1)


# ---------------------------------------------------------------- residual blocks
class ResamplingBlock(nn.Module):
    """A residual block that resamples by 2. `fused_resampling = False` computes the plain
    composition instead (resample, then convolve, or the reverse), as the SNGAN code writes it:
    for the tests that hold the two equal and the benchmark's straightforward reference step."""
    fused_resampling = True

    def pool_after(self, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return conv_then_pool(conv, x) if self.fused_resampling else downsample(conv(x))

    def upsample_before(self, conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return upsample_then_conv(conv, x) if self.fused_resampling else conv(upsample(x))


def plain_resampling(network: nn.Module) -> nn.Module:
    """`network` with every block computing the plain composition (ResamplingBlock)."""
    for module in network.modules():
        if isinstance(module, ResamplingBlock):
            module.fused_resampling = False
    return network


class ResBlockUp(ResamplingBlock):
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
        h = self.upsample_before(self.conv1, F.relu(self.norm1(x, z)))
        h = self.conv2(F.relu(self.norm2(h, z)))
        # A 1x1 convolution commutes with nearest upsampling: convolve first, at a quarter of the cost.
        return h + upsample(self.shortcut(x))  # [B, out, 2H, 2W]


class ResBlockDown(ResamplingBlock):
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
        h = F.relu(self.conv1(F.relu(x)))
        if not self.downsample:
            return self.conv2(h) + self.shortcut(x)  # [B, out, H, W]
        # Average pooling commutes with a 1x1 convolution: pool first, at a quarter of the cost.
        return self.pool_after(self.conv2, h) + self.shortcut(downsample(x))  # [B, out, H/2, W/2]


class OptimizedResBlockDown(ResamplingBlock):
    """D's first block: no ReLU on the input image, and the shortcut pools before its 1x1 conv
    (same result as conv-then-pool, at a quarter of the cost)."""

    def __init__(self, in_channels: int, out_channels: int, spectral_norm: bool = True):
        super().__init__()
        self.conv1 = sn_conv(in_channels, out_channels, enabled=spectral_norm, gain=RESIDUAL_GAIN)
        self.conv2 = sn_conv(out_channels, out_channels, enabled=spectral_norm, gain=RESIDUAL_GAIN)
        self.shortcut = sn_conv(in_channels, out_channels, kernel_size=1, enabled=spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool_after(self.conv2, F.relu(self.conv1(x)))
        return h + self.shortcut(downsample(x))  # [B, out, H/2, W/2]
