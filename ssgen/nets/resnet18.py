"""CIFAR-style ResNet-18, the backbone that solo-learn and lightly report their CIFAR tables on.

torchvision's ImageNet stem (7x7 stride-2 conv, max-pool) would shrink a 32 px image to 8x8
before the first stage; the CIFAR variant uses a 3x3 stride-1 conv and no pool, so the four
stages see 32, 16, 8 and 4 px. Each stage is two of torchvision's BasicBlocks, with width, 2, 4
and 8 x width channels; the representation is the global average of the last stage (8 x width).

Own trunk rather than torchvision's ResNet: its channels are fixed at 64..512, so `width`
could not vary. The module names (conv1, bn1, layer1..layer4) are torchvision's, so at width
64 the state dict of a torchvision resnet18 with a 3x3 stem (fc dropped) loads as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssgen.config import NetConfig, bounded
from ssgen.errors import ConfigError
from ssgen.registry import ENCODERS


@dataclass
class ResNet18Config(NetConfig):
    name: str = "resnet18"
    width: int = bounded(64, minimum=1)  # channels of the first stage (64: the standard ResNet-18)
    spectral_norm: bool = False    # not supported: the trunk normalises with batch norm


def blocks_to_run(names: Sequence[str], block_names: Sequence[str], what: str) -> int:
    """How many of `block_names` block_features must run to read `names`; "encoder" (the
    pooled representation) needs them all. Unknown names are ConfigErrors (they come from
    probe configs)."""
    valid = [*block_names, "encoder"]
    for name in names:
        if name not in valid:
            raise ConfigError(f"{what}: unknown layer {name!r}; valid: {', '.join(valid)}")
    return min(max((valid.index(name) + 1 for name in names), default=0), len(block_names))


def reject_spectral_norm(cfg: NetConfig, what: str, norm: str) -> None:
    # NetConfig's default is D's (True); silently dropping a requested SN would mislead.
    if cfg.spectral_norm:
        raise ConfigError(f"{what}: spectral_norm true is not supported (it normalises with {norm}); "
                          f"expected spectral_norm: false")


def stage(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Two BasicBlocks; the first changes size/channels, with a 1x1 conv + BN shortcut if so."""
    from torchvision.models.resnet import BasicBlock  # here: torchvision's import costs ~2 s of start-up
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                 nn.BatchNorm2d(out_channels))
    return nn.Sequential(BasicBlock(in_channels, out_channels, stride, shortcut),
                         BasicBlock(out_channels, out_channels))


class ResNet18(nn.Module):
    def __init__(self, in_channels: int, width: int):
        super().__init__()
        channels = [width, 2 * width, 4 * width, 8 * width]
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = stage(width, channels[0], stride=1)
        self.layer2 = stage(channels[0], channels[1], stride=2)
        self.layer3 = stage(channels[1], channels[2], stride=2)
        self.layer4 = stage(channels[2], channels[3], stride=2)
        self.block_names = ["layer1", "layer2", "layer3", "layer4"]
        self.feature_dim = channels[-1]
        self.downsamplings = 3  # feature_map is 1/8 of the input: what a decoder upsamples back
        for module in self.modules():  # torchvision's ResNet init (BN: weight 1, bias 0, as built)
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn1(self.conv1(x)))

    def stages(self) -> list[nn.Module]:
        return [getattr(self, name) for name in self.block_names]

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 8 * width, H / 8, W / 8]: the last stage's output, for decoders."""
        h = self.stem(x)
        for layer in self.stages():
            h = layer(h)
        return h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))  # [B, feature_dim]

    def block_features(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """{name: [B, C]}: each named stage's output (post-ReLU), globally average-pooled;
        "encoder" is forward(x). Runs only as deep as the deepest name."""
        depth = blocks_to_run(names, self.block_names, "encoder 'resnet18'")
        h = self.stem(x)
        pooled = {}
        for name, layer in zip(self.block_names[:depth], self.stages()):
            h = layer(h)
            pooled[name] = h.mean(dim=(2, 3))
        if "encoder" in names:
            pooled["encoder"] = pooled["layer4"]
        return {name: pooled[name] for name in names}


@ENCODERS.register("resnet18", config=ResNet18Config)
def resnet18_encoder(cfg: NetConfig, resolution: int, in_channels: int) -> ResNet18:
    """Any resolution (the representation is a global average); `cfg.width` is the first
    stage's channels: a plain NetConfig's width 128 would build a 2x-wide ResNet-18."""
    reject_spectral_norm(cfg, "encoder 'resnet18'", "batch norm")
    return ResNet18(in_channels, cfg.width)
