"""How close to the machine is a training step? Its matrix FLOPs (convolutions and matmuls, forward
and backward, counted with torch's flop formulas over one real step) over its time, against what
this machine reaches on a dense GEMM and on the step's own convolutions run alone, in fp32 and bf16.

    python tools/step_vs_peak.py --config configs/ssgan_cifar10.yaml [--threads 2] [--steps 5] [--set k=v ...]

Three figures per precision:
- GEMM peak: a square matmul of --gemm rows (2048: large enough to reach the matrix units' rate);
- the step's convolutions alone: every convolution of one step, forward and backward (recorded at
  torch's dispatch, so the fused resampling's F.conv2d / F.conv_transpose2d calls count, at their
  own 4x4 stride-2 shapes), replayed back to back on random tensors of the recorded shapes,
  strides (channels_last stays channels_last) and dtypes: what these shapes reach without the rest;
- the step: its FLOPs / its median time over --rounds of --steps G steps (bf16: under autocast).
The three take turns in each round, so that a changing load weighs on each alike; all are medians.
On a shared machine, --clock cpu times with this process's CPU time instead of the wall clock: at
--threads 1, the time it computed, which waiting for a core does not inflate.
The gap between the second and the third is the step's non-convolution work (activations,
normalisation, optimizer, data movement), and "convs share" says how much of the step's time the
convolutions alone take; between the first and the second, the shapes' own limit.
Synthetic device-resident batches, as tools/bench_train.py: the step, not the dataset, is timed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import flop_registry

from ssgen.config import load_config
from ssgen.parallel import resolve_device
from ssgen.rebuild import build_method

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


class MatrixFlops(TorchDispatchMode):
    """Counts the FLOPs of every op torch's flop counter knows (convolutions, their backward, matmuls).
    Its own mode because torch's FlopCounterMode tracks modules with hooks that autograd.grad,
    which ssgen's steps use, does not support."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        count = flop_registry.get(func._overloadpacket)
        if count is not None:
            self.total += count(*args, **kwargs, out_val=out)
        return out


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = CLOCKS["wall"]


def timed(fn, repeats: int, warm_up: bool = True) -> float:
    """Median seconds of fn() over `repeats` calls, after one untimed call."""
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return statistics.median(times)


CONVOLUTIONS = (torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default)


class ConvolutionRecorder(TorchDispatchMode):
    """Every convolution, forward and backward, dispatched while active, as (op, args, kwargs) with
    each tensor replaced by a random one of its shape, strides and dtype, to be replayed alone."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in CONVOLUTIONS:
            self.calls.append((func, tree_map(random_like, args), tree_map(random_like, kwargs)))
        return func(*args, **kwargs)


def random_like(value):
    if not isinstance(value, torch.Tensor):
        return value
    return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device=value.device).normal_()


def replay(calls):
    """The recorded convolutions, to be run back to back, and their FLOPs."""
    def run():
        for func, args, kwargs in calls:
            func(*args, **kwargs)

    with MatrixFlops() as counter:
        run()
    return run, counter.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/ssgan_cifar10.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--steps", type=int, default=3, help="timed G steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--gemm", type=int, default=2048, help="rows of the square GEMM that measures the peak")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall, or cpu: this process's CPU time (at --threads 1, unaffected by waiting for a core)")
    args = parser.parse_args()
    global clock
    clock = CLOCKS[args.clock]
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, [*args.overrides, "trainer.precision=fp32"])  # autocast is set here, per row
    device = resolve_device(cfg.trainer.device)
    print(f"load average {os.getloadavg()[0]:.1f}; device {device.type}, {torch.get_num_threads()} threads, "
          f"{args.clock} clock, torch {torch.__version__}; config {args.config} {' '.join(args.overrides)}; "
          f"batch {cfg.trainer.batch_size}")
    torch.manual_seed(cfg.seed)
    method = build_method(cfg, device)
    method.optimizers()
    pool = torch.rand(8, cfg.trainer.batch_size, 3, cfg.data.resolution, cfg.data.resolution, device=device) * 2 - 1
    counter = iter(range(10**12))

    def next_batch():
        return pool[next(counter) % len(pool)]

    print(f"{'precision':9} {'GEMM peak':>12} {'convs alone':>12} {'step':>12} {'step/peak':>9} {'s/step':>8} "
          f"{'convs share':>11}")
    for name, dtype in PRECISIONS.items():
        amp = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with amp, MatrixFlops() as flops, ConvolutionRecorder() as recorder:
            method.train_step(next_batch)  # one G step: n_dis D updates and one G update
        step_flops = flops.total

        def steps(amp=amp):
            with amp:
                for _ in range(args.steps):
                    method.train_step(next_batch)

        convs, conv_flops = replay(recorder.calls)
        a, b = (torch.randn(args.gemm, args.gemm, device=device, dtype=dtype or torch.float32) for _ in range(2))
        steps(), convs(), a @ b  # warm-up
        rounds = [(timed(steps, 1, False) / args.steps, timed(convs, 1, False), timed(lambda a=a, b=b: a @ b, 3, False))
                  for _ in range(args.rounds)]
        seconds, conv_seconds, gemm_seconds = (statistics.median(column) for column in zip(*rounds))
        recorder.calls.clear()  # the random tensors: a step's activations' worth of memory
        peak = 2 * args.gemm**3 / gemm_seconds / 1e9
        alone, step = conv_flops / conv_seconds / 1e9, step_flops / seconds / 1e9
        print(f"{name:9} {peak:9.1f} GF/s {alone:9.1f} GF/s {step:9.1f} GF/s {step / peak:8.1%} {seconds:8.3f} "
              f"{conv_seconds / seconds:10.0%}")
    print(f"one G step: {step_flops / 1e9:.2f} GFLOP of convolutions and matmuls (forward and backward); "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
