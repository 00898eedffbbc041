"""Evaluations in bf16 autocast against fp32: the probe's frozen features and FD (sampling and the
extractor's features) agree within the tolerances below, bf16 really runs, and the protocol and the
reference cache keep the two apart.

The tolerances, with what CIFAR-10 measured (docs/performance.md, "Evaluation speed"): a trained
SS-GAN's D features and the FD extractor's features differ by about 0.4% (relative Frobenius
norm); FD-10k moved by far less than its sample noise, the 10k/10k probe by less than its standard
error. Here, on tiny random networks and images, the features may differ by FEATURES (2%), FD by
FD (2% of its value), and the probe's top-1 by one standard error."""

import pytest
import torch

from ssgen.rebuild import build_method
from ssgen.config import ProbeConfig, config_from_dict
from ssgen.errors import ConfigError
from ssgen.eval.fid import FrechetDistance, resolve_extractor
from ssgen.eval.probe import ProbeData, extract_features, linear_probe
from ssgen import precision
from ssgen.precision import evaluation_precision

FEATURES = 2e-2  # relative Frobenius norm of bf16 features' difference from fp32 features
FD = 2e-2        # relative difference of FD in bf16 from FD in fp32
CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSGEN_CACHE", str(tmp_path / "cache"))


def small_gan():
    cfg = config_from_dict({"method": {"name": "gan", "generator": {"width": 16}, "discriminator": {"width": 16}},
                            "data": {"resolution": 32}})
    torch.manual_seed(0)
    return build_method(cfg, CPU)


class BrightChannel:
    """Labelled 32x32 images: class k has a brighter colour channel k, in noise; 40% of the labels
    are then drawn afresh, so that a probe scores about 75%, not 100% (where agreeing is trivial)."""

    def __init__(self, n, seed, name="bright"):
        g = torch.Generator().manual_seed(seed)
        colours = torch.randint(0, 3, (n,), generator=g)
        images = torch.randint(0, 120, (n, 3, 32, 32), generator=g, dtype=torch.uint8)
        images[torch.arange(n), colours] += 60
        self.labels = torch.where(torch.rand(n, generator=g) < 0.4, torch.randint(0, 3, (n,), generator=g), colours)
        self.images, self.classes, self.name, self.split, self.resolution = images, ["r", "g", "b"], name, "train", 32

    def __len__(self):
        return len(self.images)

    def get(self, indices):
        return self.images[indices], self.labels[indices]

    def fingerprint(self):
        return f"bright-{len(self)}-{int(self.images.sum())}"


def relative_difference(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_bf16_probe_features_agree_with_fp32_and_the_probe_within_a_standard_error():
    method = small_gan()
    images = BrightChannel(200, 0).images
    layers = method.check_features(None)
    fp32, bf16 = (extract_features(method, images, layers, 64, CPU, precision=p)[layers[0]] for p in ("fp32", "bf16"))
    assert bf16.dtype == torch.float32 and not torch.equal(fp32, bf16)  # bf16 did run, and comes back as fp32
    assert relative_difference(bf16, fp32) < FEATURES

    data = ProbeData.from_sets(BrightChannel(600, 1), BrightChannel(400, 2), 600, 400)
    results = {p: linear_probe(method, data, ProbeConfig(), CPU, precision=p)[layers[0]] for p in ("fp32", "bf16")}
    assert 0.5 < results["fp32"].accuracy < 0.95  # neither chance nor all right, where agreeing is trivial
    assert abs(results["bf16"].accuracy - results["fp32"].accuracy) <= results["fp32"].standard_error
    assert "precision" not in data.protocol(ProbeConfig())
    assert data.protocol(ProbeConfig(), "bf16")["precision"] == "bf16"


def test_bf16_fd_agrees_with_fp32_and_is_recorded_and_cached_apart(extractor_file, tmp_path):
    method = small_gan()
    extractor = resolve_extractor(str(extractor_file))
    real = BrightChannel(300, 3)
    distances = {p: FrechetDistance(real, extractor, CPU, num_fake=300, batch_size=100, seed=1, precision=p)
                 for p in ("fp32", "bf16")}
    values = {p: distance(method) for p, distance in distances.items()}
    assert values["bf16"] != values["fp32"]  # sampling and features did run in bf16
    assert abs(values["bf16"] - values["fp32"]) < FD * values["fp32"]
    assert "precision" not in distances["fp32"].protocol and distances["bf16"].protocol["precision"] == "bf16"
    assert len(list((tmp_path / "cache" / "fid").glob("*.npz"))) == 2  # bf16 statistics never serve fp32


def test_auto_is_the_training_precision(monkeypatch):
    monkeypatch.setattr(precision, "bf16_matrix_units", lambda: None)  # a CPU without AMX (test_precision_choice)
    assert evaluation_precision("auto", "bf16", CPU) == "bf16"
    assert evaluation_precision("auto", "auto", CPU) == "fp32"
    assert evaluation_precision("auto", "auto", torch.device("cuda")) == "bf16"
    assert evaluation_precision("fp32", "bf16", CPU) == "fp32"
    assert evaluation_precision("bf16", "fp32", CPU) == "bf16"
    with pytest.raises(ConfigError, match="'fp16'.*expected auto, fp32 or bf16"):
        evaluation_precision("fp16", "fp32", CPU)
