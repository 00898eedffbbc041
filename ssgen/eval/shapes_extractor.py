"""FD(shapes): a Frechet distance in the feature space of a small classifier of the `shapes` glyphs.

Inception features describe natural photographs and need a download; this network was trained on
the embedded `shapes` train split (tools/train_shapes_extractor.py) and ships with the package
(ssgen/assets/shapes_classifier.pt, a plain state_dict), so FD on the demo data works offline
and with no flag. Its features are the penultimate layer: global average of the last conv stage.
tools/shapes_fd_calibration.py prints its test accuracy and what FD(shapes) values mean.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ssgen.eval.fid import Extractor, register_features_module
from ssgen.registry import EXTRACTORS

NAME = "shapes"
TF_NAME = "ssgen-shapes"  # the torch-fidelity registry name
WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "shapes_classifier.pt"
RESOLUTION = 32  # the classifier's input size; other sizes are resized to it


class ShapesClassifier(nn.Module):
    """uint8 [B,3,H,W] -> logits [B,10]; `features` gives the penultimate [B, 4 * width]."""

    def __init__(self, width: int = 16, num_classes: int = 10):
        super().__init__()
        channels = [3, width, 2 * width, 4 * width]
        self.stages = nn.Sequential(*(
            nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(),
                          nn.MaxPool2d(2))
            for c_in, c_out in zip(channels, channels[1:])))
        self.head = nn.Linear(channels[-1], num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 127.5 - 1
        if x.shape[-2:] != (RESOLUTION, RESOLUTION):
            x = F.interpolate(x, size=(RESOLUTION, RESOLUTION), mode="bilinear", antialias=True,
                              align_corners=False)
        return self.stages(x).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


def load_classifier(path: str | Path = WEIGHTS, kind: type[ShapesClassifier] = ShapesClassifier) -> ShapesClassifier:
    net = kind()
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.eval()


class ShapesFeatures(ShapesClassifier):
    """The classifier with its penultimate features as its output: what FD(shapes) compares."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)


register_features_module(TF_NAME, lambda weights_path=str(WEIGHTS), **_: load_classifier(weights_path, ShapesFeatures))


@EXTRACTORS.register(NAME)
def shapes_extractor(weights: str) -> Extractor:
    """`weights` (eval.fid.weights) may name another file of the same network; default: the shipped one."""
    path = str(Path(weights).resolve()) if weights else str(WEIGHTS)
    return Extractor(NAME, TF_NAME, "features", path, (("weights_path", path),), domain="shapes")
