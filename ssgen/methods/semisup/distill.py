"""`distill`: SimCLRv2's third stage (Chen et al. 2020, "Big Self-Supervised Models are Strong
Semi-Supervised Learners"): a fine-tuned teacher labels the unlabelled images with its softened
predictions, and a (smaller) student learns from them.

    loss = distillation_loss(S(aug x_u), T(aug x_u), temperature) [+ labelled_weight * CE(labelled)]

Teacher and student see the same augmented image; the teacher is frozen and in eval mode. SimCLRv2
distils on the unlabelled images alone (labelled_weight 0); it adds the labelled loss only where
labels are many. The teacher is any classifier checkpoint (`load_teacher`): a run of one of the
semi-supervised methods (a checkpoint file or its run directory), or a file written by
`ssgen finetune` (format "ssgen-finetuned"). Its weights are copied into this method, so the
run's checkpoints hold them and resume without reading the teacher's file again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ssgen.config import NetConfig, net, path_field, bounded
from ssgen.errors import CheckpointError, ConfigError
from ssgen.losses.semi import distillation_loss
from ssgen.methods.semisup.base import LABELLED, UNLABELLED, Classifier, ClassifierConfig, eval_logits
from ssgen.rebuild import LoadedRun, load_trained
from ssgen.registry import ENCODERS, METHODS


class ClassifierLogits(nn.Module):
    """A trained classifier method as a network: images in [-1, 1] -> logits."""

    def __init__(self, method: nn.Module):
        super().__init__()
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.method.classify(x)


def load_teacher(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """A frozen teacher, images in [-1, 1] -> logits, in eval mode, from a checkpoint file or run
    directory of a classifier method, or from a file of `ssgen finetune` (rebuilt through the
    METHODS registry: ssgen/rebuild.py)."""
    teacher = load_trained(path, torch.device(device))
    if isinstance(teacher, LoadedRun):
        if not hasattr(teacher.method, "classify"):
            raise ConfigError(f"method.teacher: {str(path)!r} is a {teacher.cfg.method.name} run, which does not "
                              "classify; expected a run of a classifier method (supervised, pseudo_label, ...) or "
                              "a file of ssgen finetune")
        teacher = ClassifierLogits(teacher.method)
    return teacher.requires_grad_(False).eval()


@dataclass
class DistillConfig(ClassifierConfig):
    name: str = "distill"
    teacher: str = path_field()                        # a classifier run (or checkpoint), or an ssgen finetune file
    encoder: NetConfig = net(ENCODERS, width=16, spectral_norm=False)  # the student: smaller than its teacher
    temperature: float = bounded(1.0, above=0.0)
    labelled_weight: float = bounded(0.0, minimum=0.0)  # of the labelled CE beside the distillation loss


@METHODS.register("distill")
class Distill(Classifier):
    Config = DistillConfig

    def build_networks(self, cfg: DistillConfig) -> None:
        super().build_networks(cfg)
        try:
            self.teacher = load_teacher(cfg.teacher)
        except CheckpointError as err:
            raise ConfigError(f"method.teacher: {err}") from None
        size = self.data.resolution
        classes = eval_logits(self.teacher, torch.zeros(1, 3, size, size)).shape[1]
        if classes != cfg.classes:
            raise ConfigError(f"method.teacher {cfg.teacher!r} predicts {classes} classes, the student "
                              f"method.classes={cfg.classes}; expected the same number")

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        teacher = cfg.method.teacher
        if not teacher:
            raise ConfigError("method.teacher is empty; expected the checkpoint or run directory of a trained "
                              "classifier (e.g. a supervised run), or a file of ssgen finetune")
        if not Path(teacher).expanduser().exists():
            raise ConfigError(f"method.teacher: {teacher!r} does not exist; "
                              "expected a checkpoint file or run directory")

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # the teacher is frozen: no dropout, batch norm on its running statistics
        return self

    @property
    def draws(self):
        return (UNLABELLED, LABELLED) if self.cfg.labelled_weight > 0 else (UNLABELLED,)

    def classify_step(self, batch, progress):
        parts = self.parts(batch)
        view = self.augment(parts[UNLABELLED].images)
        student_logits = self.net(view)
        with torch.no_grad():  # the teacher is frozen, and always in eval mode (train() below)
            teacher_logits = self.teacher(view)
        loss = distillation_loss(student_logits, teacher_logits, self.cfg.temperature)
        logs = {"loss/distillation": loss.detach()}
        if self.cfg.labelled_weight > 0:
            labelled = parts[LABELLED]
            supervised, supervised_logs = self.supervised_loss(self.net(self.augment(labelled.images)), labelled.labels)
            loss, logs = loss + self.cfg.labelled_weight * supervised, {**logs, **supervised_logs}
        return self.update(loss, logs)
