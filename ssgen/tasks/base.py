"""A self-supervised task is a part, not a subclass: one file per task makes its inputs from a
batch, owns its heads, and scores what the trained network made of those inputs. The same task
serves an encoder trained by tasks alone (methods/encoder.py) and a GAN whose discriminator
carries it (methods/gan.py), weighted by `d_weight`, and by `g_weight` on G's side where the
task defines one (rotation: G is rewarded when D reads the rotation of its fakes).

A task never runs the network itself on its inputs: the method that carries it runs one pass
over everything (real and fake images, every task's inputs) and hands each task its features.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ssgen.config import bounded
from ssgen.errors import ConfigError
from ssgen.registry import TASKS
from ssgen.step import Batch, DataInfo, Progress


@dataclass
class TaskConfig:
    name: str = "rotation"
    # Weight of its loss for the network that carries it (D, or the encoder)
    d_weight: float = bounded(1.0, minimum=0.0)
    g_weight: float | None = None        # on a GAN: weight of its loss on fakes in G's loss; empty: the task's default


def tasks_field(*defaults: Callable[[], TaskConfig]) -> Any:
    """A method's list of tasks, each chosen by name from the task registry."""
    return field(default_factory=lambda: [make() for make in defaults], metadata={"registry": TASKS})


@dataclass
class TaskInputs:
    """What a task asks the carrying network to encode, and what it keeps to score the result."""
    images: list[torch.Tensor]  # batches to encode with gradients; same-shaped ones share one pass
    targets: Any = None         # labels, or whatever the loss needs beside the features
    # The first `from_batch` rows of images[0] are the batch's own first images, unchanged (a
    # rotation by 0 degrees): a method that encodes the batch in the same pass reuses their
    # features instead of encoding them twice (methods/carrier.py).
    from_batch: int = 0


class Task(nn.Module):
    Config: type = TaskConfig
    default_g_weight: float = 0.0   # a task with a G side sets its paper's default
    has_generator_side: bool = False
    scored_on_test_images: bool = False  # inputs_for(images) exists: eval.tasks scores the task held out

    def __init__(self, cfg: TaskConfig, encoder: nn.Module, data: DataInfo, spectral_norm: bool = False):
        """`encoder`: the network that carries the task (D's trunk or an encoder): its
        `feature_dim` sizes the heads; momentum teachers copy it. `spectral_norm`: whether the
        heads take it (they do on a spectrally normalised discriminator)."""
        super().__init__()
        self.cfg = cfg
        self.name = cfg.name

    @property
    def g_weight(self) -> float:
        return self.default_g_weight if self.cfg.g_weight is None else self.cfg.g_weight

    @classmethod
    def check_config(cls, task_cfg: TaskConfig, cfg, key: Callable[[str], str]) -> None:
        """Reject options that only the whole Config shows, before compute. `key(field)` is the
        field's name as the user wrote it (e.g. method.tasks[0].fraction)."""
        if task_cfg.g_weight is not None and task_cfg.g_weight > 0 and not cls.has_generator_side:
            raise ConfigError(f"{key('g_weight')}={task_cfg.g_weight}: the {task_cfg.name} task has no "
                              f"generator side; expected 0 or nothing")
        if task_cfg.g_weight is not None and task_cfg.g_weight < 0:
            raise ConfigError(f"{key('g_weight')}={task_cfg.g_weight} is out of range; expected >= 0")

    def before_step(self, batch: Batch, progress: Progress) -> None:
        """Host-side work for the coming step on `batch`, run eagerly just before it: draws that need
        Python control flow, kept in buffers the step reads, so that the step itself stays one graph
        (trainer.compile=step). Most tasks have none."""

    def inputs(self, batch: Batch, progress: Progress) -> TaskInputs:
        """What to encode for a batch: real images (with labels and dataset rows), or G's fakes
        (an unlabelled batch)."""
        raise NotImplementedError

    def inputs_for(self, images: torch.Tensor) -> TaskInputs:
        """The task posed on every one of `images` and on nothing else, touching no state of the
        task's (queues, seed images): how eval.tasks scores it on held-out test images."""
        raise NotImplementedError

    def loss(self, features: list[torch.Tensor], inputs: TaskInputs,
             progress: Progress) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(loss, {metric: 0-d tensor}) from the features of `inputs.images`, in order."""
        raise NotImplementedError

    def after_update(self, encoder: nn.Module, progress: Progress) -> None:
        """After the carrying network's optimizer stepped: momentum copies follow it."""


def build_tasks(configs: Sequence[TaskConfig], encoder: nn.Module, data: DataInfo,
                spectral_norm: bool = False) -> nn.ModuleList:
    return nn.ModuleList(TASKS.get(c.name, "method.tasks.name")(c, encoder, data, spectral_norm)
                         for c in configs)


def check_tasks(configs: Sequence[TaskConfig], cfg, keys: Sequence[Callable[[str], str]]) -> None:
    """Each task's own checks, and no task twice (their logs and heads would collide)."""
    seen = set()
    for task_cfg, key in zip(configs, keys):
        if task_cfg.name in seen:
            raise ConfigError(f"{key('name')}: the {task_cfg.name} task is listed twice")
        seen.add(task_cfg.name)
        TASKS.get(task_cfg.name, key("name")).check_config(task_cfg, cfg, key)


def check_tasks_without_generator(cfg, why: str, example: str) -> None:
    """check_tasks for a method with no generator (an encoder, a classifier): at least one task,
    none with a g_weight. `why` says what the tasks are for, `example` a list to try."""
    tasks = cfg.method.tasks
    if not tasks:
        raise ConfigError(f"method.tasks is empty: {why}; list at least one, e.g. {example}")
    keys = listed_keys(len(tasks))
    for task_cfg, key in zip(tasks, keys):
        if task_cfg.g_weight is not None:
            raise ConfigError(f"{key('g_weight')}: the {cfg.method.name} method has no generator; leave it out")
    check_tasks(tasks, cfg, keys)


def listed_keys(count: int, prefix: str = "method.tasks") -> list[Callable[[str], str]]:
    return [lambda field, i=i: f"{prefix}[{i}].{field}" for i in range(count)]
