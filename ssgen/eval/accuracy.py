"""Test top-1 of a classifier method (eval.accuracy): the semi-supervised methods' figure.

The method's own classifier (`classify`) on a fixed, seeded subset of the test split, in eval
mode, without gradients: no training randomness is drawn and no weight or buffer changes.

A method with a one-vs-all label schedule (`one_vs_all`) is scored on its current task instead:
the balanced accuracy of "that class or not" at the evaluator's step, which is the task of the
period that step ended (the evaluation at step m * every follows training step m * every, the last
of task m - 1). Step 0, before any training, scores the first task.
"""

from __future__ import annotations

import torch

from ssgen.config import HeldOutEvalConfig
from ssgen.data.base import seeded_subset
from ssgen.eval.workload import Workload, smaller
from ssgen.images import to_float
from ssgen.methods.semisup.base import balanced_accuracy


def classifies(method) -> bool:
    return hasattr(method, "classify")


class AccuracyEvaluator:
    name = "accuracy"
    lower_is_better_key = None

    def __init__(self, cfg: HeldOutEvalConfig, test_set, device: torch.device, seed: int):
        self.every, self.cfg, self.device = cfg.every, cfg, device
        self.images, self.labels = test_set.get(seeded_subset(len(test_set), cfg.test_size, seed))
        self.protocol = {"metric": "test top-1", "dataset": test_set.name, "split": test_set.split,
                         "test_size": len(self.labels)}

    def workload(self) -> Workload:
        n = len(self.labels)
        return Workload(f"test top-1 on {n:,} {self.protocol['split']} images", n, n,
                        smaller({"eval.accuracy.test_size": n}))

    @torch.no_grad()
    def predictions(self, method) -> torch.Tensor:
        was_training = method.training
        method.eval()
        try:
            return torch.cat([method.classify(to_float(images.to(self.device, non_blocking=True))).argmax(1).cpu()
                              for images in self.images.split(self.cfg.batch_size)])
        finally:
            method.train(was_training)

    def __call__(self, method, step: int) -> tuple[dict[str, float], dict]:
        predicted = self.predictions(method)
        schedule = getattr(method, "one_vs_all", None)
        if schedule is None:
            return {"accuracy/top1": int((predicted == self.labels).sum()) / len(self.labels)}, self.protocol
        positive = schedule.positive_at(max(step, 1))
        accuracy = balanced_accuracy(predicted, (self.labels == positive).long())
        # The protocol names the schedule, not the class: one curve across the task switches.
        return {"accuracy/task_balanced": accuracy.item(), "task/class": float(positive)}, \
            {**self.protocol, "metric": "current task's balanced accuracy (one class vs all)", **schedule.protocol}
