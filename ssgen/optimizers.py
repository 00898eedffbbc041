"""A method's optimizers at run time, owned by one object: `Optimizers`.

ssgen.optim says what an optimizer is (built by name, its compiled arithmetic, its schedule);
this is what a run does with a method's set of them: build each once the parameters are on their
device, step one on a loss (its own parameters' gradients, averaged across processes, a
non-finite step skipped and counted), follow the learning-rate schedules, ready their state and
learning rates for a compiled step, and save and load their state for checkpoints. The method
steps them (`Method.optimize`), the trainer schedules and checkpoints them, both through this.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch
from torch import nn

from ssgen.config import OptimConfig
from ssgen.optim import build_optimizer, compiled_update, prepare_state, set_learning_rates
from ssgen.parallel import average_gradients

Optimized = Mapping[str, tuple[list[nn.Parameter], OptimConfig]]  # Method.optimized()


class Optimizers(Mapping[str, torch.optim.Optimizer]):
    """{name: torch optimizer} (read-only), and how they step. `skipped_steps` is the counter of
    updates skipped for a non-finite loss: the method's buffer, counted in place so that the
    method's checkpointed state holds it (build this once the method is on its device, as fused
    Adam needs anyway, so the buffer is the one the method keeps)."""

    def __init__(self, optimized: Optimized, skipped_steps: torch.Tensor):
        self.by_name = {name: build_optimizer(params, cfg) for name, (params, cfg) in optimized.items()}
        self.configs = {name: cfg for name, (_, cfg) in optimized.items()}  # each one's schedule
        self.skipped_steps = skipped_steps
        self.skip_nonfinite = False  # the trainer sets it from trainer.nonfinite == "skip"
        self.lrs: dict[str, list[torch.Tensor]] = {}  # compiled steps read the learning rates from these

    def __getitem__(self, name: str) -> torch.optim.Optimizer:
        return self.by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.by_name)

    def __len__(self) -> int:
        return len(self.by_name)

    def step(self, name: str, loss: torch.Tensor) -> None:
        """One update of optimizer `name`; with skip_nonfinite a NaN/inf loss leaves the weights untouched."""
        optimizer = self.by_name[name]
        params = [p for group in optimizer.param_groups for p in group["params"]]
        # The gradients of this optimizer's parameters only: backward() would also compute the
        # weight gradients of every other network the loss passed through (D's, in a G step),
        # to be thrown away.
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        if torch.compiler.is_compiling():  # inside a compiled step (no skip mode, one process)
            compiled_update(optimizer, list(grads), self.lrs[name])
            return
        for p, grad in zip(params, grads):
            p.grad = grad
        loss = average_gradients(optimizer, loss)  # across torchrun processes; a no-op in one
        if self.skip_nonfinite and not torch.isfinite(loss):  # a host sync, paid only in skip mode
            self.skipped_steps += 1
            return
        optimizer.step()

    def schedule(self, step: int, total: int) -> None:
        """Each optimizer's learning rates at 1-based `step` of `total`, by its own schedule."""
        for name, optimizer in self.by_name.items():
            set_learning_rates(optimizer, self.configs[name], step, total)

    def prepare_compiled(self) -> None:
        """Before a compiled step: optimizer state made (or kept, on resume) and this step's
        learning rates copied into the tensors the graph reads."""
        for name, optimizer in self.by_name.items():
            prepare_state(optimizer)
            lrs = self.lrs.setdefault(name, [torch.zeros((), device=group["params"][0].device)
                                             for group in optimizer.param_groups])
            for lr, group in zip(lrs, optimizer.param_groups):
                lr.fill_(group["lr"])

    def state_dict(self) -> dict[str, dict]:
        """{name: that optimizer's state_dict}: a checkpoint's "optimizers" entry."""
        return {name: optimizer.state_dict() for name, optimizer in self.by_name.items()}

    def load_state_dict(self, state: Mapping[str, dict]) -> None:
        for name, optimizer in self.by_name.items():
            optimizer.load_state_dict(state[name])
