"""Several augmented views of one batch, made on its device, each image with its own draws.

A `ViewConfig` describes one kind of view (the papers' pipeline: random resized crop, flip,
colour jitter, grayscale, blur, solarize); `Augmenter` makes `count` views of each kind from a
batch in [-1, 1]. Draws come from torch's global RNG on the batch's device, which the trainer
checkpoints, so a resumed run repeats them.

Presets (for CIFAR's 32 px; views in this order; blur sigma in pixels of the view). Each names
the recipe it follows at 32 px; where that is not the paper's ImageNet recipe, the departure and
its reason (tests/test_augment.py pins every preset to these sources):
  simclr    SimCLR (Chen et al. 2020), appendix B.9 for CIFAR: crop (0.08, 1), colour strength
            0.5 = jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grayscale 0.2, no blur. Two views.
            (solo-learn's CIFAR simclr uses strength 1.0 and blur 0.5.)
  byol      BYOL (Grill et al. 2020), table 6, as solo-learn's CIFAR byol (augmentations/
            asymmetric.yaml) and lightly's CIFAR-10 benchmark run it at 32 px: crop (0.08, 1),
            jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grayscale 0.2, solarize 0 / 0.2, and NO blur (the
            paper's 1.0 / 0.1 is for 224 px: sigma 2 px is 0.9% of that side, 6% of 32 px).
  moco_v2   MoCo v2+ as solo-learn's CIFAR mocov2plus runs it (augmentations/symmetric_weak.yaml),
            which configs/moco_cifar10.yaml reproduces: SimCLR's views with blur 0.5, crop
            (0.08, 1). Departs from MoCo v2's ImageNet code (main_moco.py --aug-plus) and lightly's
            MoCoV2Transform, crop (0.2, 1) at 224 px: at 32 px every CIFAR recipe named here crops
            from 0.08 (SimCLR's appendix, solo-learn, lightly's benchmark, whose MoCo takes SimCLR's
            views).
  dino      DINO (Caron et al. 2021) multi-crop at 32 px: two global crops, scale (0.4, 1),
            solarize 0 / 0.2, and 6 local crops at half the side (16 px), scale (0.05, 0.4);
            BYOL's colour. 6 local crops as lightly's DINOTransform (DINO's main_dino.py defaults to
            8; its paper's multi-crop ablation is 2 x 224 + 6 x 96). No blur: lightly's CIFAR-10
            benchmark turns DINO's blur off at 32 px (sigma 2 px would be 12.5% of a 16 px crop,
            2.1% of DINO's 96 px one). Departs from both CIFAR references (solo-learn's CIFAR dino,
            lightly's benchmark), which drop the local crops at 32 px: multi-crop is the part of
            DINO that the dino task, and iBOT's local views, exist to exercise. Their two views:
            preset `dino_cifar`.
  dino_cifar  solo-learn's CIFAR dino (augmentations/asymmetric.yaml), which configs/
            dino_cifar10.yaml reproduces: byol's two views, no local crops.
  exemplar  Exemplar-CNN (Dosovitskiy et al. 2014), section 3 as far as these ops reach: zoom up
            to 1.4x (area >= 1 / 1.4^2 = 0.5) with the crop's position as the translation, contrast
            0.5, brightness 0.4 (value x 0.7-1.4), saturation 0.8 (power 0.25-4), hue +-0.1, always
            applied. Their rotation (+-20 degrees) is not here; a flip (0.5) is. Two views.
  weak      FixMatch (Sohn et al. 2020) weak view: flip and a shift of up to 12.5% (4 px at 32),
            border reflected; no colour.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ssgen.augment import ops
from ssgen.config import from_dict, bounded
from ssgen.errors import ConfigError
from ssgen.parallel import local_slice, world


@dataclass
class ViewConfig:
    """One kind of view. Defaults: SimCLR's CIFAR view."""
    size: float = bounded(1.0, above=0.0, maximum=1.0)  # output side / input side (1.0 global, 0.5 local)
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])  # crop area / image area
    crop_ratio: list[float] = field(default_factory=lambda: [3 / 4, 4 / 3])  # crop width / height
    translate: float = bounded(0.0, minimum=0.0, maximum=0.5)  # shift of up to this share of the side, whole pixels
    flip: float = bounded(0.5, minimum=0.0, maximum=1.0)  # probability of a horizontal flip
    jitter: list[float] = field(default_factory=lambda: [0.4, 0.4, 0.4, 0.1])  # brightness, contrast, saturation, hue
    jitter_p: float = bounded(0.8, minimum=0.0, maximum=1.0)
    grayscale_p: float = bounded(0.2, minimum=0.0, maximum=1.0)
    blur_p: float = bounded(0.0, minimum=0.0, maximum=1.0)
    blur_sigma: list[float] = field(default_factory=lambda: [0.1, 2.0])  # pixels of the view
    solarize_p: float = bounded(0.0, minimum=0.0, maximum=1.0)
    count: int = bounded(1, minimum=1)  # views of this kind

    def __post_init__(self):
        # List fields: ssgen.config's `bounded` checks numbers only.
        interval(self.crop_scale, "crop_scale", 0.0, 1.0, "an area share in (0, 1]")
        interval(self.crop_ratio, "crop_ratio", 0.0, math.inf, "a positive aspect ratio")
        interval(self.blur_sigma, "blur_sigma", 0.0, math.inf, "a positive sigma in pixels")
        if len(self.jitter) != 4 or min(self.jitter) < 0 or self.jitter[3] > 0.5:
            raise ConfigError(f"jitter: {self.jitter!r} is invalid; expected [brightness, contrast, "
                              f"saturation, hue], each >= 0, hue <= 0.5")


