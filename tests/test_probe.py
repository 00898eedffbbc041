"""Linear probe: separable features are learned, shuffled labels give chance, the method's mode is kept."""

import torch

from ssgen.config import Config, ProbeConfig
from ssgen.data.base import seeded_subset
from ssgen.eval.probe import ProbeData, linear_probe, probe_accuracy
from ssgen.methods.base import Method
from ssgen.step import DataInfo


def clusters(n, num_classes=10, dim=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_classes, dim, generator=torch.Generator().manual_seed(99)) * 3
    labels = torch.randint(0, num_classes, (n,), generator=g)
    return centres[labels] + torch.randn(n, dim, generator=g), labels


def test_separable_features_reach_full_accuracy():
    train_x, train_y = clusters(2000)
    test_x, test_y = clusters(1000, seed=1)
    assert probe_accuracy(train_x, train_y, test_x, test_y, 10, max_iter=100, l2=1e-4) > 0.99


def test_shuffled_labels_give_chance():
    train_x, train_y = clusters(2000)
    test_x, test_y = clusters(2000, seed=1)
    shuffled = train_y[torch.randperm(len(train_y), generator=torch.Generator().manual_seed(5))]
    accuracy = probe_accuracy(train_x, shuffled, test_x, test_y, 10, max_iter=100, l2=1e-4)
    assert 0.05 < accuracy < 0.16


class ChannelMeans(Method):
    """Features: per-channel image means, which tell the classes of `coloured_images` apart."""
    feature_layers = ("means", "first")

    def __init__(self):
        super().__init__(Config().method, DataInfo(resolution=8))
        self.bn = torch.nn.BatchNorm1d(3)  # something whose mode matters
        self.modes_seen = []

    def compute_features(self, x, layers):
        self.modes_seen.append(self.training)
        means = x.mean((2, 3))
        return {name: {"means": means, "first": means[:, :1]}[name] for name in layers}


class ColouredImages:
    def __init__(self, n, seed, name="colours"):
        g = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 3, (n,), generator=g)
        images = torch.randint(0, 60, (n, 3, 8, 8), generator=g, dtype=torch.uint8)
        images[torch.arange(n), self.labels] += 150  # class k: a bright channel k
        self.images, self.classes, self.name = images, ["r", "g", "b"], name

    def __len__(self):
        return len(self.images)

    def get(self, indices):
        return self.images[indices], self.labels[indices]


def test_probe_of_a_method_per_layer_and_mode_restored():
    method = ChannelMeans().train()
    data = ProbeData.from_sets(ColouredImages(500, 0), ColouredImages(300, 1), 400, 200)
    assert len(data.train_labels) == 400 and len(data.test_labels) == 200 and data.num_classes == 3
    accuracy = linear_probe(method, data, ProbeConfig(batch_size=128), torch.device("cpu"), ["means", "first"])
    assert accuracy["means"] == 1.0
    assert accuracy["first"] < 0.9  # one channel cannot tell the other two classes apart
    assert set(method.modes_seen) == {False} and method.training
    assert data.protocol(ProbeConfig())["train_size"] == 400


def test_subsets_are_fixed_and_spread():
    a, b = seeded_subset(1000, 100), seeded_subset(1000, 100)
    assert torch.equal(a, b) and len(a.unique()) == 100 and a.max() > 500
    assert torch.equal(seeded_subset(50, 100), torch.arange(50))
