"""Where this process computes (its device, the networks' memory format there), and data
parallelism under torchrun: one process per device, each with a slice of the global batch. A low
layer: data, methods, evaluators and the trainer use it.

Gradients are averaged across processes before every optimizer step (what DistributedDataParallel
does), written out here because a GAN step runs several forward passes of shared networks per
backward, which DDP's hooks do not expect. Every process draws the same global random numbers
and keeps its slice, so K processes see exactly the batch one process would.

What is not the same as one process: statistics over the batch are taken over each process's
slice. Above all batch norm (G's, the autoencoders'): SyncBatchNorm would need NCCL, and the
gloo (CPU) backend has none; also the context encoder's fill colour and loss normaliser, and
SS-GAN's rotated subset (the first `rotation_fraction` of each slice). Networks without batch
norm (D; SS-GAN's rotation-only RotNet) train as in one process, to float rounding. Running
statistics are taken from rank 0 before every evaluation.

Evaluation is shared too: each process takes its share of the images (`shard`), and the
features are gathered in rank order (`gather_rows`), so K processes evaluate ~K times faster
and the figures are the one-process figures.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch
import torch.distributed as dist

from ssgen.errors import ConfigError

_control = None  # a gloo group for host-side flags under NCCL (None: the default group)


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA if there is a GPU), `cpu`, `cuda` or `cuda:N`; ConfigError if unusable here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"trainer.device: {name!r} is not a device; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"trainer.device={name} but no CUDA GPU is available here; use trainer.device=cpu")
    return device


def memory_format(chosen: str, device: torch.device) -> torch.memory_format:
    """The networks' memory format on `device` for trainer.memory_format `chosen`: auto is
    channels_last on a CPU (oneDNN's convolutions run faster that way), contiguous elsewhere."""
    if chosen == "auto":
        chosen = "channels_last" if torch.device(device).type == "cpu" else "contiguous"
    return torch.channels_last if chosen == "channels_last" else torch.contiguous_format


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
    global _control
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Placement()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if device_kind == "cuda":
            torch.cuda.set_device(local_rank)  # NCCL's own buffers on this process's GPU, not GPU 0
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
        # Flags (stop requests) travel on the host: a GPU all-reduce would stall the queue every step.
        _control = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
    return Placement(dist.get_rank(), world_size, local_rank)


def teardown(wait: bool = True) -> None:
    """Leave the process group. `wait`: every process reaches here before any destroys it (a
    process that tore down its gloo pairs while another still had them open aborted at exit,
    "terminate called without an active exception", now and then after a finished run). Not
    after an error: the others may never arrive, and torchrun ends them when this one exits."""
    global _control
    if dist.is_initialized():
        if wait:
            dist.barrier(group=_control)
        dist.destroy_process_group()
    _control = None


class World(NamedTuple):
    rank: int  # this process's place among them, 0 for the main one
    size: int  # how many processes train together


def world() -> World:
    """This process's rank and the world's size; (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World(0, 1)


def local_slice(global_tensor: torch.Tensor, rank: int | None = None, world_size: int | None = None) -> torch.Tensor:
    """This process's share of a tensor that every process drew identically (dim 0 split
    evenly); `rank` and `world_size` default to this process's."""
    if rank is None or world_size is None:
        rank, world_size = world()
    return global_tensor.chunk(world_size)[rank] if world_size > 1 else global_tensor


