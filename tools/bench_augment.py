"""Images per second of one SimCLR view (crop scale (0.08, 1), flip 0.5, jitter (0.4, 0.4, 0.4,
0.1) p 0.8, grayscale p 0.2), per-image draws: ssgen's hand-written `Augmenter` against kornia's
`kornia.augmentation` pipeline, on CPU with 1 and 2 threads and on CUDA when there is one.
Random images: the content does not change the cost.

    python tools/bench_augment.py                    # 32 px, batch 256
    python tools/bench_augment.py --resolution 64 --batch 512 --threads 1 2 4
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch
from torch import nn

from ssgen.augment import Augmenter, ViewConfig


def hand_written(resolution: int) -> Callable[[torch.Tensor], torch.Tensor]:
    augment = Augmenter([ViewConfig()], resolution)
    return lambda x: augment(x)[0]


def kornia_pipeline(resolution: int) -> Callable[[torch.Tensor], torch.Tensor]:
    import kornia.augmentation as K
    view = ViewConfig()
    pipeline = nn.Sequential(
        K.RandomResizedCrop((resolution, resolution), scale=tuple(view.crop_scale), ratio=tuple(view.crop_ratio)),
        K.RandomHorizontalFlip(p=view.flip),
        K.ColorJitter(*view.jitter, p=view.jitter_p),
        K.RandomGrayscale(p=view.grayscale_p),
    )
    return lambda x: pipeline((x + 1) / 2) * 2 - 1  # kornia works in [0, 1]


def images_per_second(augment, x: torch.Tensor, seconds: float, repeats: int) -> tuple[float, float]:
    """Best and median rate over `repeats` timed windows: on a shared machine the best window
    is the one least disturbed by other processes."""
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for _ in range(3):  # warm-up: allocator, kernels, kornia's first-call setup
        augment(x)
    rates = []
    for _ in range(repeats):
        sync()
        start, done = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            augment(x)
            done += x.shape[0]
        sync()
        rates.append(done / (time.perf_counter() - start))
    return max(rates), statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per timed window")
    parser.add_argument("--repeats", type=int, default=5, help="timed windows per row")
    args = parser.parse_args()

    makers = {"hand-written": hand_written, "kornia": kornia_pipeline}
    settings = [("cpu", t) for t in args.threads] + ([("cuda", None)] if torch.cuda.is_available() else [])
    torch.manual_seed(0)
    print(f"one SimCLR view, {args.resolution}x{args.resolution}, batch {args.batch}, torch {torch.__version__}")
    print(f"{'implementation':<14} {'device':<10} {'best img/s':>11} {'median':>9}")
    for device, threads in settings:
        if threads is not None:
            torch.set_num_threads(threads)
        x = torch.rand(args.batch, 3, args.resolution, args.resolution, device=device) * 2 - 1
        for name, make in makers.items():
            try:
                augment = make(args.resolution)
            except ImportError:
                print(f"{name:<14} (not installed)")
                continue
            where = f"cpu x{threads}" if threads else torch.cuda.get_device_name()[:10]
            best, median = images_per_second(augment, x, args.seconds, args.repeats)
            print(f"{name:<14} {where:<10} {best:>11,.0f} {median:>9,.0f}", flush=True)


if __name__ == "__main__":
    main()
