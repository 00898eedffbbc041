"""What every method offers the trainer and the evaluators.

A method knows what is learned: its networks, which parameters each optimizer updates
(`optimized`), and one train step. It never opens a file or a writer. The trainer builds the
optimizers (after moving the method to its device), schedules their learning rates and calls
`train_step`; the probe calls `features`; FID and `ssgen sample` call `sample` when
`generative` is true.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ssgen.config import MethodConfig, OptimConfig
from ssgen.errors import ConfigError
from ssgen.optim import build_optimizer
from ssgen.parallel import average_gradients
from ssgen.step import Batch, DataInfo, Progress

# The trainer hands a method this: each call returns the next Batch on the training device
# (GANs call it n_dis times per step). A bare image tensor is taken as an unlabelled batch.
NextBatch = Callable[[], Batch | torch.Tensor]


class Method(nn.Module):
    Config: type = MethodConfig
    generative: bool = False
    feature_layers: Sequence[str] = ()   # names `features` accepts; the first is the default

    def __init__(self, cfg: MethodConfig, data: DataInfo):
        super().__init__()
        self.cfg = cfg
        self.data = data
        self.skip_nonfinite = False  # the trainer sets it from trainer.nonfinite == "skip"
        self._optimizers: dict[str, torch.optim.Optimizer] | None = None
        # Checkpointed with the weights: how many updates were skipped for a non-finite loss.
        self.register_buffer("skipped_steps", torch.zeros((), dtype=torch.long))

    @classmethod
    def check_config(cls, cfg) -> None:
        """Reject option combinations that only the whole Config shows (e.g. batch size), before compute."""

    # ---------------------------------------------------------------- optimisation
    def optimized(self) -> dict[str, tuple[list[nn.Parameter], OptimConfig]]:
        """{optimizer name: (the parameters it updates, its options)}."""
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimizers, built on first use: the trainer asks once the method is on its device
        (fused Adam needs to know it)."""
        if self._optimizers is None:
            self._optimizers = {name: build_optimizer(params, cfg) for name, (params, cfg) in self.optimized().items()}
        return self._optimizers

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """One update of optimizer `name`; with skip_nonfinite a NaN/inf loss leaves the weights untouched."""
        optimizer = self.optimizers()[name]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loss = average_gradients(optimizer, loss)  # across torchrun processes; a no-op in one
        if self.skip_nonfinite and not torch.isfinite(loss):  # a host sync, paid only in skip mode
            self.skipped_steps += 1
            return
        optimizer.step()

    def train_step(self, next_batch: NextBatch, progress: Progress = Progress()) -> dict[str, torch.Tensor]:
        """One optimisation step. Returns 0-d tensors to log (not synced to the host here)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- what was learned
    def features(self, x: torch.Tensor, layers: Sequence[str] | None = None, *,
                 grad: bool = False) -> dict[str, torch.Tensor]:
        """The representation of float [-1, 1] images: {layer: [B, F]}. Without gradients unless
        `grad` (fine-tuning trains through it)."""
        layers = self.check_features(layers)
        with torch.set_grad_enabled(grad):
            return self.compute_features(x, layers)

    def compute_features(self, x: torch.Tensor, layers: list[str]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def check_features(self, layers: Sequence[str] | None) -> list[str]:
        """The requested layers, or the default one; unknown names are ConfigErrors."""
        layers = list(layers or self.feature_layers[:1])
        for layer in layers:
            if layer not in self.feature_layers:
                raise ConfigError(
                    f"unknown feature layer {layer!r} for {self.cfg.name}; valid: {', '.join(self.feature_layers)}"
                )
        return layers

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n float [-1, 1] images from the model (EMA weights where there are some)."""
        raise NotImplementedError(f"{type(self).__name__} is not generative")

    @torch.no_grad()
    def skip_samples(self, n: int, generator: torch.Generator) -> None:
        """Advance `generator` as `sample(n, generator)` would, as cheaply as the method can:
        under torchrun each process samples only its share of FID's batches (ssgen.eval.fid)."""
        self.sample(n, generator)

    @torch.no_grad()
    def image_grids(self, real: torch.Tensor, fixed_noise: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Named float [-1, 1] image batches to show in TensorBoard (samples, reconstructions)."""
        return {}

    def fixed_noise(self, n: int, generator: torch.Generator) -> torch.Tensor | None:
        """Inputs held fixed over training so sample grids are comparable (None: not generative)."""
        return None

    def task_carrier(self) -> tuple[nn.Module, nn.ModuleList] | None:
        """(the network that carries the self-supervised tasks, the tasks), or None without tasks."""
        return None

    def compile_networks(self) -> None:
        """torch.compile the networks that the train step runs (trainer.compile: true)."""
