"""DCGAN-style pair: the "standard CNN" of the SNGAN paper (Miyato et al. 2018, table 3), at
32, 48 and 64 pixels (G starts at resolution / 8 and upsamples three times).

    G: z -> linear -> [w, S, S] -> 3 x (BN -> ReLU -> deconv4x4 /2) -> BN -> ReLU -> conv3x3 -> tanh
       channels w, w/2, w/4, w/8 (reference w = 512)
    D: 3 x (conv3x3 -> LReLU -> conv4x4 stride 2 -> LReLU) -> conv3x3 -> LReLU -> global sum pool
       channels w/8, w/4, w/2, then w (reference w = 512); LeakyReLU slope 0.1, spectral norm

D pools its last feature map (the paper flattens it) so that its features have `width` entries
at every resolution, like the ResNet D's, for the critic, the rotation head and the probes.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ssgen.nets.base import (Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, check_resolution,
                             scaled_channels)
from ssgen.nets.blocks import BatchNorm2d, initialised, sn_conv
from ssgen.registry import DISCRIMINATORS, GENERATORS

RESOLUTIONS = (32, 48, 64)
LEAKY_SLOPE = 0.1


class UpConv(nn.Module):
    """norm -> ReLU -> 4x4 transposed conv with stride 2: one DCGAN generator stage."""

    def __init__(self, in_channels: int, out_channels: int,
                 norm: Callable[[int], nn.Module] = BatchNorm2d):
        super().__init__()
        self.norm = norm(in_channels)
        self.conv = initialised(nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1))

    def forward(self, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return self.conv(F.relu(self.norm(x, z)))  # [B, out, 2H, 2W]


def conv_stage(in_channels: int, out_channels: int, spectral_norm: bool, downsample: bool) -> nn.Sequential:
    """conv3x3 -> LReLU (-> conv4x4 stride 2 -> LReLU): one DCGAN discriminator stage."""
    layers = [sn_conv(in_channels, out_channels, 3, enabled=spectral_norm), nn.LeakyReLU(LEAKY_SLOPE)]
    if downsample:
        layers += [sn_conv(out_channels, out_channels, 4, stride=2, padding=1, enabled=spectral_norm),
                   nn.LeakyReLU(LEAKY_SLOPE)]
    return nn.Sequential(*layers)


@GENERATORS.register("dcgan", config=GeneratorConfig)
def dcgan_generator(cfg: GeneratorConfig, resolution: int) -> Generator:
    check_resolution(resolution, RESOLUTIONS, "generator 'dcgan'")
    channels = scaled_channels(cfg.width, (1, 2, 4, 8), "generator 'dcgan'")
    return Generator(cfg.z_dim, resolution // 8, channels, UpConv, self_modulated=cfg.sbn)


@DISCRIMINATORS.register("dcgan", config=DiscriminatorConfig)
def dcgan_discriminator(cfg: DiscriminatorConfig, resolution: int) -> Discriminator:
    check_resolution(resolution, RESOLUTIONS, "discriminator 'dcgan'")
    channels = [3, *scaled_channels(cfg.width, (8, 4, 2, 1), "discriminator 'dcgan'")]
    blocks = {f"block{index}": conv_stage(c_in, c_out, cfg.spectral_norm, downsample=index < 4)
              for index, (c_in, c_out) in enumerate(zip(channels, channels[1:]), start=1)}
    # Every stage ends in its LeakyReLU: features are read out as they are.
    return Discriminator(blocks, channels[-1], nn.Identity(), cfg.spectral_norm, cfg.pooling)
