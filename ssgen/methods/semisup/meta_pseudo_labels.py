"""`meta_pseudo_labels` (Pham et al. 2021): a teacher and a student trained together; the
teacher learns from how much its pseudo-labels helped the student on the labelled images.

Each step, in the first-order form of the paper (its appendix; the loss difference stands for the
dot product of the student's gradients):
    1. the teacher pseudo-labels the clean unlabelled images: y^ = argmax T(x_u);
    2. the student's labelled loss is measured, it takes one step on CE(S(aug x_u), y^), and its
       labelled loss is measured again: h = loss before - loss after (mpl_feedback);
    3. the teacher takes one step on CE(T(x_l), y_l) + h * CE(T(x_u), y^): pseudo-labels that
       lowered the student's labelled loss (h > 0) become likelier, others less likely.
The student (the evaluated and probed classifier) never sees a label. Not here: the paper's UDA
term on the teacher and its final fine-tuning of the student on the labels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ssgen.config import NetConfig, OptimConfig, net
from ssgen.losses.semi import mpl_feedback
from ssgen.methods.semisup.base import LABELLED, UNLABELLED, Classifier, ClassifierConfig
from ssgen.registry import ENCODERS, METHODS
from ssgen.methods.carrier import encode_together


@dataclass
class MetaPseudoLabelsConfig(ClassifierConfig):
    name: str = "meta_pseudo_labels"
    teacher_encoder: NetConfig = net(ENCODERS, width=32, spectral_norm=False)
    teacher_optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3))


def meta_pseudo_label_step(teacher: nn.Module, student: nn.Module, update_student: Callable[[torch.Tensor], None],
                           labelled: torch.Tensor, labels: torch.Tensor, unlabelled: torch.Tensor,
                           student_view: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Steps 1 and 2 above, and the teacher's loss of step 3 (for the caller to minimise).
    `student_view`: the augmented unlabelled images the student learns from."""
    teacher_labelled, teacher_unlabelled = encode_together(teacher, [labelled, unlabelled])
    pseudo = teacher_unlabelled.detach().argmax(1)
    # The student's labelled loss before and after its step, measured alike (no gradient).
    with torch.no_grad():
        before = F.cross_entropy(student(labelled).float(), labels)
    student_loss = F.cross_entropy(student(student_view).float(), pseudo)
    update_student(student_loss)
    with torch.no_grad():
        after = F.cross_entropy(student(labelled).float(), labels)
    feedback = mpl_feedback(before, after)
    teacher_supervised = F.cross_entropy(teacher_labelled.float(), labels)
    teacher_mpl = feedback * F.cross_entropy(teacher_unlabelled.float(), pseudo)
    logs = {"loss/student": student_loss.detach(), "loss/teacher_supervised": teacher_supervised.detach(),
            "loss/teacher_mpl": teacher_mpl.detach(), "mpl/feedback": feedback,
            "mpl/student_labelled_loss": after}
    return teacher_supervised + teacher_mpl, logs


@METHODS.register("meta_pseudo_labels")
class MetaPseudoLabels(Classifier):
    Config = MetaPseudoLabelsConfig

    def build_networks(self, cfg: MetaPseudoLabelsConfig) -> None:
        self.net = self.build_net(cfg.encoder, cfg.dropout)            # the student
        self.teacher = self.build_net(cfg.teacher_encoder, cfg.dropout)

    def optimized(self):
        return {"student": (list(self.net.parameters()), self.cfg.optim),
                "teacher": (list(self.teacher.parameters()), self.cfg.teacher_optim)}

    draws = (LABELLED, UNLABELLED)

    def classify_step(self, batch, progress):
        parts = self.parts(batch)
        labelled, unlabelled = parts[LABELLED], parts[UNLABELLED].images
        teacher_loss, logs = meta_pseudo_label_step(
            self.teacher, self.net, lambda loss: self.optimize("student", loss),
            self.augment(labelled.images), labelled.labels, unlabelled, self.augment(unlabelled))
        return self.update(teacher_loss, logs, "teacher")

    def compile_networks(self) -> None:
        self.net.compile()
        self.teacher.compile()
