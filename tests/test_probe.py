"""Linear probe: separable features are learned, shuffled labels give chance, the fit reaches
scikit-learn's optimum and says when it did not, the method's mode is kept."""

import pytest
import torch
from sklearn.linear_model import LogisticRegression

import ssgen.eval.probe as probe
from ssgen.config import Config, ProbeConfig
from ssgen.data.base import seeded_subset
from ssgen.eval import FrozenFeatureEvaluator
from ssgen.eval.probe import ProbeData, fit_probe, linear_probe, probe_accuracy
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


def random_network_features(n, seed, dim=256, latent=8, num_classes=10):
    """A fixed random ReLU network's features of overlapping class clusters in a small latent space:
    correlated, ill-conditioned features like a discriminator's, which L-BFGS needs ~900 iterations
    to fit (100 left the test top-1 0.55 points short of the optimum)."""
    g, fixed = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(1234)
    centres = torch.randn(num_classes, latent, generator=fixed) * 1.2
    first = torch.randn(latent, dim, generator=fixed) / latent ** 0.5
    second = torch.randn(dim, dim, generator=fixed) / dim ** 0.5
    labels = torch.randint(0, num_classes, (n,), generator=g)
    latents = centres[labels] + torch.randn(n, latent, generator=g)
    return torch.relu(torch.relu(latents @ first) @ second), labels


def test_the_fit_reaches_scikit_learns_optimum():
    (train_x, train_y), (test_x, test_y) = random_network_features(3000, 0), random_network_features(4000, 1)
    cfg = ProbeConfig()
    result = fit_probe(train_x, train_y, test_x, test_y, 10, cfg.max_iter, cfg.l2, cfg.tolerance)
    # The same objective: sklearn minimises C * sum(loss) + 0.5 |W|^2, ssgen mean(loss) + 0.5 l2 |W|^2,
    # both on features standardised by the training set's mean and (unbiased) std.
    mean, std = train_x.mean(0), train_x.std(0)
    reference = LogisticRegression(C=1 / (cfg.l2 * len(train_y)), tol=1e-10, max_iter=100_000)
    reference.fit(((train_x - mean) / std).double().numpy(), train_y.numpy())
    expected = reference.score(((test_x - mean) / std).double().numpy(), test_y.numpy())
    assert result.converged and result.iterations < cfg.max_iter
    assert abs(result.accuracy - expected) <= 0.003, (result, expected)
    assert 0.6 < expected < 0.9  # overlapping classes: the figure is not a saturated 100%


def test_a_fit_stopped_at_the_cap_says_so_once(monkeypatch):
    monkeypatch.setattr(probe, "_warned_unconverged", False)
    train_x, train_y = random_network_features(500, 0)
    result = fit_probe(train_x, train_y, train_x, train_y, 10, max_iter=5, l2=1e-4)
    assert not result.converged and result.iterations <= 5  # torch also caps evaluations at 1.25 max_iter
    lines = []
    for layer in ("block2", "penultimate"):
        probe.warn_if_unconverged(result, layer, lines.append)
    assert lines == [f"warning: linear probe of 'block2' stopped after {result.iterations} L-BFGS iterations "
                     "without converging; "
                     "raise eval.probe.max_iter"]
    monkeypatch.setattr(probe, "_warned_unconverged", False)
    with pytest.warns(UserWarning, match="eval.probe.max_iter"):
        probe.warn_if_unconverged(result, "block2")


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
    results = linear_probe(method, data, ProbeConfig(batch_size=128), torch.device("cpu"), ["means", "first"])
    assert results["means"].accuracy == 1.0
    assert results["first"].accuracy < 0.9  # one channel cannot tell the other two classes apart
    assert set(method.modes_seen) == {False} and method.training
    assert data.protocol(ProbeConfig())["train_size"] == 400


def test_the_evaluators_protocol_records_the_tolerance_and_convergence(monkeypatch):
    monkeypatch.setattr(probe, "_warned_unconverged", True)  # the capped fit below would warn once
    monkeypatch.setattr("ssgen.data.build_dataset",
                        lambda cfg, split, holdout=None: ColouredImages(300, int(split == "test")))
    monkeypatch.setattr("ssgen.data.require_labels", lambda images, why: None)
    cfg = Config()
    for max_iter, converged in ((1000, True), (1, False)):
        probe_cfg = ProbeConfig(every=1, layers=["means"], train_size=200, test_size=100, max_iter=max_iter)
        evaluator = FrozenFeatureEvaluator("probe", probe_cfg, cfg.data, ChannelMeans(), torch.device("cpu"))
        metrics, protocol = evaluator(ChannelMeans(), 0)
        assert protocol["converged"] is converged and set(metrics) == {"probe/means"}
        assert protocol["classifier"] == (f"logistic regression, L-BFGS to gradient max-abs 1e-06 "
                                          f"(at most {max_iter} it), l2 0.0001")


def test_subsets_are_fixed_and_spread():
    a, b = seeded_subset(1000, 100), seeded_subset(1000, 100)
    assert torch.equal(a, b) and len(a.unique()) == 100 and a.max() > 500
    assert torch.equal(seeded_subset(50, 100), torch.arange(50))
