"""What is measured: FID/FD, linear probes, a classifier's test top-1, a GAN's past fakes, reports.

The trainer calls `build_evaluators` once, then each evaluator every `every` steps; it writes
what they return to TensorBoard and metrics.jsonl. Expensive fixed inputs (real statistics,
probe images) are built at the first call and reused.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch

from ssgen.config import Config
from ssgen.eval.workload import Workload, smaller
from ssgen.methods.base import Method
from ssgen.precision import evaluation_precision


class Evaluator(Protocol):
    name: str
    every: int
    lower_is_better_key: str | None  # the metric the trainer keeps the best checkpoint by

    def __call__(self, method: Method, step: int) -> tuple[dict[str, float], dict]:
        """(metrics, protocol) of the method now."""

    def workload(self) -> Workload:
        """What it measures and on how many images, said before each evaluation."""


class FIDEvaluator:
    def __init__(self, cfg: Config, extractor, device: torch.device, holdout=None):
        from ssgen.data import build_dataset

        fc = cfg.eval.fid
        self.name, self.every, self.lower_is_better_key = extractor.label, fc.every, extractor.metric_key
        self.images = build_dataset(cfg.data, fc.split, holdout)  # here: a missing split fails before training
        self.extractor, self.device, self.cfg = extractor, device, cfg
        self.precision = evaluation_precision(fc.precision, cfg.trainer.precision, device)
        self.distance = None

    def __call__(self, method: Method, step: int) -> tuple[dict[str, float], dict]:
        from ssgen.eval.fid import FrechetDistance

        if self.distance is None:
            fc = self.cfg.eval.fid
            self.distance = FrechetDistance(self.images, self.extractor, self.device, fc.num_samples,
                                            batch_size=fc.batch_size, seed=self.cfg.seed, precision=self.precision)
        return {self.lower_is_better_key: self.distance(method)}, self.distance.protocol

    def workload(self) -> Workload:
        fc = self.cfg.eval.fid
        num_real = min(fc.num_samples, len(self.images))
        return Workload(f"{self.name} of {fc.num_samples:,} samples against {num_real:,} {self.images.split} images",
                        fc.num_samples + num_real, max(fc.num_samples, num_real),
                        smaller({"eval.fid.num_samples": fc.num_samples}))


class FrozenFeatureEvaluator:
    """A classifier of frozen features on fixed labelled images: the linear probe or kNN."""
    lower_is_better_key = None

    def __init__(self, name: str, cfg, data_cfg, method: Method, device: torch.device, holdout=None,
                 precision: str = "fp32"):
        """`precision`: of the frozen features (the linear probe's eval.probe.precision, resolved)."""
        from ssgen.data import build_dataset, require_labels

        self.name, self.cfg, self.device, self.every, self.precision = name, cfg, device, cfg.every, precision
        self.layers = method.check_features(cfg.layers)  # unknown layers fail before training
        self.sets = [build_dataset(data_cfg, split, holdout) for split in ("train", "test")]
        for images in self.sets:
            require_labels(images, f"eval.{name} classifies frozen features by class label")
        self.data = None

    def __call__(self, method: Method, step: int) -> tuple[dict[str, float], dict]:
        from ssgen.eval.knn import knn_probe, knn_protocol
        from ssgen.eval.probe import ProbeData, linear_probe

        if self.data is None:
            self.data = ProbeData.from_sets(*self.sets, self.cfg.train_size, self.cfg.test_size)
        if self.name == "knn":
            accuracy, protocol = knn_probe(method, self.data, self.cfg, self.device, self.layers), \
                knn_protocol(self.data, self.cfg)
        else:
            results = linear_probe(method, self.data, self.cfg, self.device, self.layers, precision=self.precision)
            accuracy = {layer: result.accuracy for layer, result in results.items()}
            # Whether the fits converged belongs to the protocol: a figure short of the optimum is
            # not comparable with the rest. Iterations do not, as they change from step to step and
            # the report draws each protocol on its own panel.
            protocol = {**self.data.protocol(self.cfg, self.precision),
                        "converged": all(r.converged for r in results.values())}
        return {f"{self.name}/{layer}": value for layer, value in accuracy.items()}, protocol

    def workload(self) -> Workload:
        train, test = (min(size or len(images), len(images))
                       for size, images in zip((self.cfg.train_size, self.cfg.test_size), self.sets))
        kind = "kNN" if self.name == "knn" else "linear probe"
        return Workload(f"{kind} ({', '.join(self.layers)}) on {train:,} train + {test:,} test images",
                        train + test, max(train, test),
                        smaller({f"eval.{self.name}.train_size": train, f"eval.{self.name}.test_size": test}))


def build_evaluators(cfg: Config, method: Method, device: torch.device, log: Callable[[str], None],
                     holdout=None, train_set=None) -> list[Evaluator]:
    """The evaluators the config turns on (every > 0), on the run's held-out test images where it
    has some. Without Inception weights training goes on without FID, and without class labels
    without the probe: the reason is logged once, here."""
    from ssgen.eval.fid import InceptionWeightsMissing, configured_extractor, measurement_warnings, resolve_extractor

    evaluators: list[Evaluator] = []
    if cfg.eval.fid.every > 0:
        if not method.generative:
            log(f"note: eval.fid.every is set but {cfg.method.name} is not generative; no FID")
        else:
            try:
                extractor = resolve_extractor(configured_extractor(cfg), cfg.eval.fid.weights)
                evaluators.append(FIDEvaluator(cfg, extractor, device, holdout))
                for line in measurement_warnings(extractor, evaluators[-1].images, cfg.eval.fid.num_samples):
                    log(line)
            except InceptionWeightsMissing as err:
                log(f"warning: no FID during training: {err}")
    if cfg.eval.tasks.every > 0:
        from ssgen.data import build_dataset
        from ssgen.eval.tasks import HeldOutTasksEvaluator, scored_tasks

        if scored_tasks(method):
            evaluators.append(HeldOutTasksEvaluator(cfg.eval.tasks, build_dataset(cfg.data, "test", holdout),
                                                    device, cfg.seed))
        else:
            log(f"note: eval.tasks.every is set but {cfg.method.name} carries no task that is scored on "
                "test images (rotation, jigsaw); no held-out task figures")
    if cfg.eval.accuracy.every > 0:
        from ssgen.data import build_dataset, missing_labels
        from ssgen.eval.accuracy import AccuracyEvaluator, classifies

        test_set = build_dataset(cfg.data, "test", holdout)
        if not classifies(method):
            log(f"note: eval.accuracy.every is set but {cfg.method.name} is not a classifier; no test top-1")
        elif missing_labels(test_set):
            log(f"accuracy off: {missing_labels(test_set)} to score the predictions against")
        else:
            evaluators.append(AccuracyEvaluator(cfg.eval.accuracy, test_set, device, cfg.seed))
    if cfg.eval.past_fakes.every > 0:
        from ssgen.eval.past_fakes import PastFakesEvaluator
        from ssgen.methods.gan import GAN

        if isinstance(method, GAN):
            evaluators.append(PastFakesEvaluator(cfg.eval.past_fakes, cfg.seed))
        else:
            log(f"note: eval.past_fakes.every is set but {cfg.method.name} has no GAN discriminator; "
                "no past-fakes monitor")
    wanted = [name for name in ("probe", "knn") if getattr(cfg.eval, name).every > 0]
    if wanted:
        from ssgen.data import build_dataset, missing_labels

        unlabelled = missing_labels(train_set if train_set is not None else build_dataset(cfg.data, "train", holdout))
        if unlabelled:
            log(f"{' and '.join(wanted)} off: {unlabelled} to classify with")
        else:
            # kNN's features stay fp32: its agreement in bf16 is not measured.
            probe_precision = evaluation_precision(cfg.eval.probe.precision, cfg.trainer.precision, device)
            evaluators += [FrozenFeatureEvaluator(name, getattr(cfg.eval, name), cfg.data, method, device, holdout,
                                                  probe_precision if name == "probe" else "fp32")
                           for name in wanted]
    return evaluators
