"""The embedded `shapes` data: deterministic, balanced, and with a readable 'up'."""

import torch
import torch.nn.functional as F

from ssgen.data.shapes import CLASSES, make_shapes
from ssgen.pretext.rotation import rotate4


def test_drawing_is_balanced():  # determinism in the seed: tests/test_data.py
    _, labels = make_shapes(100, 32, seed=5)
    assert torch.equal(labels.bincount(), torch.full((len(CLASSES),), 100 // len(CLASSES)))


def test_callers_get_their_own_copy_of_the_cached_draw():
    images, labels = make_shapes(20, 32, seed=7)
    images.zero_(), labels.zero_()
    again, again_labels = make_shapes(20, 32, seed=7)
    assert again.any() and again_labels.any()


def test_glyphs_are_lighter_than_their_background():
    images, _ = make_shapes(50, 32, seed=8)
    luminance = images.float().mean(1).flatten(1)  # [n, pixels]
    brightest, darkest = luminance.quantile(0.98, dim=1), luminance.quantile(0.5, dim=1)
    assert (brightest - darkest > 60).all()  # the glyph (light) against the median pixel (background)


def test_rotation_is_readable_by_a_linear_classifier():
    """A logistic regression on 8x8 luminance tells the four rotations apart on held-out images
    (chance: 0.25). Data whose figure and ground may swap brightness stays at chance here."""
    def luminance_8x8(images):
        lum = F.avg_pool2d(images.float().mean(1, keepdim=True) / 255, 4).flatten(1)
        return lum - lum.mean(1, keepdim=True)

    (train, train_rotation), (test, test_rotation) = (rotate4(make_shapes(500, 32, seed)[0]) for seed in (0, 1))
    x, x_test = luminance_8x8(train), luminance_8x8(test)
    weight = torch.zeros(x.shape[1], 4, requires_grad=True)
    bias = torch.zeros(4, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, train_rotation) + 1e-3 * weight.square().sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    accuracy = ((x_test @ weight + bias).argmax(1) == test_rotation).float().mean()
    assert accuracy > 0.45, accuracy
