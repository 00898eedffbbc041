"""`s4l` (Zhai et al. 2019, S4L: Self-Supervised Semi-Supervised Learning): the classifier's
cross-entropy on labelled images plus a self-supervised task on all images, one encoder for both.

    loss = CE(labelled) + sum over tasks of d_weight * task loss(all images)

The task comes from the tasks registry: `rotation` (S4L-Rotation; fraction 1: every image in all
four rotations) or `exemplar` in its batch form (S4L-Exemplar: augmented copies of each image
pulled together by a triplet loss); any other task that an encoder carries works the same way.
eval.tasks scores the rotation head on held-out images, as for an encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

from ssgen.methods.semisup.base import LABELLED, UNLABELLED, Classifier, ClassifierConfig
from ssgen.registry import METHODS
from ssgen.methods.carrier import carry, prepare_tasks, tasks_follow
from ssgen.tasks.base import TaskConfig, build_tasks, check_tasks_without_generator, tasks_field
from ssgen.tasks.rotation import RotationConfig


@dataclass
class S4LConfig(ClassifierConfig):
    name: str = "s4l"
    tasks: list[TaskConfig] = tasks_field(lambda: RotationConfig(fraction=1.0))


@METHODS.register("s4l")
class S4L(Classifier):
    Config = S4LConfig

    def build_networks(self, cfg: S4LConfig) -> None:
        super().build_networks(cfg)
        self.tasks = build_tasks(cfg.tasks, self.net.encoder, self.data)

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        check_tasks_without_generator(cfg, "s4l adds a self-supervised task to the supervised loss",
                                      "[{name: rotation, fraction: 1.0}] or [{name: exemplar, mode: batch}]")

    def optimized(self):
        return {"classifier": ([*self.net.parameters(), *self.tasks.parameters()], self.cfg.optim)}

    draws = (LABELLED, UNLABELLED)

    def prepare_step(self, parts, progress):
        super().prepare_step(parts, progress)
        prepare_tasks(self.tasks, parts[UNLABELLED], progress)

    def classify_step(self, batch, progress):
        parts = self.parts(batch)
        labelled = parts[LABELLED]
        carried = carry(self.net.encoder, self.tasks, parts[UNLABELLED], progress,
                        beside=[self.augment(labelled.images)],
                        weights=[task.cfg.d_weight for task in self.tasks], loss_prefix="", posed_on="real")
        loss, logs = self.supervised_loss(self.net.logits(carried.beside[0]), labelled.labels)
        total = loss + carried.loss
        self.optimize("classifier", total)
        tasks_follow(self.tasks, self.net.encoder, progress)
        return {**logs, **carried.logs, "loss/total": total.detach()}

    def task_carrier(self):
        return self.net.encoder, self.tasks
