"""A small Vision Transformer for 32 px images, with the masked-token path iBOT needs.

The transformer is torchvision's VisionTransformer, taken apart: its class token, position
embedding, encoder layers and final norm are used as they are; its patch projection is
rebuilt for any number of input channels (torchvision's takes RGB only) and its
classification head is dropped. Tokens run through the layers here, not through
torchvision's forward, so that a mask can act between patch projection and position
embedding, and block_features can stop early.

    image [B, C, R, R] -> patches (conv, kernel = stride = patch_size) [B, N, dim], N = (R / p)^2
      -> masked patches replaced by a learned mask token (iBOT/BEiT)
      -> [class token, patches] + position embedding -> depth layers -> LayerNorm [B, 1 + N, dim]

Defaults are ViT-Tiny (DeiT-Ti: dim 192, depth 12, heads 3, MLP 4x) at patch 4, the small ViT
the self-supervised CIFAR tables report; CPU runs set a smaller width and depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssgen.config import NetConfig, bounded
from ssgen.errors import ConfigError
from ssgen.nets.resnet18 import blocks_to_run, reject_spectral_norm
from ssgen.registry import ENCODERS


@dataclass
class ViTConfig(NetConfig):
    name: str = "vit"
    width: int = bounded(192, minimum=1)  # token (embedding) dimension
    patch_size: int = bounded(4, minimum=1)  # pixels per patch side; must divide the resolution
    depth: int = bounded(12, minimum=1)  # transformer layers
    heads: int = bounded(3, minimum=1)  # attention heads; must divide width
    mlp_ratio: float = bounded(4.0, above=0.0)  # MLP hidden size / width
    spectral_norm: bool = False       # not supported: the layers normalise with layer norm


class ViT(nn.Module):
    def __init__(self, in_channels: int, resolution: int, cfg: ViTConfig):
        super().__init__()
        from torchvision.models.vision_transformer import VisionTransformer  # lazily: ~2 s of start-up

        vit = VisionTransformer(image_size=resolution, patch_size=cfg.patch_size, num_layers=cfg.depth,
                                num_heads=cfg.heads, hidden_dim=cfg.width,
                                mlp_dim=round(cfg.width * cfg.mlp_ratio))
        self.resolution, self.patch_size = resolution, cfg.patch_size
        self.num_patches = (resolution // cfg.patch_size) ** 2
        self.conv_proj = nn.Conv2d(in_channels, cfg.width, cfg.patch_size, stride=cfg.patch_size)
        fan_in = in_channels * cfg.patch_size**2
        nn.init.trunc_normal_(self.conv_proj.weight, std=fan_in**-0.5)  # as torchvision inits its own
        nn.init.zeros_(self.conv_proj.bias)
        self.class_token = vit.class_token
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.width))  # zeros, as iBOT's
        self.encoder = vit.encoder  # pos_embedding [1, 1 + N, dim], layers, ln
        self.block_names = [f"block{index}" for index in range(1, cfg.depth + 1)]
        self.feature_dim = cfg.width

    def embed(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, 1 + N, dim]: class token and (masked) patch embeddings, position added."""
        if x.shape[-1] != x.shape[-2] or x.shape[-1] % self.patch_size:
            raise ValueError(f"ViT with {self.patch_size} px patches got shape {tuple(x.shape)}; expected "
                             f"square images whose side is a multiple of {self.patch_size}")
        patches = self.conv_proj(x).flatten(2).transpose(1, 2)  # [B, N, dim], row-major patches
        if mask is not None:
            if mask.dtype != torch.bool or mask.shape != patches.shape[:2]:
                raise ValueError(f"mask: expected bool [{len(x)}, {self.num_patches}], "
                                 f"got {mask.dtype} {list(mask.shape)}")
            patches = torch.where(mask.unsqueeze(-1), self.mask_token, patches)
        class_token = self.class_token.expand(len(x), -1, -1)
        return torch.cat([class_token, patches], dim=1) + self.position_embedding(x.shape[-1] // self.patch_size)

    def position_embedding(self, grid: int) -> torch.Tensor:
        """[1, 1 + grid^2, dim]: the learned embedding, bicubically resized to a grid of another
        size (DINO's local crops are smaller than the images the ViT was built for)."""
        embedding = self.encoder.pos_embedding
        built = self.resolution // self.patch_size
        if grid == built:
            return embedding
        patches = embedding[:, 1:].reshape(1, built, built, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
        return torch.cat([embedding[:, :1], patches.permute(0, 2, 3, 1).flatten(1, 2)], dim=1)

    def tokens(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """[B, 1 + N, dim] after the final norm, class token first. mask: bool [B, N], True
        where a patch's embedding is replaced by the mask token (its pixels are never seen)."""
        # Not self.encoder(...): torchvision's Encoder.forward adds the position embedding itself.
        return self.encoder.ln(self.encoder.layers(self.embed(x, mask)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tokens(x)[:, 0]  # [B, dim]: the class token

    def block_features(self, x: torch.Tensor, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """{name: [B, dim]}: the mean of the patch tokens after each named block (before the
        final norm; the class token only starts to summarise the image in the late blocks);
        "encoder" is forward(x). Runs only as deep as the deepest name."""
        depth = blocks_to_run(names, self.block_names, "encoder 'vit'")
        h = self.embed(x)
        pooled = {}
        for name, layer in zip(self.block_names[:depth], self.encoder.layers):
            h = layer(h)
            pooled[name] = h[:, 1:].mean(dim=1)
        if "encoder" in names:
            pooled["encoder"] = self.encoder.ln(h)[:, 0]
        return {name: pooled[name] for name in names}


@ENCODERS.register("vit", config=ViTConfig)
def vit_encoder(cfg: ViTConfig, resolution: int, in_channels: int) -> ViT:
    what = "encoder 'vit'"
    if not isinstance(cfg, ViTConfig):
        raise TypeError(f"{what}: expected its options as a ViTConfig, got {type(cfg).__name__}")
    reject_spectral_norm(cfg, what, "layer norm")
    if resolution % cfg.patch_size:
        raise ConfigError(f"{what}: patch_size {cfg.patch_size} does not divide resolution {resolution}; "
                          f"expected a divisor of {resolution}")
    if cfg.width % cfg.heads:
        raise ConfigError(f"{what}: heads {cfg.heads} does not divide width {cfg.width}; "
                          f"expected a divisor of {cfg.width}")
    return ViT(in_channels, resolution, cfg)
