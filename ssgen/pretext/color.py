"""Colour pretexts (colorization, split-brain): sRGB <-> CIE Lab, quantized L and ab bins, soft
encoding, class rebalancing and annealed-mean decoding. Pure tensor functions, no state.

Images are [..., 3, H, W] with channels on dim -3. Lab uses the sRGB primaries and the D65
white of the sRGB matrix itself (its row sums), so white maps to exactly (100, 0, 0).
"""

from __future__ import annotations

import functools

import torch

# Linear sRGB -> XYZ (IEC 61966-2-1, D65).
_RGB_TO_XYZ = torch.tensor([[0.4124564, 0.3575761, 0.1804375],
                            [0.2126729, 0.7151522, 0.0721750],
                            [0.0193339, 0.1191920, 0.9503041]], dtype=torch.float64)
_XYZ_TO_RGB = torch.linalg.inv(_RGB_TO_XYZ)
_WHITE = _RGB_TO_XYZ.sum(1)
_DELTA = 6.0 / 29.0

AB_GRID = 10.0      # ab bin spacing (Zhang et al. 2016)
AB_BINS = 262       # 10x10 ab cells reachable by in-gamut sRGB colours (see ab_bins; the paper has 313)
L_BINS = 50         # split-brain's L bins, each 2 L units wide


# The conversion matrices as Python numbers, made once: a compiled train step cannot read a
# float tensor's values into Python (ssgen/compiled.py), and the numbers never change.
_RGB_TO_NORMALISED_XYZ = (_RGB_TO_XYZ / _WHITE[:, None]).tolist()
_NORMALISED_XYZ_TO_RGB = (_XYZ_TO_RGB * _WHITE).tolist()


def _mix(matrix: list[list[float]], x: torch.Tensor) -> torch.Tensor:
    """3x3 matrix times the channel vector of every pixel. Elementwise on purpose: a matmul
    would run in bf16 under autocast, far too coarse for colour conversion."""
    c = x.unbind(-3)
    return torch.stack([r[0] * c[0] + r[1] * c[1] + r[2] * c[2] for r in matrix], dim=-3)


def _float(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] -> Lab (L in [0, 100], a and b roughly in [-110, 110])."""
    rgb = _float(rgb).clamp(0.0, 1.0)
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = _mix(_RGB_TO_NORMALISED_XYZ, linear)
    # Cube root above the knee, the linear segment below: a finite gradient everywhere.
    f = torch.where(xyz > _DELTA**3, xyz.clamp_min(_DELTA**3) ** (1 / 3), xyz / (3 * _DELTA**2) + 4 / 29)
    fx, fy, fz = f.unbind(-3)
    return torch.stack([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], dim=-3)


def lab_to_rgb(lab: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """Lab -> sRGB; out-of-gamut colours are clamped to [0, 1] unless `clamp` is false."""
    L, a, b = _float(lab).unbind(-3)
    fy = (L + 16) / 116
    f = torch.stack([fy + a / 500, fy, fy - b / 200], dim=-3)
    xyz = torch.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29))
    linear = _mix(_NORMALISED_XYZ_TO_RGB, xyz)
    rgb = torch.where(linear <= 0.0031308, 12.92 * linear,
                      1.055 * linear.clamp_min(0.0031308) ** (1 / 2.4) - 0.055)
    return rgb.clamp(0.0, 1.0) if clamp else rgb


def image_to_lab(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] RGB images -> Lab."""
    return rgb_to_lab((x + 1) / 2)


def lab_to_image(lab: torch.Tensor) -> torch.Tensor:
    """Lab -> float [-1, 1] RGB images (out-of-gamut colours clamped)."""
    return lab_to_rgb(lab) * 2 - 1