def interval(values: list[float], name: str, low: float, high: float, what: str) -> None:
    if len(values) != 2 or not low < values[0] <= values[1] <= high:
        raise ConfigError(f"{name}: {values!r} is invalid; expected [low, high] with low <= high, "
                          f"each {what}")


BYOL_COLOR = dict(jitter=[0.4, 0.4, 0.2, 0.1])
# solo-learn's CIFAR asymmetric.yaml: BYOL's two views at 32 px, blur off, solarize on the second.
BYOL_32PX = [ViewConfig(**BYOL_COLOR), ViewConfig(**BYOL_COLOR, solarize_p=0.2)]
DINO_GLOBAL = dict(**BYOL_COLOR, crop_scale=[0.4, 1.0])
PRESETS: dict[str, list[ViewConfig]] = {
    "simclr": [ViewConfig(count=2)],
    "byol": BYOL_32PX,
    "moco_v2": [ViewConfig(blur_p=0.5, count=2)],
    "dino": [ViewConfig(**DINO_GLOBAL), ViewConfig(**DINO_GLOBAL, solarize_p=0.2),
             ViewConfig(**BYOL_COLOR, size=0.5, crop_scale=[0.05, 0.4], count=6)],
    "dino_cifar": BYOL_32PX,
    "exemplar": [ViewConfig(crop_scale=[0.5, 1.0], jitter=[0.4, 0.5, 0.8, 0.1], jitter_p=1.0,
                            grayscale_p=0.0, count=2)],
    "weak": [ViewConfig(crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0], translate=0.125, jitter_p=0.0,
                        grayscale_p=0.0)],
}

NO_AUGMENTATION = "none"  # where a preset is named: the images as they are


