"""Linear probes: how linearly separable the classes are in a network's frozen features.

Run every N steps on a GAN's discriminator, the curve shows *discriminator forgetting*.
The classifier is a multinomial logistic regression fit full-batch with L-BFGS from zero
weights until the gradient falls below a tolerance: deterministic, with no learning rate to tune,
and fast on the training device. A fixed budget is not enough: 100 iterations left 128-d
discriminator features of 10k images at 92.9% where the optimum reads 94.3%.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssgen.config import ProbeConfig
from ssgen.console import ProgressReport
from ssgen.data.base import seeded_subset
from ssgen.eval.metrics import STANDARD_ERROR, binomial_standard_error
from ssgen.images import to_float
from ssgen.nets.heads import LinearClassifier
from ssgen.parallel import gather_rows, shard, world
from ssgen.precision import autocast, inference_batches, recorded


@dataclass
class ProbeData:
    """The labelled images a probe is fit and tested on (uint8, CPU), chosen once and reused."""
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int
    dataset: str

    @classmethod
    def from_sets(cls, train_set, test_set, train_size: int, test_size: int, seed: int = 0) -> "ProbeData":
        train_images, train_labels = train_set.get(seeded_subset(len(train_set), train_size, seed))
        test_images, test_labels = test_set.get(seeded_subset(len(test_set), test_size, seed))
        num_classes = len(train_set.classes) or int(max(train_labels.max(), test_labels.max())) + 1
        return cls(train_images, train_labels, test_images, test_labels, num_classes, train_set.name)

    def protocol(self, cfg: ProbeConfig, precision: str = "fp32") -> dict:
        """How the probe's figures were measured; `precision`: of the frozen features."""
        return {**self.description("linear probe top-1"),
                "classifier": classifier_description(cfg.tolerance, cfg.max_iter, cfg.l2), **recorded(precision)}

    def description(self, metric: str) -> dict:
        return {"metric": metric, "dataset": self.dataset, "train_split": "train", "test_split": "test",
                "train_size": len(self.train_labels), "test_size": len(self.test_labels),
                "standard_error": STANDARD_ERROR}


def classifier_description(tolerance: float, max_iter: int, l2: float) -> str:
    """The fit's rule in a protocol: what the probe's and fine-tuning's stage-1 figures depend on."""
    return f"logistic regression, L-BFGS to gradient max-abs {tolerance:g} (at most {max_iter} it), l2 {l2:g}"


