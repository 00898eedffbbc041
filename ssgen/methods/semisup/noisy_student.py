"""`noisy_student` (Xie et al. 2020): self-training with a noised student, for K rounds.

    round 0:  a teacher is trained on the labelled images (with the `augment` preset, no other noise);
    round r:  a student of equal or larger width, trained from its own initialisation on the
              labelled images plus the unlabelled ones pseudo-labelled by the round r-1 network
              (in eval mode, on clean images: the teacher is not noised), with noise: the
              `student_augment` preset, dropout before the head, stochastic depth;
              the student then becomes the next round's teacher.

One `ssgen train` run splits its steps into rounds + 1 equal phases (the last takes the
remainder). Every round's network is built up front (widths width * width_growth^r), so the
checkpoint always holds the same modules and a run resumes in any round; each round has its own
optimizer, and its learning-rate schedule restarts with the round (set here, over the
trainer's run-long one). Pseudo-labels are soft by default (the paper's choice), or hard.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ssgen.config import bounded
from ssgen.errors import ConfigError
from ssgen.losses.semi import soft_cross_entropy
from ssgen.methods.semisup.base import (LABELLED, UNLABELLED, Classifier, ClassifierConfig, augmented, augmenter,
                                        check_preset, check_probability, with_width)
from ssgen.optim import set_learning_rates
from ssgen.registry import METHODS
from ssgen.step import Progress
from ssgen.methods.carrier import encode_together


@dataclass
class NoisyStudentConfig(ClassifierConfig):
    name: str = "noisy_student"
    rounds: int = bounded(2, minimum=1)          # students trained after the first teacher
    width_growth: float = bounded(1.0, minimum=1.0)  # each student's width over its teacher's (equal or larger)
    soft: bool = True                            # soft pseudo-labels (the teacher's probabilities), else its argmax
    # Unlabelled images with a lower teacher confidence are left out
    threshold: float = bounded(0.0, minimum=0.0, maximum=1.0)
    unlabelled_weight: float = bounded(1.0, minimum=0.0)  # of the pseudo-label loss beside the labelled CE
    # The students' noise (the first teacher trains without it):
    dropout: float = bounded(0.5, minimum=0.0, maximum=1.0)  # before the head (the paper's 0.5)
    # Drop probability of the deepest block (paper: survival 0.8)
    stochastic_depth: float = bounded(0.2, minimum=0.0, maximum=1.0)
    student_augment: str = "simclr"              # the paper's RandAugment; here an ssgen.augment preset


@METHODS.register("noisy_student")
class NoisyStudent(Classifier):
    Config = NoisyStudentConfig

    def build_networks(self, cfg: NoisyStudentConfig) -> None:
        widths = [round(cfg.encoder.width * cfg.width_growth ** r) for r in range(cfg.rounds + 1)]
        # Round 0 is the first teacher, trained without the students' dropout and stochastic depth.
        self.nets = nn.ModuleList(self.build_net(with_width(cfg.encoder, width), cfg.dropout if r > 0 else 0.0,
                                                 cfg.stochastic_depth if r > 0 else 0.0)
                                  for r, width in enumerate(widths))
        self.student_augmenter = augmenter(cfg.student_augment, self.data.resolution)
        # The round in progress: which network is evaluated and probed; checkpointed with the weights.
        self.register_buffer("round", torch.zeros((), dtype=torch.long))
        self.current_round = 0

    @classmethod
    def check_config(cls, cfg) -> None:
        super().check_config(cfg)
        check_probability(cfg.method.stochastic_depth, "method.stochastic_depth")
        check_preset(cfg.method.student_augment, "method.student_augment")
        if cfg.trainer.steps < cfg.method.rounds + 1:
            raise ConfigError(f"trainer.steps={cfg.trainer.steps} is fewer than the {cfg.method.rounds + 1} phases of "
                              f"method.rounds={cfg.method.rounds}; expected at least one step a round")

    @property
    def model(self):
        return self.nets[int(self.round)]

    def optimized(self):
        return {f"round{r}": (list(net.parameters()), self.cfg.optim) for r, net in enumerate(self.nets)}

    def phase(self, progress: Progress) -> tuple[int, Progress]:
        """(the round of this step, the step's place within its round)."""
        per_round = max(1, progress.total // (self.cfg.rounds + 1))
        round_ = min((progress.step - 1) // per_round, self.cfg.rounds)
        end = progress.total if round_ == self.cfg.rounds else (round_ + 1) * per_round
        return round_, Progress(progress.step - round_ * per_round, end - round_ * per_round)

    def noised(self, images: torch.Tensor) -> torch.Tensor:
        """A student's view of images: the student_augment preset."""
        return augmented(self.student_augmenter, images)

    def teacher_of(self, round_: int) -> nn.Module:
        """The network that pseudo-labels for `round_`'s student: the previous round's student."""
        return self.nets[round_ - 1]

    @property
    def draws(self):
        return (LABELLED,) if self.current_round == 0 else (LABELLED, UNLABELLED)

    def train_step(self, next_batch, progress):
        """The round's network trains and every other is in eval mode (the teacher pseudo-labels
        clean, the next rounds wait); its learning rate follows its own round's schedule."""
        round_, within = self.phase(progress)
        self.current_round = round_  # a Python int: the step is compiled once per round
        self.round.fill_(round_)
        for r, net in enumerate(self.nets):
            net.train(self.training and r == round_)
        set_learning_rates(self.optimizers()[f"round{round_}"], self.cfg.optim, within.step, within.total)
        return super().train_step(next_batch, progress)

    def classify_step(self, batch, progress):
        round_, parts = self.current_round, self.parts(batch)
        name, student, labelled = f"round{round_}", self.nets[round_], parts[LABELLED]
        if round_ == 0:
            loss, logs = self.supervised_loss(student(self.augment(labelled.images)), labelled.labels)
            return {**self.update(loss, logs, name), "noisy_student/round": self.round.float()}
        clean = parts[UNLABELLED].images
        with torch.no_grad():
            teacher = self.teacher_of(round_)(clean).float().softmax(1)
        confidence, hard = teacher.max(1)
        targets = teacher if self.cfg.soft else nn.functional.one_hot(hard, teacher.shape[1]).float()
        kept = (confidence >= self.cfg.threshold).float()
        features = encode_together(student.encoder, [self.noised(labelled.images), self.noised(clean)])
        loss, logs = self.supervised_loss(student.logits(features[0]), labelled.labels)
        pseudo = soft_cross_entropy(student.logits(features[1]), targets * kept[:, None])
        logs.update({"loss/pseudo_label": pseudo.detach(), "noisy_student/kept": kept.mean(),
                     "noisy_student/round": self.round.float()})
        return self.update(loss + self.cfg.unlabelled_weight * pseudo, logs, name)

    def compile_networks(self) -> None:
        for net in self.nets:
            net.compile()