def global_draw(corrupt: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """`corrupt(x)` for a per-row random corruption (noise, masks) of this process's slice, with
    the random numbers one process draws for the global batch: every process corrupts x repeated
    to the global length and keeps its own rows. (Drawn for the slice alone, every process would
    corrupt its images exactly as rank 0 does.)"""
    world_size = world().size
    if world_size == 1:
        return corrupt(x)
    return local_slice(corrupt(torch.cat([x] * world_size)))


def average_gradients(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> torch.Tensor:
    """Average the gradients of `optimizer`'s parameters (and the loss) across processes, in one
    all-reduce of a flat buffer. Returns the averaged loss."""
    if world().size == 1:
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


def average_values(values: dict[str, torch.Tensor]) -> dict[str, float]:
    """{name: float} of a step's logged 0-d tensors, averaged over the processes (one all-reduce):
    the means over the global batch, since every process holds an equal slice of it. Every
    process gets the same figures, so decisions taken on them (non-finite loss) agree."""
    if world().size == 1 or not values:
        return {k: float(v) for k, v in values.items()}
    stacked = torch.stack([v.detach().float().reshape(()) for v in values.values()])
    dist.all_reduce(stacked)
    stacked /= dist.get_world_size()
    return dict(zip(values, stacked.tolist()))


def any_rank(flag: bool) -> bool:
    """True in every process if `flag` is true in any (e.g. one of them was sent SIGTERM)."""
    if world().size == 1:
        return flag
    t = torch.tensor([int(flag)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=_control)
    return bool(t.item())


def all_ranks(flag: bool) -> bool:
    """True in every process if `flag` is true in all of them."""
    return not any_rank(not flag)


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers (batch-norm running statistics, which each process gathered over its own
    slice) into every process, as DDP does: eval-mode forward passes then agree with rank 0 and
    its checkpoints."""
    if world().size == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer, src=0)


def shard(n: int) -> slice:
    """This process's contiguous share of n items, in rank order (sizes differ by at most one,
    as torch.tensor_split makes them); all n in one process."""
    rank, world_size = world()
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def near_equal_sizes(n: int, max_size: int) -> list[int]:
    """Sizes of the fewest batches of at most `max_size` that hold n items, differing by at most
    one: never a last batch of one, whose batch statistics (G's batch norm) are undefined."""
    return [len(chunk) for chunk in torch.arange(n).tensor_split(-(-n // max_size))] if n else []


def _comm_device(tensor: torch.Tensor) -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def gather_rows(rows: torch.Tensor) -> torch.Tensor:
    """Every process's [N_r, D] rows, concatenated in rank order, in every process (rows of
    different lengths allowed; one process: `rows` itself). All processes pass the same dtype;
    one without rows may pass torch.empty(0, 0)."""
    rank, world_size = world()
    if world_size == 1:
        return rows
    if rows.dim() != 2:
        raise ValueError(f"gather_rows expects [N, D] rows, got shape {tuple(rows.shape)}")
    home, device = rows.device, _comm_device(rows)
    shape = torch.tensor(rows.shape, device=device)
    shapes = [torch.empty_like(shape) for _ in range(world_size)]
    dist.all_gather(shapes, shape)
    counts = [int(s[0]) for s in shapes]
    widths = {int(s[1]) for s, n in zip(shapes, counts) if n > 0}
    if len(widths) > 1:
        raise ValueError(f"gather_rows: processes hold rows of different widths {sorted(widths)}")
    if not widths:  # no process has any rows
        return rows
    width = widths.pop()
    padded = torch.zeros(max(counts), width, dtype=rows.dtype, device=device)
    if counts[rank]:
        padded[: counts[rank]] = rows.to(device)
    parts = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, counts)]).to(home)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each process the gradient of its own rows, summed over
    the processes (each computed its loss from all rows): what a contrastive loss over the
    global batch needs."""

    @staticmethod
    def forward(ctx, rows: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(rows) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, rows.contiguous())
        ctx.rows = rows.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        rank = dist.get_rank()
        return grad[rank * ctx.rows: (rank + 1) * ctx.rows]


def gather_with_grad(rows: torch.Tensor) -> torch.Tensor:
    """Every process's [N, ...] rows (equal N everywhere) concatenated in rank order, with
    gradients flowing back to each process's own rows; `rows` itself in one process.

    Gradients are summed over processes in backward, and average_gradients later divides by the
    number of processes: a loss that is the mean over the global batch then gets exactly the
    one-process gradient."""
    if world().size == 1:
        return rows
    return _GatherWithGrad.apply(rows)
