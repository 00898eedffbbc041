"""How a network carries self-supervised tasks through one update, written once for every
carrier: a GAN's D (and G's side of it, gan.py), an encoder trained by its tasks alone
(encoder.py) and S4L's classifier (semisup/s4l.py).

    what happens                                            where
    ------------------------------------------------------  ----------------------------------
    1 host-side draws for the coming step (iBOT's masks)    prepare_tasks, before the step
    2 each task poses itself on the batch: its views         carry: Task.inputs
    3 one pass of the network over the images beside the    carry: encode_together
      tasks (a GAN's real and fake) and every task's views
    4 the tasks' leading unchanged rows (0-degree           carry: reused_views,
      rotations) take the batch's features, not a 2nd pass  with_reused_features
    5 Σ weight * task loss, and the logs                    carry: Task.loss
    6 the optimizer's update                                Method.optimize
    7 momentum copies follow the network                    tasks_follow

Logs: `loss/<loss_prefix><task>` (loss/d_rotation: D's, loss/rotation: an encoder's) and
`<task>/<metric>_<posed_on>`: `_real` for tasks posed on the dataset's images, `_fake` on G's.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from ssgen.step import Batch, Progress
from ssgen.tasks.base import Task, TaskInputs


class Carried(NamedTuple):
    beside: list[torch.Tensor]              # the features of the images encoded beside the tasks
    loss: torch.Tensor | float              # Σ weight * task loss (0.0 without tasks)
    logs: dict[str, torch.Tensor]


def prepare_tasks(tasks: Sequence[Task], batch: Batch, progress: Progress) -> None:
    """Step 1, eagerly before the step (which may run compiled whole)."""
    for task in tasks:
        task.before_step(batch, progress)


def carry(network: nn.Module, tasks: Sequence[Task], batch: Batch, progress: Progress, *,
          weights: Sequence[float], loss_prefix: str, posed_on: str,
          beside: Sequence[torch.Tensor] = ()) -> Carried:
    """Steps 2-5: the tasks posed on `batch` and encoded by `network` in one pass together with
    the `beside` images. When `beside[0]` is the batch's own images, each task's leading
    `from_batch` rows are taken from its features instead of being encoded again."""
    inputs = [task.inputs(batch, progress) for task in tasks]
    reuse = bool(beside) and beside[0] is batch.images
    views = reused_views(inputs) if reuse else [view for task_inputs in inputs for view in task_inputs.images]
    features = encode_together(network, [*beside, *views])
    beside_features, view_features = features[:len(beside)], features[len(beside):]
    if reuse:
        view_features = with_reused_features(view_features, inputs, beside_features[0])
    total: torch.Tensor | float = 0.0
    logs: dict[str, torch.Tensor] = {}
    position = 0
    for task, task_inputs, weight in zip(tasks, inputs, weights):
        count = len(task_inputs.images)
        loss, metrics = task.loss(view_features[position: position + count], task_inputs, progress)
        position += count
        total = total + weight * loss
        logs[f"loss/{loss_prefix}{task.name}"] = loss.detach()
        logs.update({f"{task.name}/{metric}_{posed_on}": value for metric, value in metrics.items()})
    return Carried(beside_features, total, logs)


def tasks_follow(tasks: Sequence[Task], network: nn.Module, progress: Progress) -> None:
    """Step 7, after the network's optimizer stepped."""
    for task in tasks:
        task.after_update(network, progress)


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