@torch.no_grad()
def extract_features(method, images: torch.Tensor, layers: Sequence[str], batch_size: int,
                     device: torch.device, log=None, what: str = "features",
                     precision: str = "fp32") -> dict[str, torch.Tensor]:
    """{layer: float32 [N, F] on device} of uint8 images, with the method in eval mode, computed in
    `precision` (precision.py). Under torchrun each process extracts its share of the images and
    all get every row. `log`: where to report progress (None: silent)."""
    was_training = method.training
    method.eval()
    mine = images[shard(len(images))]
    chunks = inference_batches(mine, batch_size, device)
    if log is not None:
        chunks = ProgressReport(len(mine), what, log, every=max(1, len(mine) // 5), unit="images").wrap(
            chunks, map(len, chunks))
    try:
        with autocast(precision, device):
            parts = [method.features(to_float(chunk.to(device, non_blocking=True)), layers) for chunk in chunks]
    finally:
        method.train(was_training)
    empty = torch.empty(0, 0, device=device)  # a process with no share (fewer images than processes)
    return {layer: gather_rows(torch.cat([p[layer].float().flatten(1) for p in parts]) if parts else empty)
            for layer in layers}


@torch.no_grad()
def measure_norm_statistics(method, images: torch.Tensor, layers: Sequence[str], batch_size: int,
                            device: torch.device) -> int:
    """Set the running statistics of every batch norm in `method` to their average over uint8
    `images` (each module's train-mode statistics, every other module in eval mode), passing them
    through to `layers`; returns how many modules there are. For an untrained network: its
    running statistics are still the
    initial 0 and 1, so in eval mode it computes something else than the train-mode network that
    fine-tuning trains (on shapes a random ResNet-18's stage-2 loss started at 215). Measured, the
    random-init floor of probe and finetune describes the network training would start from."""
    norms = [m for m in method.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    was_training = method.training
    momenta = [norm.momentum for norm in norms]
    method.eval()
    try:
        for norm in norms:
            norm.reset_running_stats()
            norm.momentum = None  # a cumulative average: every batch counts the same
            norm.train()
        for chunk in images.split(batch_size) if norms else ():
            if len(chunk) > 1:  # a batch of one has no batch statistics
                method.features(to_float(chunk.to(device)), layers)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        method.train(was_training)
    return len(norms)


def frozen_features(method, data: ProbeData, layers: Sequence[str], batch_size: int, device: torch.device,
                    log=None, precision: str = "fp32") -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """({layer: train features}, {layer: test features}) of a probe's images, computed in `precision`."""
    return (extract_features(method, data.train_images, layers, batch_size, device, log, "train features", precision),
            extract_features(method, data.test_images, layers, batch_size, device, log, "test features", precision))


@dataclass
class LogisticFit:
    weight: torch.Tensor
    bias: torch.Tensor
    iterations: int  # L-BFGS iterations used: at most max_iter, fewer where its 1.25 max_iter evaluations ran out
    converged: bool  # the gradient's max-abs fell below the tolerance within max_iter


def fit_logistic_regression(x: torch.Tensor, y: torch.Tensor, num_classes: int, max_iter: int, l2: float,
                            tolerance: float) -> LogisticFit:
    """Multinomial logistic regression, full-batch L-BFGS from zero on x's device, in float64 until
    the gradient's max-abs is below `tolerance`, for at most `max_iter` iterations. Float64: in
    float32 the loss stops changing (round-off) with the gradient still a few times 1e-6."""
    x = x.double()
    weight = torch.zeros(num_classes, x.shape[1], device=x.device, dtype=x.dtype, requires_grad=True)
    bias = torch.zeros(num_classes, device=x.device, dtype=x.dtype, requires_grad=True)
    # tolerance_change 0: the gradient alone says when to stop (torch's default also stops when
    # the loss changes by less than 1e-9, which the slow fits do long before they converge).
    optimizer = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=10,
                                  tolerance_grad=tolerance, tolerance_change=0.0, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(F.linear(x, weight, bias), y) + 0.5 * l2 * weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
        closure()  # the gradient at the final weights (the line search's last one may be elsewhere)
    gradient = max(weight.grad.abs().max().item(), bias.grad.abs().max().item())
    return LogisticFit(weight.detach(), bias.detach(), optimizer.state[weight]["n_iter"], gradient <= tolerance)


def fit_linear_classifier(x: torch.Tensor, y: torch.Tensor, num_classes: int, max_iter: int, l2: float,
                          tolerance: float = ProbeConfig.tolerance) -> tuple[LinearClassifier, LogisticFit]:
    """A logistic regression of standardised features x (standardised by x's own statistics), and
    how its fit ended."""
    mean, std = x.mean(0), x.std(0)
    std = torch.where(std > 1e-6, std, torch.ones_like(std))  # dead units (ReLU zeros) stay put
    fit = fit_logistic_regression((x - mean) / std, y.to(x.device), num_classes, max_iter, l2, tolerance)
    # skip_init: a random initialisation would draw from the global RNG, and the probe runs inside
    # training, which must not see it (tests/test_quick_demo.py); every value is overwritten below.
    classifier = nn.utils.skip_init(LinearClassifier, x.shape[1], num_classes, device=x.device)
    for target, value in ((classifier.mean, mean), (classifier.std, std), (classifier.linear.weight, fit.weight),
                          (classifier.linear.bias, fit.bias)):
        target.data.copy_(value)
    return classifier, fit


@torch.no_grad()
def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels.to(logits.device)).float().mean().item()


@dataclass
class ProbeResult:
    accuracy: float  # test top-1
    iterations: int  # L-BFGS iterations the fit used
    converged: bool
    test_size: int = 0  # images the accuracy was measured on

    @property
    def standard_error(self) -> float:
        return binomial_standard_error(self.accuracy, self.test_size)


def fit_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
              num_classes: int, max_iter: int, l2: float, tolerance: float = ProbeConfig.tolerance) -> ProbeResult:
    """Test top-1 of a logistic regression fit on standardised training features, and how the fit ended."""
    classifier, fit = fit_linear_classifier(train_x, train_y, num_classes, max_iter, l2, tolerance)
    with torch.no_grad():
        return ProbeResult(top1(classifier(test_x), test_y), fit.iterations, fit.converged, len(test_y))


def probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                   num_classes: int, max_iter: int, l2: float, tolerance: float = ProbeConfig.tolerance) -> float:
    """fit_probe's test top-1 alone."""
    return fit_probe(train_x, train_y, test_x, test_y, num_classes, max_iter, l2, tolerance).accuracy


_warned_unconverged = False


def warn_if_unconverged(result: ProbeResult, layer: str, log: Callable[[str], None] | None = None) -> None:
    """Say, once per process (a probe runs every few steps), that a fit stopped short of its tolerance:
    its figure is then below the classifier's optimum."""
    global _warned_unconverged
    if result.converged or _warned_unconverged:
        return
    _warned_unconverged = True
    message = (f"linear probe of {layer!r} stopped after {result.iterations} L-BFGS iterations without converging; "
               "raise eval.probe.max_iter")
    if log is None:
        warnings.warn(message, stacklevel=2)
    else:
        log(f"warning: {message}")


def linear_probe(method, data: ProbeData, cfg: ProbeConfig, device: torch.device,
                 layers: Sequence[str] | None = None, log=None, precision: str = "fp32") -> dict[str, ProbeResult]:
    """{layer: test top-1 and how the fit ended} of the method's frozen features, computed in
    `precision` (cfg.precision resolved: precision.evaluation_precision). Under torchrun every
    process extracts its share of the features, and the main process alone fits (others get {}).
    `log`: where to report progress on long work (ssgen probe) and a fit that did not converge;
    None: silent, and that warning through `warnings`."""
    layers = method.check_features(layers or cfg.layers)
    train, test = frozen_features(method, data, layers, cfg.batch_size, device, log, precision)
    if world().rank != 0:
        return {}
    if log is not None:
        log(f"fitting the classifier (L-BFGS to gradient max-abs {cfg.tolerance:g}, at most {cfg.max_iter} "
            f"iterations per layer, {len(layers)} layer(s))")
    results = {layer: fit_probe(train[layer], data.train_labels, test[layer], data.test_labels,
                                data.num_classes, cfg.max_iter, cfg.l2, cfg.tolerance)
               for layer in layers}
    for layer, result in results.items():
        warn_if_unconverged(result, layer, log)
    return results
