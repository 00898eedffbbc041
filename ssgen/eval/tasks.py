"""The self-supervised tasks scored on held-out test images (eval.tasks).

During training a task's figures (rotation/acc_real) come from the few images of each batch that
it sees, with the network in train mode: noisy, and on images the network trains on. Here each
task that can be posed without touching its state (Task.scored_on_test_images: rotation, jigsaw)
is posed on every one of a fixed set of test images, in eval mode, with a fixed seed (jigsaw's
permutations and jitter), and its metrics averaged: `<task>/<metric>_test`, e.g. rotation/acc_test.
"""

from __future__ import annotations

import torch

from ssgen.config import HeldOutEvalConfig
from ssgen.data.base import seeded_subset
from ssgen.eval.workload import Workload, smaller
from ssgen.images import to_float
from ssgen.step import Progress
from ssgen.methods.carrier import encode_together


def scored_tasks(method) -> list:
    carried = method.task_carrier()
    return [task for task in carried[1] if task.scored_on_test_images] if carried else []


class HeldOutTasksEvaluator:
    name = "tasks"
    lower_is_better_key = None

    def __init__(self, cfg: HeldOutEvalConfig, test_set, device: torch.device, seed: int):
        self.every, self.cfg, self.device, self.seed = cfg.every, cfg, device, seed
        self.images = test_set.get(seeded_subset(len(test_set), cfg.test_size, seed))[0]
        self.protocol = {"metric": "self-supervised tasks on held-out images", "dataset": test_set.name,
                         "split": test_set.split, "test_size": len(self.images)}

    def workload(self) -> Workload:
        n = len(self.images)
        return Workload(f"self-supervised tasks on {n:,} held-out {self.protocol['split']} images", n, n,
                        smaller({"eval.tasks.test_size": n}))

    @torch.no_grad()
    def __call__(self, method, step: int) -> tuple[dict[str, float], dict]:
        carrier, _ = method.task_carrier()
        tasks = scored_tasks(method)
        sums: dict[str, float] = {}
        was_training = method.training
        method.eval()
        # The task's random choices (jigsaw's permutations) come from a generator of their own:
        # the same puzzles at every evaluation, and the training stream's RNG untouched.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(self.seed)
            try:
                for chunk in self.images.split(self.cfg.batch_size):
                    images = to_float(chunk.to(self.device, non_blocking=True))
                    for task in tasks:
                        inputs = task.inputs_for(images)
                        _, metrics = task.loss(encode_together(carrier, inputs.images), inputs, Progress(step))
                        for metric, value in metrics.items():
                            key = f"{task.name}/{metric}_test"
                            sums[key] = sums.get(key, 0.0) + float(value) * len(chunk)
            finally:
                method.train(was_training)
        return {key: total / len(self.images) for key, total in sums.items()}, self.protocol
