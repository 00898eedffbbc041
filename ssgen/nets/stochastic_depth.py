"""Stochastic depth (Huang et al. 2016): while training, each residual block is skipped (the
identity) for a random share of the images; Noisy Student's third kind of noise on the student.

It is added to an encoder as forward hooks, not as wrappers, so the network's modules and state
dict stay what they are (a checkpoint loads into the same encoder without it). A block whose
output has its input's shape becomes, for a dropped image, its input; for a kept image its change
to the input is divided by the survival probability (the inverted-dropout form, so eval mode needs
no rescaling). Blocks that resample or change the channels cannot be skipped and are left alone.
The drop probability grows linearly with depth, from 0 to `last` at the deepest block, as in
Huang et al. (Noisy Student: survival 0.8 at the last block). Draws come from torch's global RNG,
which the trainer checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn


def residual_blocks(encoder: nn.Module) -> list[nn.Module]:
    """The residual blocks of an encoder from ssgen.nets, shallow to deep."""
    if hasattr(encoder, "blocks"):      # the SNGAN discriminator trunk
        return list(encoder.blocks.values())
    if hasattr(encoder, "stages"):      # the CIFAR ResNet-18: its BasicBlocks
        return [block for stage in encoder.stages() for block in stage]
    if hasattr(encoder, "encoder") and hasattr(encoder.encoder, "layers"):  # the ViT's transformer layers
        return list(encoder.encoder.layers)
    raise ValueError(f"no residual blocks known in {type(encoder).__name__}")


def drop_path_hook(drop: float):
    def hook(block: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        (x,) = inputs
        if not block.training or drop == 0 or output.shape != x.shape:
            return None  # keep the output
        keep = 1.0 - drop
        kept = (torch.rand(len(x), device=x.device) < keep).to(x.dtype).view(-1, *[1] * (x.ndim - 1))
        return x + (output - x) * kept / keep
    return hook


def add_stochastic_depth(encoder: nn.Module, last: float) -> list:
    """Hooks the encoder's residual blocks; `last`: the drop probability of the deepest one.
    Returns the hook handles (no hooks at 0)."""
    if not 0 <= last < 1:
        raise ValueError(f"stochastic depth {last}: expected a drop probability in [0, 1)")
    if last == 0:
        return []
    blocks = residual_blocks(encoder)
    return [block.register_forward_hook(drop_path_hook(last * (index + 1) / len(blocks)))
            for index, block in enumerate(blocks)]
