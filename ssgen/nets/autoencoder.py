"""Encoder and decoder trunks of the pretext-task autoencoders.

The encoder (registered as `resnet`) is the SNGAN ResNet discriminator's trunk (optimized first block, then residual
blocks, `width` channels each, 4 blocks at 32 px) with any number of input channels (RGB, L
or ab), so its probed features compare like for like with a GAN discriminator's. Called, it
returns its average-pooled representation; `feature_map` gives the map it pools, which stops at
8x8 (12x12 at 48 px); the decoder mirrors it with batch-normed upsampling blocks and
ends in a 3x3 conv to `out_channels` raw outputs (the method adds tanh or reads logits).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssgen.config import NetConfig
from ssgen.errors import ConfigError
from ssgen.nets.base import check_resolution
from ssgen.nets.blocks import BatchNorm2d, OptimizedResBlockDown, ResBlockDown, ResBlockUp, sn_conv
from ssgen.registry import DECODERS, ENCODERS

# resolution -> per encoder block: whether it halves the size (the last blocks keep it)
ENCODER_PLANS = {
    32: (True, True, False, False),
    48: (True, True, False, False),
    64: (True, True, True, False),
}


class Encoder(nn.Module):
    def __init__(self, in_channels: int, width: int, plan: Sequence[bool], spectral_norm: bool):
        super().__init__()
        blocks = {"block1": OptimizedResBlockDown(in_channels, width, spectral_norm)}
        for index, down in enumerate(plan[1:], start=2):
            blocks[f"block{index}"] = ResBlockDown(width, width, down, spectral_norm)
        self.blocks = nn.ModuleDict(blocks)
        self.block_names = list(blocks)
        self.feature_dim = width
        self.downsamplings = sum(plan)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks.values():
            x = block(x)
        return F.relu(x)  # [B, width, H / 2^d, W / 2^d]; the blocks are pre-activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))  # [B, width]: the representation

    def block_features(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """{name: [B, width]}: globally average-pooled activations after the named blocks;
        "encoder" is the last block's. Runs only as deep as the deepest name."""
        order = [*self.block_names, "encoder"]
        depth = max(order.index(name) for name in names) + 1
        pooled = {}
        for name, block in list(self.blocks.items())[:depth]:
            x = block(x)
            pooled[name] = F.relu(x).mean(dim=(2, 3))
        pooled["encoder"] = pooled[self.block_names[-1]]
        return {name: pooled[name] for name in names}


class Decoder(nn.Module):
    def __init__(self, in_channels: int, width: int, out_channels: int, upsamplings: int):
        super().__init__()
        channels = [in_channels] + [width] * upsamplings
        self.blocks = nn.ModuleList(ResBlockUp(c_in, c_out) for c_in, c_out in zip(channels, channels[1:]))
        self.norm = BatchNorm2d(channels[-1])
        self.out = sn_conv(channels[-1], out_channels, enabled=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h)
        return self.out(F.relu(self.norm(h)))  # [B, out_channels, H, W]


class EncoderDecoder(nn.Module):
    """One encoder and the decoder that maps its features back to full resolution."""

    def __init__(self, encoder: Encoder, decoder: Decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder.feature_map(x))


def check_width(cfg: NetConfig, what: str) -> None:
    if cfg.width < 1:
        raise ConfigError(f"{what}: width {cfg.width} is too small")


@ENCODERS.register("resnet")
def resnet_encoder(cfg: NetConfig, resolution: int, in_channels: int) -> Encoder:
    check_resolution(resolution, ENCODER_PLANS, "encoder 'resnet'")
    check_width(cfg, "encoder 'resnet'")
    return Encoder(in_channels, cfg.width, ENCODER_PLANS[resolution], cfg.spectral_norm)


@DECODERS.register("resnet")
def resnet_decoder(cfg: NetConfig, encoder: nn.Module, out_channels: int) -> Decoder:
    check_width(cfg, "decoder 'resnet'")
    if not hasattr(encoder, "feature_map"):
        raise ConfigError(f"decoder 'resnet' upsamples an encoder's feature map; the {type(encoder).__name__} "
                          "encoder has none (a ViT's tokens are not a map): use encoder resnet or resnet18")
    return Decoder(encoder.feature_dim, cfg.width, out_channels, encoder.downsamplings)


def build_autoencoder(encoder_cfg: NetConfig, decoder_cfg: NetConfig, resolution: int, in_channels: int,
                      out_channels: int, width_divisor: int = 1) -> EncoderDecoder:
    """An encoder and decoder chosen by name from the config, each `width // width_divisor` wide
    (split-brain gives each half of its network half the width)."""
    encoder_cfg = dataclasses.replace(encoder_cfg, width=encoder_cfg.width // width_divisor)
    decoder_cfg = dataclasses.replace(decoder_cfg, width=decoder_cfg.width // width_divisor)
    encoder = ENCODERS.get(encoder_cfg.name, "method.encoder.name")(encoder_cfg, resolution, in_channels)
    decoder = DECODERS.get(decoder_cfg.name, "method.decoder.name")(decoder_cfg, encoder, out_channels)
    return EncoderDecoder(encoder, decoder)
