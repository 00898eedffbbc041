"""What every method offers the trainer and the evaluators.

A method knows what is learned (networks, losses, optimizers, one train step); it never opens
a file or a writer. The trainer calls `train_step`; the probe calls `features`; FID and
`ssgen sample` call `sample` when `generative` is true.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from ssgen.config import MethodConfig
from ssgen.parallel import average_gradients

# The trainer hands a method this: each call returns the next float [-1, 1] image batch
# [B, 3, H, W] on the training device. GANs call it n_dis times per step.
NextBatch = Callable[[], torch.Tensor]


@dataclass
class DataInfo:
    """What a method needs to know about its data to build its networks."""
    resolution: int
    channels: int = 3
    num_classes: int = 0


class Method(nn.Module):
    Config: type = MethodConfig
    generative: bool = False
    feature_layers: Sequence[str] = ()   # names `features` accepts; the first is the default

    def __init__(self, cfg: MethodConfig, data: DataInfo):
        super().__init__()
        self.cfg = cfg
        self.data = data
        self.skip_nonfinite = False  # the trainer sets it from trainer.nonfinite == "skip"
        # Checkpointed with the weights: how many updates were skipped for a non-finite loss.
        self.register_buffer("skipped_steps", torch.zeros((), dtype=torch.long))

    @classmethod
    def check_config(cls, cfg) -> None:
        """Reject option combinations that only the whole Config shows (e.g. batch size), before compute."""

    def optimize(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
        """One update; with skip_nonfinite a NaN/inf loss leaves the weights untouched."""
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        loss = average_gradients(optimizer, loss)  # across torchrun processes; a no-op in one
        if self.skip_nonfinite and not torch.isfinite(loss):  # a host sync, paid only in skip mode
            self.skipped_steps += 1
            return
        optimizer.step()

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimizers; the trainer schedules their lr and checkpoints their state."""
        raise NotImplementedError

    def train_step(self, next_batch: NextBatch) -> dict[str, torch.Tensor]:
        """One optimisation step. Returns 0-d tensors to log (not synced to the host here)."""
        raise NotImplementedError

    @torch.no_grad()
    def features(self, x: torch.Tensor, layers: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Frozen representation of float [-1, 1] images: {layer: [B, F]} for the probe."""
        raise NotImplementedError

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

    def compile_networks(self) -> None:
        """torch.compile the networks that the train step runs (trainer.compile: true)."""

    def check_features(self, layers: Sequence[str] | None) -> list[str]:
        """The requested layers, or the default one; unknown names are ConfigErrors."""
        from ssgen.errors import ConfigError

        layers = list(layers or self.feature_layers[:1])
        for layer in layers:
            if layer not in self.feature_layers:
                raise ConfigError(
                    f"unknown feature layer {layer!r} for {self.cfg.name}; valid: {', '.join(self.feature_layers)}"
                )
        return layers
