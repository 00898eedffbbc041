"""Test top-1 of a classifier method (eval.accuracy): the semi-supervised methods' figure.

The method's own classifier (`classify`) on a fixed, seeded subset of the test split, in eval
mode, without gradients: no training randomness is drawn and no weight or buffer changes.
"""

from __future__ import annotations

import torch

from ssgen.config import AccuracyEvalConfig
from ssgen.data.base import seeded_subset
from ssgen.images import to_float


def classifies(method) -> bool:
    return hasattr(method, "classify")


class AccuracyEvaluator:
    name = "accuracy"
    lower_is_better_key = None

    def __init__(self, cfg: AccuracyEvalConfig, test_set, device: torch.device, seed: int):
        self.every, self.cfg, self.device = cfg.every, cfg, device
        self.images, self.labels = test_set.get(seeded_subset(len(test_set), cfg.test_size, seed))
        self.protocol = {"metric": "test top-1", "dataset": test_set.name, "split": test_set.split,
                         "test_size": len(self.labels)}

    @torch.no_grad()
    def __call__(self, method, step: int) -> tuple[dict[str, float], dict]:
        was_training = method.training
        method.eval()
        correct = 0
        try:
            for images, labels in zip(self.images.split(self.cfg.batch_size), self.labels.split(self.cfg.batch_size)):
                logits = method.classify(to_float(images.to(self.device, non_blocking=True)))
                correct += int((logits.argmax(1).cpu() == labels).sum())
        finally:
            method.train(was_training)
        return {"accuracy/top1": correct / len(self.labels)}, self.protocol
