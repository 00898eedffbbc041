"""torch's process-wide settings that a run sets, scoped to the run: its CPU threads, deterministic
algorithms on or off, and the global random generators seeded. `run_settings` sets them for the
block it guards and afterwards, however the block ends (an error, Ctrl-C), puts back what was
there before, so that a run inside a process that goes on (the tests, a notebook, one seed of
`ssgen train --seeds` before the next) leaves that process as it found it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch


@dataclass(frozen=True)
class TorchState:
    """What `run_settings` changes, as it is at one moment."""

    threads: int
    deterministic: bool
    deterministic_warn_only: bool
    cpu_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] | None  # None: CUDA not started (reading its state would start it)

    @classmethod
    def now(cls) -> TorchState:
        return cls(threads=torch.get_num_threads(),
                   deterministic=torch.are_deterministic_algorithms_enabled(),
                   deterministic_warn_only=torch.is_deterministic_algorithms_warn_only_enabled(),
                   cpu_rng=torch.get_rng_state(),
                   cuda_rng=torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None)

    def restore(self) -> None:
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(self.deterministic, warn_only=self.deterministic_warn_only)
        torch.set_rng_state(self.cpu_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)


@contextlib.contextmanager
def run_settings(threads: int | None, deterministic: bool, seed: int) -> Iterator[None]:
    """Within: `threads` CPU threads (None: as they are), torch.use_deterministic_algorithms
    (`deterministic`), and every global generator (CPU and CUDA) seeded with `seed`; after, all
    as before."""
    before = TorchState.now()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        torch.manual_seed(seed)
        yield
    finally:
        before.restore()