def view_configs(preset: str) -> list[ViewConfig]:
    """A fresh copy of a preset's views (callers may change them, e.g. the count of local crops)."""
    if preset not in PRESETS:
        raise ConfigError(f"augmentation preset {preset!r} is unknown; valid presets: {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[preset])


def chance(p: float, n: int, device: torch.device) -> torch.Tensor:
    """[n] booleans, each true with probability p."""
    return torch.rand(n, device=device) < p


def uniform(low: float, high: float, n: int, device: torch.device) -> torch.Tensor:
    return torch.empty(n, device=device).uniform_(low, high)


def jitter_factors(cfg: ViewConfig, n: int, device: torch.device) -> torch.Tensor:
    """[n,4] per-image brightness, contrast, saturation factors and hue shift, neutral
    (1, 1, 1, 0) for the images that skip the jitter."""
    *strengths, hue = cfg.jitter
    apply = chance(cfg.jitter_p, n, device)
    factors = [torch.where(apply, uniform(max(0.0, 1 - s), 1 + s, n, device), 1.0) for s in strengths]
    return torch.stack(factors + [torch.where(apply, uniform(-hue, hue, n, device), 0.0)], 1)


def augment(x: torch.Tensor, cfg: ViewConfig, size: int) -> torch.Tensor:
    """One view of each image of x ([B,3,R,R] in [-1, 1]) -> [B,3,size,size] in [-1, 1]."""
    n, device, resolution = x.shape[0], x.device, x.shape[-1]
    x = (x + 1) / 2
    boxes = ops.random_boxes(n, cfg.crop_scale, cfg.crop_ratio, device)
    if cfg.translate > 0:
        reach = round(cfg.translate * resolution)
        shift = torch.randint(-reach, reach + 1, (n, 2), device=device)
        boxes[:, :2] += shift / resolution
    x = ops.resized_crop(x, boxes, size, chance(cfg.flip, n, device))
    if cfg.jitter_p > 0:
        x = ops.color_jitter(x, jitter_factors(cfg, n, device))
    if cfg.grayscale_p > 0:
        x = ops.grayscale(x, chance(cfg.grayscale_p, n, device))
    if cfg.blur_p > 0:
        sigma = uniform(*cfg.blur_sigma, n, device) * chance(cfg.blur_p, n, device)
        # +-3 sigma holds 99.7% of the kernel; reflection needs the radius below the side
        x = ops.gaussian_blur(x, sigma, min(math.ceil(3 * cfg.blur_sigma[1]), size - 1))
    if cfg.solarize_p > 0:
        x = ops.solarize(x, chance(cfg.solarize_p, n, device))
    return x * 2 - 1


class Augmenter(nn.Module):
    """views: the kinds of view, made in order, `count` of each; resolution: the input's side."""

    def __init__(self, views: list[ViewConfig], resolution: int):
        super().__init__()
        if not views:
            raise ConfigError("augmentation views: the list is empty; expected at least one view")
        # Through the config parser, so a view built in code is checked like one read from YAML.
        self.views = [from_dict(ViewConfig, dataclasses.asdict(v), f"views[{i}]") for i, v in enumerate(views)]
        self.resolution = resolution
        self.sizes = [round(v.size * resolution) for v in self.views]
        for i, (v, size) in enumerate(zip(self.views, self.sizes)):
            if size < 2:
                raise ConfigError(f"views[{i}].size: {v.size} of {resolution} px is {size} px; "
                                  f"expected at least 2 px")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x [B,3,R,R] in [-1, 1] -> every view in order, each [B,3,size,size] in [-1, 1]."""
        if x.shape[1:] != (3, self.resolution, self.resolution):
            raise ValueError(f"expected images [B,3,{self.resolution},{self.resolution}], got {list(x.shape)}")
        views = []
        for cfg, size in zip(self.views, self.sizes):
            # All views of one kind in one batched pass.
            views += augment(x.repeat(cfg.count, 1, 1, 1), cfg, size).chunk(cfg.count)
        return views


def augmented_views(augment: Callable[[torch.Tensor], list[torch.Tensor]], x: torch.Tensor) -> list[torch.Tensor]:
    """augment(x) for this process's slice, drawn as one process draws for the global batch
    (every process augments the global batch's worth and keeps its rows), so K processes see
    the views one process would."""
    world_size = world().size
    if world_size == 1:
        return augment(x)
    return [local_slice(view) for view in augment(torch.cat([x] * world_size))]
