"""SNGAN ResNet generator and discriminator (Miyato et al. 2018) at 32, 48, 64 and 128 pixels.

At 32 every block has `width` channels (reference: G 256, D 128). At larger resolutions the
channels follow SNGAN's progression, with `width` the widest stage (reference: 48: G 512,
D 1024; 64 and 128: G 1024, D 1024): G halves its channels as it upsamples, D doubles them.
"""

from __future__ import annotations

from torch import nn

from ssgen.nets.base import (Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, check_resolution,
                             scaled_channels)
from ssgen.nets.blocks import OptimizedResBlockDown, ResBlockDown, ResBlockUp
from ssgen.registry import DISCRIMINATORS, GENERATORS

# resolution -> (start size, width divisor of the stem and of each upsampling block's output)
GENERATOR_PLANS = {
    32: (4, (1, 1, 1, 1)),
    48: (6, (1, 2, 4, 8)),
    64: (4, (1, 2, 4, 8, 16)),
    128: (4, (1, 1, 2, 4, 8, 16)),
}
# resolution -> per block: (width divisor of its output, whether it downsamples)
DISCRIMINATOR_PLANS = {
    32: ((1, True), (1, True), (1, False), (1, False)),
    48: ((16, True), (8, True), (4, True), (2, True), (1, False)),
    64: ((16, True), (8, True), (4, True), (2, True), (1, True)),
    128: ((16, True), (8, True), (4, True), (2, True), (1, True), (1, False)),
}


@GENERATORS.register("resnet", config=GeneratorConfig)
def resnet_generator(cfg: GeneratorConfig, resolution: int) -> Generator:
    check_resolution(resolution, GENERATOR_PLANS, "generator 'resnet'")
    start_size, divisors = GENERATOR_PLANS[resolution]
    channels = scaled_channels(cfg.width, divisors, "generator 'resnet'")
    return Generator(cfg.z_dim, start_size, channels, ResBlockUp, self_modulated=cfg.sbn)


@DISCRIMINATORS.register("resnet", config=DiscriminatorConfig)
def resnet_discriminator(cfg: DiscriminatorConfig, resolution: int) -> Discriminator:
    check_resolution(resolution, DISCRIMINATOR_PLANS, "discriminator 'resnet'")
    plan = DISCRIMINATOR_PLANS[resolution]
    channels = scaled_channels(cfg.width, [divisor for divisor, _ in plan], "discriminator 'resnet'")
    blocks = {"block1": OptimizedResBlockDown(3, channels[0], cfg.spectral_norm)}
    for index, (c_in, c_out, (_, down)) in enumerate(zip(channels, channels[1:], plan[1:]), start=2):
        blocks[f"block{index}"] = ResBlockDown(c_in, c_out, down, cfg.spectral_norm)
    return Discriminator(blocks, channels[-1], nn.ReLU(), cfg.spectral_norm, cfg.pooling)
