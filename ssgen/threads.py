"""How many CPU threads torch computes with (trainer.threads), and a watch on the pace of training.

On a CPU that other work shares, torch's default (one thread per physical core) collapses: the
threads of each operation wait on each other while a core is busy elsewhere. On the 2-core
machine with one other job, 50 quick-demo steps took 74-162 s at 2 threads and 7 s at 1
(tools/bench_threads_under_load.py measures it). On a quiet machine 2 threads are
1.3-1.7x faster than 1 (docs/performance.md). So `trainer.threads: 0` (auto) chooses at the start
from what the cores are doing then: the physical cores less those busy with other work, at least
one. Work that starts later is what `Pace` is for: it says when the steps/s fall far below the
first steps'. The thread count changes float rounding, not the recipe, so a resume may change it;
with trainer.deterministic, auto takes the physical cores whatever the load, so that a run and
its resume compute alike.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

SAMPLE_S = 0.3  # how long the cores are watched before choosing
SLOW_FACTOR = 3.0  # steps/s this many times below the first steps' draw a warning


def usable_cpus() -> int:
    """The logical CPUs this process may run on (its affinity, as a container or taskset sets it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def physical_cores() -> int:
    """Physical cores among the usable CPUs (hyper-threads share a core's units); the usable CPUs
    where the topology cannot be read."""
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            package = (topology / "physical_package_id").read_text().strip()
            cores.add((package, (topology / "core_id").read_text().strip()))
        except OSError:
            return usable_cpus()
    return max(1, len(cores))


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot; None off Linux."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(seconds: float = SAMPLE_S) -> float | None:
    """How many CPUs' worth of work other processes ran over the next `seconds` (this one sleeps
    meanwhile); None where it cannot be measured."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(seconds)
    after = _cpu_times()
    total = after[1] - before[1]
    return (after[0] - before[0]) / total * (os.cpu_count() or 1) if total > 0 else None


def auto_threads(deterministic: bool) -> tuple[int, str]:
    """(threads, why) for trainer.threads=0: the physical cores not busy with other work now,
    shared among this machine's processes (torchrun's LOCAL_WORLD_SIZE), at least one."""
    processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    cores = physical_cores()
    busy = None if deterministic else busy_cores()
    if busy is None:
        why = "trainer.deterministic: the same whatever the load" if deterministic else "the load is unknown here"
        return max(1, cores // processes), f"{cores} physical cores ({why})"
    free = max(1, cores - round(busy))
    return max(1, free // processes), f"{cores} physical cores, {busy:.1f} busy with other work at the start"


def choose_threads(requested: int, deterministic: bool, log: Callable[[str], None]) -> int:
    """torch's CPU threads for a run (set by ssgen.torch_state.run_settings): `requested`, or with 0
    the automatic choice; says what it chose and warns where more threads are asked for than there
    are CPUs."""
    if requested:
        if requested > usable_cpus():
            log(f"warning: trainer.threads={requested} is more than the {usable_cpus()} CPUs this process can use; "
                "the extra threads only wait for a core (trainer.threads=0 chooses by itself)")
        return requested
    threads, why = auto_threads(deterministic)
    log(f"CPU threads: {threads} ({why}); set trainer.threads=N to choose")
    return threads


class Pace:
    """Watches the steps/s of each logging window against the first clean one's: a slump on a
    CPU means that other work came in, where fewer threads than the cores cope far better."""

    def __init__(self, threads: int, resume_command: str):
        self.threads, self.resume_command = threads, resume_command
        self.first: float | None = None
        self.warned = False

    def check(self, steps_per_s: float, step: int, clean: bool = True) -> str | None:
        """A warning, once, where this window ran SLOW_FACTOR times slower than the first; `clean`:
        the window held no evaluation (which is slow by its nature), else it is not compared."""
        if not clean or self.warned or steps_per_s <= 0:
            return None
        if self.first is None:
            self.first = steps_per_s
            return None
        if steps_per_s * SLOW_FACTOR > self.first:
            return None
        self.warned = True
        advice = (f"with {self.threads} threads on a shared CPU they wait on each other; fewer help: stop (Ctrl-C) "
                  f"and {self.resume_command} --set trainer.threads=1" if self.threads > 1
                  else "other work is likely taking the CPU")
        return (f"warning: {steps_per_s:.3g} steps/s at step {step}, {self.first / steps_per_s:.0f}x below the first "
                f"steps' {self.first:.3g}: {advice}")
