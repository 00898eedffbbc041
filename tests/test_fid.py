"""FID/FD: the distance against a float64 scipy reference, the reference-statistics cache,
and the offline-Inception message."""

import hashlib
import os
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch

from ssgen.config import Config
from ssgen.eval import build_evaluators
from ssgen.eval.fid import FrechetDistance, InceptionWeightsMissing, file_sha256, resolve_extractor
from ssgen.images import to_uint8
from ssgen.methods.base import Method
from ssgen.step import DataInfo

# Every test caches its FD statistics in a directory of its own.
pytestmark = pytest.mark.usefixtures("private_cache")


class TensorImages:
    """The ImageSet interface over an in-memory uint8 tensor."""

    def __init__(self, images, labels=None, split="train", name="fake"):
        self.images, self.split, self.name = images, split, name
        self.labels = labels if labels is not None else torch.zeros(len(images), dtype=torch.long)
        self.classes = sorted({str(int(v)) for v in self.labels})
        self.resolution = images.shape[-1]

    def __len__(self):
        return len(self.images)

    def get(self, indices):
        return self.images[indices], self.labels[indices]

    def fingerprint(self):
        return hashlib.sha256(self.images.numpy().tobytes()).hexdigest()


class NoiseSampler(Method):
    """A 'generative method' whose samples are seeded uniform noise."""
    generative = True

    def __init__(self):
        super().__init__(Config().method, DataInfo(resolution=8))

    def sample(self, n, generator=None):
        return torch.rand(n, 3, 8, 8, generator=generator) * 2 - 1


def real_images(seed=1, n=300):
    g = torch.Generator().manual_seed(seed)
    return TensorImages(torch.randint(0, 256, (n, 3, 8, 8), generator=g, dtype=torch.uint8))


def scipy_frechet(a: np.ndarray, b: np.ndarray) -> float:
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fd_matches_float64_scipy_reference(extractor_file):
    extractor = resolve_extractor(str(extractor_file))
    assert (extractor.label, extractor.metric_key) == ("FD(tiny-fd)", "fd/tiny-fd")
    images = real_images()
    distance = FrechetDistance(images, extractor, torch.device("cpu"), num_fake=250, num_real=300,
                               batch_size=64, seed=3)
    value = distance(NoiseSampler())

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        net = torch.jit.load(str(extractor_file))
    with torch.no_grad():
        real = net(images.images).double().numpy()
        fake_images = to_uint8(NoiseSampler().sample(250, torch.Generator().manual_seed(3)))
        fake = net(fake_images).double().numpy()
    assert value == pytest.approx(scipy_frechet(fake, real), rel=1e-6)
    assert distance.protocol["metric"] == "FD(tiny-fd)"
    assert distance.protocol["num_fake"] == 250 and distance.protocol["num_real"] == 300


def test_reference_statistics_cached_by_content(extractor_file, tmp_path, monkeypatch):
    import ssgen.eval.fid as fid

    extractor = resolve_extractor(str(extractor_file))
    computed = []
    real_extract = fid.extract
    monkeypatch.setattr(fid, "extract", lambda *a: computed.append(1) or real_extract(*a))

    def reference(images):
        return FrechetDistance(images, extractor, torch.device("cpu"), num_fake=100).reference()

    first = reference(real_images())
    again = reference(real_images())  # a new object, same content: read from disk
    assert len(computed) == 1
    np.testing.assert_array_equal(first[1], again[1])
    assert len(list((tmp_path / "cache" / "fid").glob("*.npz"))) == 1

    changed = real_images()
    changed.images[0, 0, 0, 0] ^= 1
    reference(changed)
    assert len(computed) == 2
    assert len(list((tmp_path / "cache" / "fid").glob("*.npz"))) == 2


def test_an_extractor_replaced_with_the_same_size_and_mtime_is_hashed_again(tmp_path):
    weights = tmp_path / "extractor.pt"
    weights.write_bytes(b"a" * 4096)
    assert file_sha256(weights) == hashlib.sha256(b"a" * 4096).hexdigest()
    stat = weights.stat()
    replacement = tmp_path / "extractor.pt.new"
    replacement.write_bytes(b"b" * 4096)  # another network, the same size, its time set back
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, weights)
    assert (weights.stat().st_size, weights.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)
    assert file_sha256(weights) == hashlib.sha256(b"b" * 4096).hexdigest()  # in the reference key


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty torch hub and a download that fails at once."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))

    def no_network(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


def test_offline_inception_says_what_to_do(offline):
    with pytest.raises(InceptionWeightsMissing) as err:
        resolve_extractor("inception-v3-compat")
    message = str(err.value)
    assert "\n" not in message
    assert "eval.fid.weights=" in message and "eval.fid.extractor=" in message
    with pytest.raises(InceptionWeightsMissing, match="does not exist"):
        resolve_extractor("inception-v3-compat", weights="/nowhere/pt_inception.pth")


def test_offline_inception_names_every_way_forward(offline, tmp_path):
    """issue 27: with no internet, `ssgen fid` gave no way forward without outside files."""
    with pytest.raises(InceptionWeightsMissing) as err:
        resolve_extractor("inception-v3-compat")
    message = str(err.value)
    # where torch-fidelity looks
    assert str(tmp_path / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth") in message
    assert "eval.fid.extractor=shapes" in message and "TorchScript" in message and "not comparable with FID" in message


class Named:
    def __init__(self, name, size):
        self.name, self.size = name, size

    def __len__(self):
        return self.size


def test_an_extractor_of_one_domain_warns_on_other_images():
    from ssgen.eval.fid import domain_warning

    shapes = resolve_extractor("shapes")
    warning = domain_warning(shapes, Named("folder:/data/cifar10/train.zip", 100))
    assert warning.startswith("warning: FD(shapes)") and "trained on the shapes data" in warning
    assert "folder:/data/cifar10/train.zip" in warning
    assert domain_warning(shapes, Named("shapes", 100)) is None


def test_a_real_set_far_smaller_than_the_samples_is_noted():
    from ssgen.eval.fid import measurement_warnings, size_note

    note = size_note(50000, 810)  # the case: -n's default against a small folder
    assert note.startswith("note: 810 real images against 50,000 samples")
    assert size_note(50000, 10000) is None  # CIFAR-10's test split against 50k samples: the usual protocol
    assert size_note(1000, 1000) is None
    assert measurement_warnings(resolve_extractor("shapes"), Named("shapes", 810), 50000) == [note]


def test_training_goes_on_without_inception(offline):
    cfg = Config()
    cfg.eval.fid.every = 10
    cfg.eval.fid.extractor = "inception-v3-compat"  # named: the default (auto) would measure shapes offline
    messages = []
    assert build_evaluators(cfg, NoiseSampler(), torch.device("cpu"), messages.append) == []
    assert len(messages) == 1 and "eval.fid.weights=" in messages[0]


def test_unknown_extractor_is_a_config_error():
    from ssgen.errors import ConfigError

    with pytest.raises(ConfigError, match="no-such-extractor"):
        resolve_extractor("no-such-extractor")
