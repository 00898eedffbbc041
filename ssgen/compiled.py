"""A method's train step compiled whole (trainer.compile: step): forward, loss, backward and
the optimizer's update in one graph, with CUDA graphs on a GPU. A low layer (torch only): the
method declares its steps (ssgen/methods/base.py) and this runs them.

What makes one graph of a step: the gradients come from torch.autograd.grad, which dynamo traces
into the graph (`trace_autograd_ops`), not from backward(), which breaks it; the update is
ssgen.optim.compiled_update on the optimizer's own state, since torch's step() breaks the graph
on purpose; learning rates are 0-d tensors refreshed before each call; noise is drawn inside, by
torch's own generator (`fallback_random`), so the compiled step draws what the eager step draws
and a checkpoint's RNG state resumes it exactly; logs stay tensors. `fullgraph=True`: a graph
break is an error, not a silent slow path.
"""

from __future__ import annotations

from typing import Callable

import torch

from ssgen.errors import ConfigError
from ssgen.step import Batch, Progress

StepFunction = Callable[[Batch, Progress], dict]


def check_supported() -> None:
    if not hasattr(torch._dynamo.config, "trace_autograd_ops"):
        raise ConfigError(f"trainer.compile=step needs a torch whose compiler traces torch.autograd.grad "
                          f"(torch._dynamo.config.trace_autograd_ops); torch {torch.__version__} has none. "
                          "Use trainer.compile=modules or eager")


def compile_options(device: torch.device) -> dict:
    """Inductor's options: torch's RNG rather than inductor's own (the eager step's random numbers),
    and CUDA graphs on a GPU (what mode="reduce-overhead" sets; torch.compile takes a mode or
    options, not both)."""
    return {"fallback_random": True, "triton.cudagraphs": device.type == "cuda"}


class CompiledStep:
    """`step(batch, progress) -> logs`, compiled once and called with the batch copied into
    persistent input tensors (CUDA graphs replay on fixed addresses). `before` runs eagerly before
    each call: what must not be traced (learning rates into their tensors, optimizer state made)."""

    def __init__(self, name: str, step: StepFunction, before: Callable[[], None], device: torch.device,
                 backend: str = "inductor"):
        check_supported()
        self.name, self.before, self.device = name, before, device
        options = compile_options(device) if backend == "inductor" else None
        self.graphed = backend == "inductor" and device.type == "cuda"

        def tensors_step(images, labels, indices, progress):
            return step(Batch(images, labels, indices), progress)

        self.compiled = torch.compile(tensors_step, fullgraph=True, backend=backend, options=options)
        self.inputs: list[torch.Tensor] | None = None

    def __call__(self, batch: Batch, progress: Progress) -> dict[str, torch.Tensor]:
        self.before()
        given = [batch.images, batch.labels, batch.indices]
        if self.inputs is None or any(a.shape != b.shape for a, b in zip(self.inputs, given)):
            self.inputs = [t.detach().clone() for t in given]
        else:
            for buffer, value in zip(self.inputs, given):
                buffer.copy_(value)
        if self.graphed:
            torch.compiler.cudagraph_mark_step_begin()
        try:
            with torch._dynamo.config.patch(trace_autograd_ops=True):
                logs = self.compiled(*self.inputs, progress)
        except (torch._dynamo.exc.Unsupported, torch._dynamo.exc.UserError) as err:
            # Host-side work in the step (a Python loop over random draws, a tensor read into
            # Python): the step as written is not one graph, and fullgraph refuses to split it.
            first_line = str(err).strip().splitlines()[0]
            raise ConfigError(f"trainer.compile=step: the {self.name!r} step cannot be compiled as one graph "
                              f"({type(err).__name__}: {first_line}); use trainer.compile=modules or eager") from err
        # A CUDA graph's outputs are overwritten by its next replay: the logs are read later.
        return {k: v.clone() for k, v in logs.items()} if self.graphed else logs
