"""FD(shapes): the classifier ships inside the package, loads with no flag and no download,
and its distances separate real images from degraded ones."""

import tomllib
from pathlib import Path

import pytest
import torch
from torchvision.transforms.functional import gaussian_blur

import ssgen
from ssgen.data.shapes import SPLIT_SEEDS, make_shapes
from ssgen.eval.fid import RunningStats, frechet_distance, resolve_extractor
from ssgen.eval.shapes_extractor import WEIGHTS, load_classifier

N = 500  # images per side: enough for a stable 64-d covariance at this separation


@pytest.fixture(scope="module")
def extractor_net():
    return resolve_extractor("shapes").build(torch.device("cpu"))


def fd(net, a, b):
    def stats(images):
        running = RunningStats()
        with torch.no_grad():
            running.update(net(images)[0])
        return running.finish()
    return frechet_distance(*stats(a), *stats(b))


def test_weights_ship_inside_the_package():
    assert WEIGHTS.parent == Path(ssgen.__file__).resolve().parent / "assets"
    assert WEIGHTS.is_file() and WEIGHTS.stat().st_size < 1 << 20
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["ssgen"]
    assert any(WEIGHTS.relative_to(WEIGHTS.parents[1]).match(pattern) for pattern in patterns)


def test_registered_extractor_maps_uint8_images_to_features(extractor_net):
    extractor = resolve_extractor("shapes")
    assert (extractor.label, extractor.metric_key, Path(extractor.weights)) == ("FD(shapes)", "fd/shapes", WEIGHTS)
    images, _ = make_shapes(4, 32, seed=0)
    (features,) = extractor_net(images)
    assert features.shape == (4, 64) and features.dtype == torch.float32
    bigger, _ = make_shapes(4, 48, seed=0)  # other resolutions are resized to the classifier's
    assert extractor_net(bigger)[0].shape == (4, 64)


def test_classifier_reads_the_glyph_classes():
    images, labels = make_shapes(200, 32, SPLIT_SEEDS["test"])
    with torch.no_grad():
        assert (load_classifier()(images).argmax(1) == labels).float().mean() > 0.95


def test_fd_is_small_between_splits_and_large_for_blurred_images(extractor_net):
    train, _ = make_shapes(N, 32, SPLIT_SEEDS["train"])
    test, _ = make_shapes(N, 32, SPLIT_SEEDS["test"])
    blurred = gaussian_blur(train.float(), [7, 7], [1.0, 1.0]).round().to(torch.uint8)
    between_splits, to_blurred = fd(extractor_net, train, test), fd(extractor_net, train, blurred)
    assert between_splits < 1.0 and to_blurred > 10 * between_splits, (between_splits, to_blurred)
