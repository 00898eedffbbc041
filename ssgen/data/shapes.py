"""`shapes`: an embedded procedural dataset of ten upright glyphs on varied dark backgrounds.

Every glyph has a canonical 'up' (arrow, house, letter-like forms), drawn with only small
rotation jitter, so rotating an image by 90/180/270 degrees is detectable: the rotation pretext
task is learnable, and a class label is there for the linear probe.

Orientation must be readable by a small network within a few hundred steps, so figure and ground
never trade places: glyphs are light (every channel >= 0.55) and backgrounds dark (every channel
<= 0.45), with low-contrast patterns. An earlier version drew glyph and background colours
independently (either could be the lighter); there, a plain 3-layer CNN stayed at chance on
rotation for 150 steps, and even a logistic regression on 8x8 luminance is at chance, where it now
reads the rotation of most images (tests/test_shapes_data.py). Glyphs fill half to most of the
image, so that a small generator learns to draw them recognisably in a short run.
Deterministic from a seed; vectorised in torch.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F

from ssgen.config import DataConfig
from ssgen.data.base import ImageSet
from ssgen.registry import DATASETS

DEFAULT_SIZES = {"train": 10000, "test": 2000}
SPLIT_SEEDS = {"train": 0, "test": 1_000_003}  # test images never repeat train images
GLYPH_LEVELS = (0.55, 1.0)        # each glyph colour channel is drawn from this range...
BACKGROUND_LEVELS = (0.0, 0.45)   # ...and each background channel from this one: glyphs are lighter
PATTERN_CONTRAST = 0.25           # patterned backgrounds mix two colours this far apart (fraction)
SCALE_RANGE = (0.65, 0.9)         # glyph half-size, as a fraction of the image's half-size
MAX_TILT_DEGREES = 15             # small jitter keeps 'up' up
NOISE_STD = 0.03


def _box(u, v, u0, u1, v0, v1):
    return (u > u0) & (u < u1) & (v > v0) & (v < v1)


# Each glyph is a mask over object coordinates (u to the right, v DOWN, both in about [-1, 1]).
GLYPHS = {
    "triangle": lambda u, v: (v > -0.8) & (v < 0.8) & (u.abs() < (v + 0.8) * 0.55),
    "arrow": lambda u, v: _box(u, v, -0.2, 0.2, -0.05, 0.85) | ((v < 0) & (v > -0.85) & (u.abs() < (v + 0.85) * 0.9)),
    "tee": lambda u, v: _box(u, v, -0.8, 0.8, -0.8, -0.45) | _box(u, v, -0.2, 0.2, -0.5, 0.8),
    "ell": lambda u, v: _box(u, v, -0.7, -0.3, -0.8, 0.8) | _box(u, v, -0.7, 0.6, 0.45, 0.8),
    "house": lambda u, v: _box(u, v, -0.6, 0.6, 0.0, 0.8) | ((v < 0.02) & (v > -0.8) & (u.abs() < (v + 0.8) * 1.0)),
    "dome": lambda u, v: (u.square() + (v - 0.35).square() < 0.8 ** 2) & (v < 0.35),
    "cup": lambda u, v: _box(u, v, -0.7, 0.7, -0.6, 0.75) & ~_box(u, v, -0.35, 0.35, -0.7, 0.4),
    "lollipop": lambda u, v: (u.square() + (v + 0.4).square() < 0.4 ** 2) | _box(u, v, -0.13, 0.13, -0.4, 0.85),
    "eff": lambda u, v: (_box(u, v, -0.6, -0.25, -0.8, 0.8) | _box(u, v, -0.6, 0.65, -0.8, -0.5)
                         | _box(u, v, -0.6, 0.35, -0.15, 0.15)),
    "chevron": lambda u, v: (u.abs() < 0.85) & (v > u.abs() - 0.6) & (v < u.abs() - 0.1),
}
CLASSES = list(GLYPHS)


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates (y, x) in [-1, 1], each [size, size]."""
    centres = (torch.arange(size) + 0.5) / size * 2 - 1
    return torch.meshgrid(centres, centres, indexing="ij")


