"""The Generator and Discriminator shells that resnet.py and dcgan.py fill with their blocks.

Both architectures share one layout, so one piece of code serves them:
    G: z -> linear -> [B, C0, S, S] -> blocks, each (h, z) -> h, x2 size -> norm -> ReLU -> conv3x3 -> tanh
    D: x -> named blocks -> activation -> global pool (sum, or mean) -> features [B, C]; critic: linear(C, 1)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssgen.config import NetConfig, choice, bounded
from ssgen.errors import ConfigError
from ssgen.nets.blocks import generator_norm, sn_conv, sn_linear

# (in_channels, out_channels, norm factory) -> a module called as block(h, z) that doubles H and W
UpBlock = Callable[[int, int, Callable[[int], nn.Module]], nn.Module]


def check_resolution(resolution: int, supported: Iterable[int], what: str) -> None:
    supported = sorted(supported)
    if resolution not in supported:
        raise ConfigError(f"{what}: resolution {resolution} is not supported; "
                          f"supported: {', '.join(map(str, supported))}")


def scaled_channels(width: int, divisors: Sequence[int], what: str) -> list[int]:
    """Channels `width // d` per stage; width is the widest stage, so it must divide evenly."""
    if any(width % d for d in divisors):
        raise ConfigError(f"{what}: width {width} must be a multiple of {max(divisors)} at this resolution")
    return [width // d for d in divisors]


class Generator(nn.Module):
    def __init__(self, z_dim: int, start_size: int, channels: Sequence[int], block: UpBlock,
                 self_modulated: bool):
        super().__init__()
        self.z_dim, self.start_size = z_dim, start_size
        norm = partial(generator_norm, z_dim=z_dim, self_modulated=self_modulated)
        self.stem = sn_linear(z_dim, channels[0] * start_size**2, enabled=False)
        self.blocks = nn.ModuleList(block(c_in, c_out, norm) for c_in, c_out in zip(channels, channels[1:]))
        self.norm = norm(channels[-1])
        self.to_rgb = sn_conv(channels[-1], 3, enabled=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.stem(z).unflatten(1, (-1, self.start_size, self.start_size))  # [B, C0, S, S]
        for block in self.blocks:
            h = block(h, z)
        return torch.tanh(self.to_rgb(F.relu(self.norm(h, z))))  # [B, 3, R, R] in [-1, 1]


@dataclass
class GeneratorConfig(NetConfig):
    z_dim: int = bounded(128, minimum=1)  # latent size
    sbn: bool = False              # self-modulated batch norm (the SS-GAN paper's best model)


@dataclass
class DiscriminatorConfig(NetConfig):
    # The global pooling of D's last block: sum (SNGAN's and Mimicry's code) or mean (compare_gan's
    # resnet_cifar). Mean is sum / (H * W): the critic's logits shrink by that factor (64 at 32 px).
    pooling: str = choice("sum", "sum", "mean")


class Discriminator(nn.Module):
    """`activation` is applied to a block's output wherever it is read out (penultimate features,
    block_features): ReLU for pre-activation residual blocks, Identity for blocks that end in one.
    No batch-dependent layers: real, fake and rotated images share one forward pass."""

    def __init__(self, blocks: dict[str, nn.Module], feature_dim: int, activation: nn.Module,
                 spectral_norm: bool, pooling: str = "sum"):
        super().__init__()
        if pooling not in ("sum", "mean"):
            raise ConfigError(f"discriminator pooling {pooling!r} is unknown; expected sum or mean")
        self.pooling = pooling
        self.blocks = nn.ModuleDict(blocks)
        self.block_names = list(blocks)
        self.feature_dim = feature_dim  # channels of the last block
        self.activation = activation
        self.critic = sn_linear(feature_dim, 1, enabled=spectral_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks.values():
            x = block(x)
        return self.pool(x)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's output [B, C, H, W], activated, pooled globally -> [B, C]."""
        x = self.activation(x)
        return x.sum(dim=(2, 3)) if self.pooling == "sum" else x.mean(dim=(2, 3))

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """The critic's logit per image: [B]."""
        return self.critic(self(x)).squeeze(1)

    def block_features(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """{name: [B, C]}: each named block's activated output, globally average-pooled
        ("penultimate": forward(x), pooled as the critic reads it). Runs only as deep as the deepest name."""
        valid = [*self.block_names, "penultimate"]
        for name in names:
            if name not in valid:
                raise ConfigError(f"unknown discriminator layer {name!r}; valid: {', '.join(valid)}")
        depth = max(valid.index(name) for name in names) + 1 if names else 0
        features = {}
        for name, block in list(self.blocks.items())[:depth]:
            x = block(x)
            if name in names:
                features[name] = self.activation(x).mean(dim=(2, 3))
        if "penultimate" in names:
            features["penultimate"] = self.pool(x)
        return {name: features[name] for name in names}
