"""What an evaluation costs, said before it runs: what it measures, on how many images, and about
how long it will take, so that a run's log is never silent for minutes without saying why."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ssgen.images import to_float

PAPERS_SIZE = 10000  # the CIFAR-10 configs' evaluation sizes, the papers' (10k images)
CHEAPER_SIZE = 2000  # what a smaller evaluation suggests instead: 5x cheaper, still a usable figure


@dataclass(frozen=True)
class Workload:
    what: str                      # "linear probe (penultimate) on 10,000 train + 10,000 test images"
    images: int                    # images through the networks: what the cost scales with
    largest: int                   # the largest image count among its sizes (the papers' size: 10,000)
    cheaper: tuple[str, ...] = ()  # the --set overrides that shrink it


def smaller(sizes: dict[str, int]) -> tuple[str, ...]:
    """`--set key=N` for each of `sizes` ({config key: its value}) above CHEAPER_SIZE."""
    return tuple(f"{key}={CHEAPER_SIZE}" for key, size in sizes.items() if size > CHEAPER_SIZE)


def set_options(workloads: list[Workload]) -> str:
    return " ".join(f"--set {option}" for workload in workloads for option in workload.cheaper)


@torch.no_grad()
def seconds_per_image(method, images: torch.Tensor, device: torch.device) -> float:
    """One image's time through `method.features`, eval mode: the fastest of a few timed passes
    over a batch after a first one (which pays the kernels' set-up). An evaluation's cost is mostly
    such passes: its estimate is this times its images, a rough figure that the first evaluation's
    own time replaces."""
    was_training = method.training
    method.eval()
    try:
        batch = to_float(images.to(device))
        method.features(batch)
        return min(timed_pass(method, batch, device) for _ in range(3)) / len(batch)
    finally:
        method.train(was_training)


def timed_pass(method, batch: torch.Tensor, device: torch.device) -> float:
    started = time.perf_counter()
    method.features(batch)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started
