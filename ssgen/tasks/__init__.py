"""Self-supervised tasks, one file each; importing this package registers them all."""

from ssgen.registry import TASKS
from ssgen.tasks import byol, dino, exemplar, ibot, jigsaw, moco, rotation, simclr  # noqa: F401  (registration)
from ssgen.tasks.base import Task, TaskConfig, TaskInputs

__all__ = ["TASKS", "Task", "TaskConfig", "TaskInputs"]
