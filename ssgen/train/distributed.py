"""Data parallelism under torchrun: one process per device, each with a slice of the global batch.

Gradients are averaged across processes before every optimizer step (what DistributedDataParallel
does), written out here because a GAN step runs several forward passes of shared networks per
backward, which DDP's hooks do not expect. Every process draws the same global random numbers
and keeps its slice, so K processes see exactly the batch one process would.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Placement:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_kind: str) -> Placement:
    """Join the process group that torchrun describes in the environment (single process: no-op)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Placement()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return Placement(dist.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def world() -> tuple[int, int]:
    """(rank, world_size) of this process; (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def local_slice(global_tensor: torch.Tensor) -> torch.Tensor:
    """This process's share of a tensor that every process drew identically (dim 0 split evenly)."""
    rank, world_size = world()
    return global_tensor.chunk(world_size)[rank] if world_size > 1 else global_tensor


def average_gradients(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    """Average the gradients of `optimizer`'s parameters (and the loss) across processes, in one
    all-reduce of a flat buffer. Returns the averaged loss."""
    if world()[1] == 1:
        return loss
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1).to(grads[0].dtype)])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()
    return flat[-1]
