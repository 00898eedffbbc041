"""What every method offers the trainer and the evaluators.

A method knows what is learned: its networks, which parameters each optimizer updates
(`optimized`), and one train step. It never opens a file or a writer. The train step is made of
the steps the method declares (`steps`: names, each a `<name>_step(batch, progress)` method,
e.g. a GAN's "d" and "g"), run through `run_step`: eagerly, or each compiled whole as one graph
(trainer.compile: step, ssgen/compiled.py) with no code of the method's own. The optimizers are
one object (`optimizers()`, ssgen/optimizers.py), built once the method is on its device: the
method steps them (`optimize`), the trainer schedules and checkpoints them and calls
`train_step`; the probe calls `features`; FID and `ssgen sample` call `sample` when
`generative` is true.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from ssgen.config import MethodConfig, OptimConfig
from ssgen.errors import ConfigError
from ssgen.compiled import CompiledStep
from ssgen.optimizers import Optimizers
from ssgen.parallel import world
from ssgen.step import Batch, DataInfo, Progress, as_batch

# The trainer hands a method this: each call returns the next Batch on the training device
# (GANs call it n_dis times per step). A bare image tensor is taken as an unlabelled batch.
NextBatch = Callable[[], Batch | torch.Tensor]


class Method(nn.Module):
    Config: type = MethodConfig
    generative: bool = False
    feature_layers: Sequence[str] = ()   # names `features` accepts; the first is the default
    # Each names a `<name>_step(batch, progress) -> logs`; trainer.compile=step compiles each whole.
    steps: Sequence[str] = ()

    def __init__(self, cfg: MethodConfig, data: DataInfo):
        super().__init__()
        self.cfg = cfg
        self.data = data
        self._optimizers: Optimizers | None = None
        self._compiled: dict[str, CompiledStep] = {}
        # Checkpointed with the weights: how many updates were skipped for a non-finite loss.
        self.register_buffer("skipped_steps", torch.zeros((), dtype=torch.long))

    @classmethod
    def check_config(cls, cfg) -> None:
        """Reject option combinations that only the whole Config shows (e.g. batch size), before compute."""

    # ---------------------------------------------------------------- optimisation
    def optimized(self) -> dict[str, tuple[list[nn.Parameter], OptimConfig]]:
        """{optimizer name: (the parameters it updates, its options)}."""
        raise NotImplementedError

    def optimizers(self) -> Optimizers:
        """The optimizers by name, and how they step (ssgen.optimizers), built on first use: the
        trainer asks once the method is on its device (fused Adam needs to know it)."""
        if self._optimizers is None:
            self._optimizers = Optimizers(self.optimized(), self.skipped_steps)
        return self._optimizers

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """One update of optimizer `name` on `loss` (Optimizers.step)."""
        self.optimizers().step(name, loss)

    def train_step(self, next_batch: NextBatch, progress: Progress = Progress()) -> dict[str, torch.Tensor]:
        """One optimisation step. Returns 0-d tensors to log (not synced to the host here). A method
        of one step runs it on the next batch; a method of several (a GAN) says how they follow."""
        (name,) = self.steps
        return self.run_step(getattr(self, f"{name}_step"), as_batch(next_batch()), progress)

    def run_step(self, step: Callable[[Batch, Progress], dict[str, torch.Tensor]], batch: Batch,
                 progress: Progress) -> dict[str, torch.Tensor]:
        """`step`, one of the declared steps (e.g. `self.d_step`): eagerly, or its compiled graph
        once `compile_steps` was called."""
        compiled = self._compiled.get(step.__name__)
        return step(batch, progress) if compiled is None else compiled(batch, progress)

    def compile_steps(self, backend: str = "inductor") -> None:
        """Compile each declared step whole (trainer.compile: step). Call once the method is on its
        device; `backend` other than inductor (aot_eager) is for the tests' quicker equality proofs."""
        device = next(self.parameters()).device
        if not self.steps:  # without this, the run would go on eagerly while its config says otherwise
            raise ConfigError(f"trainer.compile=step: method {self.cfg.name!r} declares no steps to compile whole "
                              "(Method.steps); use trainer.compile=modules or eager")
        if self.optimizers().skip_nonfinite:
            raise ConfigError("trainer.compile=step keeps no host sync inside a step, and "
                              "trainer.nonfinite=skip needs one per update; use trainer.nonfinite=stop "
                              "or trainer.compile=modules")
        if world().size > 1:
            raise ConfigError("trainer.compile=step runs in one process; under torchrun use trainer.compile=modules")
        self._compiled = {f"{name}_step": CompiledStep(name, getattr(self, f"{name}_step"),
                                                       self.optimizers().prepare_compiled, device, backend)
                          for name in self.steps}

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
        """torch.compile the networks that the train step runs (trainer.compile: modules)."""
