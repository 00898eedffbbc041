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
from ssgen.parallel import local_slice, world
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
    # features (reused_views, with_reused_features) instead of encoding them twice.
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


def augmented_views(augment: Callable[[torch.Tensor], list[torch.Tensor]], x: torch.Tensor) -> list[torch.Tensor]:
    """augment(x) for this process's slice, drawn as one process draws for the global batch
    (every process augments the global batch's worth and keeps its rows), so K processes see
    the views one process would."""
    world_size = world().size
    if world_size == 1:
        return augment(x)
    return [local_slice(view) for view in augment(torch.cat([x] * world_size))]


def encode_together(encoder: nn.Module, batches: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """encoder(batch) for each batch, in one pass per image shape: batches of one shape are
    concatenated (fewer, larger kernels). For a network with batch norm this normalises them
    together, as SimCLR's one-pass forward does; D has no batch-dependent layers."""
    by_shape: dict[tuple, list[int]] = {}
    for index, batch in enumerate(batches):
        by_shape.setdefault(tuple(batch.shape[1:]), []).append(index)
    features: list[torch.Tensor | None] = [None] * len(batches)
    for indices in by_shape.values():
        encoded = encoder(torch.cat([batches[i] for i in indices]) if len(indices) > 1 else batches[indices[0]])
        for i, part in zip(indices, encoded.split([len(batches[i]) for i in indices])):
            features[i] = part
    return features


def reused_views(inputs: Sequence[TaskInputs]) -> list[torch.Tensor]:
    """The tasks' views to encode beside a batch that is encoded too: each without the rows that
    are the batch's own images (`from_batch`). SS-GAN's D saves a quarter of its rotation views."""
    return [view[task.from_batch:] if k == 0 else view for task in inputs for k, view in enumerate(task.images)]


def with_reused_features(features: Sequence[torch.Tensor], inputs: Sequence[TaskInputs],
                         batch_features: torch.Tensor) -> list[torch.Tensor]:
    """The features of reused_views(inputs), with the batch's own rows put back in front: each
    task gets the features of the views it asked for."""
    complete, position = [], 0
    for task in inputs:
        for k in range(len(task.images)):
            part = features[position]
            position += 1
            complete.append(torch.cat([batch_features[:task.from_batch], part]) if k == 0 and task.from_batch else part)
    return complete


def task_losses(tasks: Sequence[Task], features: list[torch.Tensor], inputs: list[TaskInputs],
                progress: Progress, weights: Sequence[float], loss_key: str,
                metric_suffix: str) -> tuple[torch.Tensor | float, dict[str, torch.Tensor]]:
    """Σ weight * task loss, over tasks whose inputs' features come in order in `features`,
    and the logs: `loss/<loss_key><task>` and `<task>/<metric><metric_suffix>`."""
    total: torch.Tensor | float = 0.0
    logs: dict[str, torch.Tensor] = {}
    position = 0
    for task, task_inputs, weight in zip(tasks, inputs, weights):
        count = len(task_inputs.images)
        loss, metrics = task.loss(features[position: position + count], task_inputs, progress)
        position += count
        total = total + weight * loss
        logs[f"loss/{loss_key}{task.name}"] = loss.detach()
        logs.update({f"{task.name}/{metric}{metric_suffix}": value for metric, value in metrics.items()})
    return total, logs
