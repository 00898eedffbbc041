"""What every semi-supervised method shares: a classifier (an encoder from ssgen.nets, dropout,
a linear head), the labelled and unlabelled halves of a step, and the interface the trainer and
the evaluators use (`classify` for eval.accuracy, `features` for the probe).

A step takes a labelled batch from the labelled subset's own stream (`next_batch.labelled()`) and,
in the methods that use them, an unlabelled one from the stream of all training images
(`next_batch()`, labels -1 outside the subset: those images count as unlabelled, as in Oliver et
al. 2018). `train_step` draws them on the host (the method's `draws` say which), sets the step's
schedule values into tensors, and hands the batches joined as one to the declared step
`classify_step`, which trainer.compile=step compiles whole: it splits them (`parts`), augments,
and computes and applies the loss. Training images go through the method's augmentation preset
(`augment`, on top of the stream's flips); the methods that need a clean view of an image (a
teacher's pseudo-labels) take the stream's images as they come.

Each method is one file beside this one, with its own options (a subclass of ClassifierConfig).

`label_schedule` turns the labels into the SS-GAN paper's non-stationary task (Chen et al. 2019,
Figure 2): one class against all the others, the class changing every `every` steps and cycling
through the classes (`OneVsAll`). It is a pure function of the step, so a resumed run trains the
same class at every step as an unbroken one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ssgen.augment import NO_AUGMENTATION, PRESETS, Augmenter, augmented_views, view_configs
from ssgen.config import MethodConfig, NetConfig, OptimConfig, bounded, choice, net
from ssgen.errors import ConfigError, DataError
from ssgen.losses.classification import cross_entropy_with_accuracy
from ssgen.losses.semi import linear_ramp
from ssgen.methods.base import Method, NextBatch
from ssgen.nets.stochastic_depth import add_stochastic_depth
from ssgen.registry import ENCODERS
from ssgen.step import Batch, DataInfo, Progress, as_batch, join_batches
from ssgen.methods.carrier import encode_together

ONE_VS_ALL = "one_vs_all"
# The methods whose labels reach the loss through `supervised_loss` alone, as the schedule needs.
SCHEDULED_METHODS = ("supervised", "s4l")


@dataclass
class LabelScheduleConfig:
    """none: the class labels as they are; one_vs_all: label 1 for the current class, 0 for the rest."""
    kind: str = choice("none", "none", ONE_VS_ALL)
    every: int = bounded(1000, minimum=1)            # steps per task (the paper's 1k iterations)
    order: str = choice("seeded", "seeded", "fixed")  # the classes' order: a seeded permutation, or 0, 1, ...
    seed: int = 0                                    # of the seeded order: runs that differ in `seed` share it


@dataclass
class ClassifierConfig(MethodConfig):
    name: str = "supervised"
    encoder: NetConfig = net(ENCODERS, width=32, spectral_norm=False)
    classes: int = bounded(10, minimum=2)            # the data's classes (one_vs_all cycles through them)
    label_schedule: LabelScheduleConfig = field(default_factory=LabelScheduleConfig)
    dropout: float = bounded(0.0, minimum=0.0, maximum=1.0)  # before the linear head, while training
    augment: str = "weak"                            # an ssgen.augment preset for training images, or none
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=1e-3))


@dataclass
class RampedConfig(ClassifierConfig):
    """A method with an unlabelled loss whose weight ramps up over the run (Lee 2013)."""
    weight: float = bounded(1.0, minimum=0.0)        # the unlabelled loss's weight once ramped up
    ramp_start: float = bounded(0.0, minimum=0.0, maximum=1.0)  # share of the run before which the weight is 0
    ramp_end: float = bounded(0.4, minimum=0.0, maximum=1.0)  # share of the run at which it reaches `weight`


def check_probability(value: float, key: str) -> None:
    if not 0 <= value < 1:
        raise ConfigError(f"{key}={value} is out of range; expected a probability in [0, 1)")


def check_preset(preset: str, key: str) -> None:
    if preset != NO_AUGMENTATION and preset not in PRESETS:
        raise ConfigError(f"{key}: unknown preset {preset!r}; valid: {', '.join([NO_AUGMENTATION, *PRESETS])}")


class OneVsAll:
    """The class trained against all others at each step: order[((step - 1) // every) % classes].
    Step t (1-based) is the t-th training step, so the evaluation after step m * every scores the
    task of the period that step ended, the one just trained."""

    def __init__(self, cfg: LabelScheduleConfig, classes: int):
        self.every = cfg.every
        self.order = list(range(classes)) if cfg.order == "fixed" else \
            torch.randperm(classes, generator=torch.Generator().manual_seed(cfg.seed)).tolist()
        self.protocol = {"task": "one class vs all", "task_every": cfg.every, "task_order": self.order}

    def positive_at(self, step: int) -> int:
        return self.order[(step - 1) // self.every % len(self.order)]


def balanced_accuracy(predicted: torch.Tensor, labels: torch.Tensor, classes: int = 2) -> torch.Tensor:
    """The mean of the recalls of the classes present (0-d tensor, no host sync): 1-vs-all's figure,
    where always answering "all" would score 90% top-1 but 0.5 here."""
    members = labels[:, None] == torch.arange(classes, device=labels.device)
    counts = members.sum(0)
    hits = (members & (predicted == labels)[:, None]).sum(0)
    return (hits / counts.clamp_min(1)).sum() / (counts > 0).sum().clamp_min(1)


def augmenter(preset: str, resolution: int) -> Augmenter | None:
    """One view of a preset's first kind (None for `none`)."""
    return None if preset == NO_AUGMENTATION else Augmenter(view_configs(preset)[:1], resolution)


def augmented(augmenter: Augmenter | None, images: torch.Tensor) -> torch.Tensor:
    return images if augmenter is None else augmented_views(augmenter, images)[0]


class ClassifierNet(nn.Module):
    """encoder -> dropout -> linear head: images in [-1, 1] -> logits [B, classes]."""

    def __init__(self, cfg: NetConfig, resolution: int, classes: int, dropout: float = 0.0,
                 stochastic_depth: float = 0.0):
        super().__init__()
        self.encoder = ENCODERS.get(cfg.name, "method.encoder.name")(cfg, resolution, 3)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.encoder.feature_dim, classes)
        self.hooks = add_stochastic_depth(self.encoder, stochastic_depth)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.encoder(x))