def split_lab(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float [-1, 1] RGB images -> (L [B, 1, H, W], ab [B, 2, H, W])."""
    L, ab = image_to_lab(x).split([1, 2], dim=1)
    return L, ab


def join_lab(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """(L, ab) -> float [-1, 1] RGB images; ab=0 gives the grey image."""
    return lab_to_image(torch.cat([L.float(), ab.float()], dim=1))


# Network-scale views of Lab: L in [-1, 1], ab roughly in [-1, 1].
def normalize_l(L: torch.Tensor) -> torch.Tensor:
    return L / 50 - 1


def denormalize_l(L: torch.Tensor) -> torch.Tensor:
    return (L + 1) * 50


def normalize_ab(ab: torch.Tensor) -> torch.Tensor:
    return ab / 110


def denormalize_ab(ab: torch.Tensor) -> torch.Tensor:
    return ab * 110


# ---------------------------------------------------------------- ab bins
@functools.cache
def ab_bins() -> torch.Tensor:
    """[AB_BINS, 2] float64 centres (a, b) of the 10x10 ab cells that some in-gamut sRGB colour
    falls into, at any L; sorted by a, then b.

    A cell is the square of side 10 around a multiple of 10 (a colour belongs to the cell it
    rounds to), and it counts if ANY colour in it is reachable, not only its centre. The ab
    footprint of the gamut is the projection of the RGB cube's surface, sampled here on a
    257^2 grid per face: the count is stable from 257 up (checked to 2049). Requiring the
    centre itself to be reachable gives 229 bins; Zhang et al.'s published table has 313, a
    superset of these 262 that also holds cells beyond sRGB (e.g. a=-90, b=50, while sRGB's
    a never goes below -86.2), so it cannot be re-derived from the sRGB gamut.
    """
    v = torch.linspace(0, 1, 257, dtype=torch.float64)
    u, w = (t.flatten() for t in torch.meshgrid(v, v, indexing="ij"))
    faces = []
    for level in (0.0, 1.0):
        c = torch.full_like(u, level)
        faces += [torch.stack([c, u, w]), torch.stack([u, c, w]), torch.stack([u, w, c])]
    ab = rgb_to_lab(torch.cat(faces, dim=1)[:, :, None])[1:, :, 0]   # [2, N]
    cells = torch.unique(torch.round(ab / AB_GRID).T, dim=0)        # sorted rows
    assert len(cells) == AB_BINS, f"derived {len(cells)} in-gamut ab bins, expected {AB_BINS}"
    return cells * AB_GRID


def ab_to_bin(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """ab [B, 2, H, W] -> index of the nearest bin [B, H, W] (long)."""
    return _nearest_bins(ab, bins, 1)[1][..., 0]


def bin_to_ab(index: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """bin indices [B, H, W] -> their ab centres [B, 2, H, W]."""
    return bins[index].movedim(-1, 1)


def _nearest_bins(ab: torch.Tensor, bins: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances [B, H, W, k] and indices [B, H, W, k] of the k bins nearest each pixel."""
    points = ab.movedim(1, -1).float()                                   # [B, H, W, 2]
    distances = torch.cdist(points.flatten(0, 2), bins.float())          # [BHW, Q]
    nearest = distances.topk(k, dim=1, largest=False)
    shape = (*points.shape[:-1], k)
    return nearest.values.view(shape), nearest.indices.view(shape)


def soft_encode(ab: torch.Tensor, bins: torch.Tensor, neighbours: int = 5, sigma: float = 5.0) -> torch.Tensor:
    """ab [B, 2, H, W] -> per-pixel distributions over the bins [B, Q, H, W] (Zhang et al. 2016):
    the `neighbours` nearest bins, weighted by a Gaussian of their distance, summing to 1."""
    distances, indices = _nearest_bins(ab, bins, neighbours)
    weights = torch.softmax(-distances**2 / (2 * sigma**2), dim=-1)      # normalised Gaussian
    target = torch.zeros(*indices.shape[:-1], len(bins), device=ab.device)
    return target.scatter_(-1, indices, weights).movedim(-1, 1)


def rebalancing_weights(prior: torch.Tensor, gamma: float = 0.5) -> torch.Tensor:
    """Class weights from an empirical distribution over the bins [Q]: mix it with the uniform
    distribution, invert, and scale so that the expected weight under the prior is 1."""
    prior = prior / prior.sum()
    weights = 1.0 / ((1 - gamma) * prior + gamma / len(prior))
    return weights / (prior * weights).sum()


def annealed_mean(logits: torch.Tensor, bins: torch.Tensor, temperature: float = 0.38) -> torch.Tensor:
    """Per-pixel logits [B, Q, H, W] -> ab [B, 2, H, W]: the mean of the distribution sharpened
    to temperature T (T=1: the mean, vivid colours lost; T->0: the mode, patchy)."""
    probs = torch.softmax(logits.float() / temperature, dim=1)
    return torch.einsum("bqhw,qc->bchw", probs, bins.float())


# ---------------------------------------------------------------- L bins (split-brain)
def l_to_bin(L: torch.Tensor) -> torch.Tensor:
    """L [B, 1, H, W] in [0, 100] -> bin index [B, H, W] of L_BINS equal bins."""
    width = 100 / L_BINS
    return (L[:, 0] / width).long().clamp(0, L_BINS - 1)


def l_bin_centres(device: torch.device | None = None) -> torch.Tensor:
    """[L_BINS, 1] centres of the L bins."""
    width = 100 / L_BINS
    return (torch.arange(L_BINS, device=device, dtype=torch.float32) * width + width / 2)[:, None]