def _uniform(low: float, high: float, *shape: int, g: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(*shape, generator=g)


def _backgrounds(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """[n,3,S,S] dark backgrounds: solid, gradient, soft stripes or soft noise, one kind per image."""
    y, x = _grid(size)
    kind = torch.randint(0, 4, (n,), generator=g)
    c1 = _uniform(*BACKGROUND_LEVELS, n, 3, 1, 1, g=g)
    c2 = c1 + (_uniform(*BACKGROUND_LEVELS, n, 3, 1, 1, g=g) - c1) * PATTERN_CONTRAST
    angle = torch.rand(n, 1, 1, generator=g) * 2 * math.pi
    along = x * angle.cos() + y * angle.sin()  # [n,S,S], position along a random direction
    frequency = _uniform(3, 9, n, 1, 1, g=g)
    noise = F.interpolate(torch.rand(n, 1, 4, 4, generator=g), size=(size, size), mode="bilinear",
                          align_corners=False)[:, 0]
    mix = torch.zeros(n, size, size)
    for k, pattern in enumerate([None, (along + 1.5) / 3, (torch.sin(along * frequency) * 2).clamp(-1, 1) / 2 + 0.5,
                                 noise]):
        if pattern is not None:
            rows = kind == k
            mix[rows] = pattern[rows]
    return c1 + (c2 - c1) * mix[:, None]


def _glyph_coverage(labels: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """[n,1,S,S] fraction of each pixel the glyph covers: masks drawn at twice the size and averaged,
    for anti-aliased edges. Each glyph is scaled, tilted and placed at random."""
    n = len(labels)
    scale = _uniform(*SCALE_RANGE, n, g=g)
    centre = (torch.rand(n, 2, generator=g) * 2 - 1) * (1 - scale[:, None]) * 0.5
    tilt = _uniform(-1, 1, n, g=g) * math.radians(MAX_TILT_DEGREES)
    y, x = _grid(2 * size)
    dx = x - centre[:, 0, None, None]
    dy = y - centre[:, 1, None, None]
    cos, sin = tilt.cos()[:, None, None], tilt.sin()[:, None, None]
    scale = scale[:, None, None]
    u, v = (dx * cos + dy * sin) / scale, (-dx * sin + dy * cos) / scale
    mask = torch.zeros(n, 2 * size, 2 * size)
    for label, glyph in enumerate(GLYPHS.values()):
        rows = labels == label
        mask[rows] = glyph(u[rows], v[rows]).float()
    return F.avg_pool2d(mask[:, None], 2)


def make_shapes(n: int, resolution: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n images uint8 [n,3,R,R] and labels [n], deterministic in (n, resolution, seed)."""
    images, labels = _drawn(n, resolution, seed)
    return images.clone(), labels.clone()  # copies: a caller's in-place edit must not reach the cache


@lru_cache(maxsize=4)
def _drawn(n: int, resolution: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Cached: a training run draws its train split up to three times (trainer, FD, probe).
    g = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % len(CLASSES))[torch.randperm(n, generator=g)]
    coverage = _glyph_coverage(labels, resolution, g)
    colour = _uniform(*GLYPH_LEVELS, n, 3, 1, 1, g=g)
    images = torch.lerp(_backgrounds(n, resolution, g), colour, coverage)
    images = images + NOISE_STD * torch.randn(images.shape, generator=g)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels


@DATASETS.register("shapes")
def shapes(cfg: DataConfig, split: str) -> ImageSet:
    n = (cfg.train_size if split == "train" else cfg.test_size) or DEFAULT_SIZES[split]
    images, labels = make_shapes(n, cfg.resolution, cfg.seed + SPLIT_SEEDS[split])
    return ImageSet("shapes", split, cfg.resolution, CLASSES, labels, images=images)