@torch.no_grad()
def eval_logits(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A network's logits in eval mode (no dropout, no stochastic depth, batch norm's running
    statistics, which this leaves as they were): a teacher's clean predictions."""
    was_training = net.training
    net.eval()
    try:
        return net(x)
    finally:
        net.train(was_training)


LABELLED, UNLABELLED = "labelled", "unlabelled"


class Classifier(Method):
    """The supervised baseline's machinery; the methods override `classify_step` and `draws` (and
    add networks)."""
    Config = ClassifierConfig
    steps = ("classify",)

    def __init__(self, cfg: ClassifierConfig, data: DataInfo):
        super().__init__(cfg, data)
        self.one_vs_all = OneVsAll(cfg.label_schedule, cfg.classes) if cfg.label_schedule.kind == ONE_VS_ALL else None
        self.build_networks(cfg)
        self.augmenter = augmenter(cfg.augment, data.resolution)
        self.labels_checked = False  # per session: a host read of the first labelled batch
        self.part_sizes: tuple[int, ...] = ()  # of the batches this step joined, in `draws` order
        # The unlabelled loss's weight at this step (RampedConfig's linear ramp), set on the host: a
        # compiled step reads it from this tensor, as it reads its learning rates, instead of being
        # compiled anew for every value of a Python float.
        self.register_buffer("ramped_weight", torch.zeros(()), persistent=False)
        # The current class of the label schedule, set on the host for the same reason. One class
        # against nine is 10% of the images against 90%: unweighted, the cross-entropy is least by
        # answering "all", so each class is weighted by the inverse of its share (the data's classes
        # are balanced), and both halves of the task count equally.
        self.register_buffer("task_class", torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer("task_weights", torch.tensor([1.0, cfg.classes - 1.0]), persistent=False)

    def build_networks(self, cfg: ClassifierConfig) -> None:
        """The networks that are trained (a method with more overrides it)."""
        self.net = self.build_net(cfg.encoder, cfg.dropout)

    def build_net(self, encoder: NetConfig, dropout: float = 0.0, stochastic_depth: float = 0.0) -> ClassifierNet:
        head = 2 if self.one_vs_all else self.cfg.classes
        return ClassifierNet(encoder, self.data.resolution, head, dropout, stochastic_depth)

    @classmethod
    def check_config(cls, cfg) -> None:
        method = cfg.method
        check_probability(method.dropout, "method.dropout")
        check_preset(method.augment, "method.augment")
        if isinstance(method, RampedConfig) and method.ramp_start > method.ramp_end:
            raise ConfigError(f"method.ramp_start={method.ramp_start} is after method.ramp_end={method.ramp_end}; "
                              "expected ramp_start <= ramp_end (shares of the run)")
        if method.label_schedule.kind == ONE_VS_ALL:
            if method.name not in SCHEDULED_METHODS:
                raise ConfigError(f"method.label_schedule.kind={ONE_VS_ALL} is for method.name "
                                  f"{' or '.join(SCHEDULED_METHODS)}, not {method.name} "
                                  "(whose other terms read the labels)")
            if method.classes < 3:
                raise ConfigError(f"method.label_schedule.kind={ONE_VS_ALL} with method.classes={method.classes}: "
                                  "expected the data's number of classes, at least 3 "
                                  "(the head is made 2-way by itself)")

    # ---------------------------------------------------------------- what the evaluators use
    @property
    def model(self) -> ClassifierNet:
        """The classifier that is evaluated and probed (a method with several names it)."""
        return self.net

    @property
    def feature_layers(self) -> list[str]:
        return ["encoder", *self.model.encoder.block_names]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, classes] of float [-1, 1] images (eval.accuracy calls it in eval mode)."""
        return self.model(x)

    def compute_features(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        return self.model.encoder.block_features(x, layers)

    def optimized(self):
        return {"classifier": (list(self.net.parameters()), self.cfg.optim)}

    # ---------------------------------------------------------------- the parts of a step
    @property
    def draws(self) -> tuple[str, ...]:
        """The batches a step takes, in the order they are drawn: LABELLED and/or UNLABELLED."""
        return (LABELLED,)

    def train_step(self, next_batch: NextBatch, progress: Progress = Progress()) -> dict[str, torch.Tensor]:
        """Draw this step's batches and set its schedule values (host side), then take the declared step."""
        parts = [self.draw(next_batch, kind) for kind in self.draws]
        self.part_sizes = tuple(len(part.labels) for part in parts)
        self.prepare_step(dict(zip(self.draws, parts)), progress)
        return self.run_step(self.classify_step, join_batches(parts), progress)

    def prepare_step(self, parts: dict[str, Batch], progress: Progress) -> None:
        """What the step reads that is set on the host: the ramped weight and the label schedule's
        class (methods add theirs)."""
        if self.one_vs_all:
            self.task_class.fill_(self.one_vs_all.positive_at(progress.step))
        if isinstance(self.cfg, RampedConfig):
            self.ramped_weight.fill_(self.cfg.weight * linear_ramp(progress.fraction, self.cfg.ramp_start,
                                                                   self.cfg.ramp_end))

    def draw(self, next_batch: NextBatch, kind: str) -> Batch:
        if kind == UNLABELLED:
            return as_batch(next_batch())
        batch = as_batch(getattr(next_batch, "labelled", next_batch)())  # a bare callable: all labelled
        if not self.labels_checked:
            self.check_labels(batch)
        return batch

    def parts(self, batch: Batch) -> dict[str, Batch]:
        """{kind: its batch} of the joined batch a step is handed (train_step's `draws`)."""
        parts, start = {}, 0
        for kind, size in zip(self.draws, self.part_sizes):
            parts[kind] = Batch(batch.images[start:start + size], batch.labels[start:start + size],
                                batch.indices[start:start + size])
            start += size
        return parts

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        return augmented(self.augmenter, images)

    def check_labels(self, batch: Batch) -> None:
        labels = batch.labels
        if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.cfg.classes):
            bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
            raise DataError(f"a labelled batch holds label {bad}; "
                            f"expected class labels 0..{self.cfg.classes - 1} (method.classes={self.cfg.classes}): "
                            "set method.classes to the data's number of classes, or give the images class labels")
        self.labels_checked = True

    def supervised_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if not self.one_vs_all:
            loss, accuracy = cross_entropy_with_accuracy(logits, labels)
            return loss, {"loss/supervised": loss.detach(), "classifier/acc_labelled": accuracy}
        labels = (labels == self.task_class).long()
        loss = F.cross_entropy(logits.float(), labels, weight=self.task_weights)
        return loss, {"loss/supervised": loss.detach(), "classifier/task_class": self.task_class.clone(),
                      "classifier/acc_labelled_balanced": balanced_accuracy(logits.detach().argmax(1), labels)}

    def update(self, loss: torch.Tensor, logs: dict, optimizer: str = "classifier") -> dict[str, torch.Tensor]:
        self.optimize(optimizer, loss)
        return {**logs, "loss/total": loss.detach()}

    def supervised_and_unlabelled(self, batch: Batch) -> tuple[torch.Tensor, dict, torch.Tensor]:
        """(the supervised loss, its logs, the unlabelled logits) of a step's two batches, both
        augmented, in one pass of the encoder: what a method with an unlabelled term starts from."""
        parts = self.parts(batch)
        labelled, unlabelled = parts[LABELLED], parts[UNLABELLED]
        features = encode_together(self.net.encoder, [self.augment(labelled.images), self.augment(unlabelled.images)])
        loss, logs = self.supervised_loss(self.net.logits(features[0]), labelled.labels)
        return loss, logs, self.net.logits(features[1])

    def classify_step(self, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        labelled = self.parts(batch)[LABELLED]
        loss, logs = self.supervised_loss(self.net(self.augment(labelled.images)), labelled.labels)
        return self.update(loss, logs)

    def compile_networks(self) -> None:
        self.net.compile()


def with_width(cfg: NetConfig, width: int) -> NetConfig:
    return dataclasses.replace(cfg, width=width)
