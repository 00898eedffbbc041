"""The transformations whose parameters EnAET's heads regress (Wang et al. 2019, after AET,
Zhang et al. 2019), drawn per image on the batch's device from torch's global RNG.

Spatial, as 3x3 homographies H that map each output pixel's normalised coordinates (-1..1) to
where it samples the input (bilinear, zeros outside: grey in [-1, 1]):
    euclidean   rotation (+-30 degrees) and translation (+-0.2, a tenth of the side)
    similarity  euclidean with an isotropic scale (0.8-1.2)
    affine      rotation, scales per axis (0.8-1.2), shear (+-0.3), translation
    projective  affine with a perspective row (+-0.15)
    parameters: the first 8 entries of H minus the identity's (H[2, 2] stays 1)
Non-spatial (`ccbs`): colour (saturation), contrast, brightness and sharpness factors, each
1 +- 0.5, applied in that order; parameters: the factors minus 1.
The ranges are moderate so that the transformed image keeps its class: EnAET also asks the
classifier to predict alike on x and t(x).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ssgen.augment import ops

SPATIAL = ("projective", "affine", "similarity", "euclidean")
TRANSFORMATIONS = (*SPATIAL, "ccbs")
PARAMETERS = {**{kind: 8 for kind in SPATIAL}, "ccbs": 4}


def uniform(low: float, high: float, n: int, device: torch.device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(low, high)


def random_homographies(kind: str, n: int, device: torch.device) -> torch.Tensor:
    """[n, 3, 3] homographies of the given kind (see the module's docstring)."""
    if kind not in SPATIAL:
        raise ValueError(f"unknown spatial transformation {kind!r}; expected one of {', '.join(SPATIAL)}")
    angle = uniform(-math.pi / 6, math.pi / 6, n, device)
    cos, sin = angle.cos(), angle.sin()
    zero, one = torch.zeros(n, device=device), torch.ones(n, device=device)
    linear = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)  # [n, 2, 2]
    if kind == "similarity":
        linear = linear * uniform(0.8, 1.2, n, device).view(n, 1, 1)
    elif kind in ("affine", "projective"):
        scales = torch.diag_embed(torch.stack([uniform(0.8, 1.2, n, device), uniform(0.8, 1.2, n, device)], 1))
        shear = torch.stack([torch.stack([one, uniform(-0.3, 0.3, n, device)], 1), torch.stack([zero, one], 1)], 1)
        linear = linear @ scales @ shear
    translation = torch.stack([uniform(-0.2, 0.2, n, device), uniform(-0.2, 0.2, n, device)], 1)
    perspective = (torch.stack([uniform(-0.15, 0.15, n, device), uniform(-0.15, 0.15, n, device)], 1)
                   if kind == "projective" else torch.zeros(n, 2, device=device))
    top = torch.cat([linear, translation[:, :, None]], 2)                      # [n, 2, 3]
    bottom = torch.cat([perspective, one[:, None]], 1)[:, None, :]             # [n, 1, 3]
    return torch.cat([top, bottom], 1)


def warp(x: torch.Tensor, homographies: torch.Tensor) -> torch.Tensor:
    """Each image [B, C, H, W] resampled through its homography [B, 3, 3]."""
    n, _, height, width = x.shape
    across = (torch.arange(width, device=x.device, dtype=x.dtype) * 2 + 1) / width - 1  # pixel centres
    down = (torch.arange(height, device=x.device, dtype=x.dtype) * 2 + 1) / height - 1
    v, u = torch.meshgrid(down, across, indexing="ij")
    points = torch.stack([u, v, torch.ones_like(u)], -1).view(1, -1, 3)         # [1, HW, 3]
    mapped = points @ homographies.to(x.dtype).transpose(1, 2)                   # [B, HW, 3]
    grid = (mapped[..., :2] / mapped[..., 2:]).view(n, height, width, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def ccbs(x: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Colour, contrast, brightness and sharpness by factors [B, 4] (1: unchanged), on [-1, 1] images."""
    colour, contrast, brightness, sharpness = factors.unbind(1)
    y = (x + 1) / 2
    y = ops.sharpness(ops.brightness(ops.contrast(ops.saturation(y, colour), contrast), brightness), sharpness)
    return y * 2 - 1


def random_transformation(kind: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(t(x), t's parameters [B, PARAMETERS[kind]]) for a random t of the kind per image."""
    n = x.shape[0]
    if kind == "ccbs":
        factors = torch.stack([uniform(0.5, 1.5, n, x.device) for _ in range(4)], 1)
        return ccbs(x, factors), factors - 1
    homographies = random_homographies(kind, n, x.device)
    identity = torch.eye(3, device=x.device).flatten()[:8]
    return warp(x, homographies), homographies.flatten(1)[:, :8] - identity
