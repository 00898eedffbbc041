"""Progress on long work that reads well on a terminal and in a file.

On a terminal: tqdm's bar, redrawn in place. Anywhere else (a file, CI, a cluster job's log)
a bar is hundreds of carriage-return updates on one line, so instead: one plain line every
`every` items, and one at the end, each saying how far, how fast and how long is left.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Iterable, Iterator, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def interactive() -> bool:
    return sys.stderr.isatty()


def duration(seconds: float) -> str:
    """12s, 3m05s, 2h14m."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressReport:
    """`update(n, **figures)` as work gets done; `close()` at the end.

    `bar`: a tqdm bar (only where stderr is a terminal and the caller wants one); otherwise a
    plain line through `log` each time the count passes a multiple of `every`, and at the end
    (every 0: never), prefixed with `what`."""

    def __init__(self, total: int, what: str, log: Callable[[str], None], *, every: int = 0,
                 initial: int = 0, unit: str = "it", bar: bool = True):
        self.total, self.what, self.log, self.every, self.unit = total, what, log, every, unit
        self.done, self.start_done = initial, initial
        self.started = self.last_time = time.perf_counter()
        self.last_done = initial
        self.bar = tqdm(total=total, initial=initial, desc=what, unit=unit, dynamic_ncols=True) \
            if bar and interactive() else None

    def update(self, n: int = 1, **figures: float) -> None:
        before, self.done = self.done, self.done + n
        if self.bar is not None:
            self.bar.update(n)
            if figures:
                self.bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in figures.items()}, refresh=False)
        elif self.every and (self.done // self.every > before // self.every or self.done == self.total):
            self.log(self.line(figures))

    def line(self, figures: dict[str, float]) -> str:
        now = time.perf_counter()
        rate = (self.done - self.last_done) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_done = now, self.done
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        width = len(str(self.total))
        parts = [f"{self.what} {self.done:>{width}}/{self.total}", f"{rate:.3g} {self.unit}/s",
                 f"ETA {duration(left)}" if left != float("inf") else "ETA ?"]
        parts += [f"{key} {value:.4g}" for key, value in figures.items()]
        return "  ".join(parts)

    def wrap(self, items: Iterable[T], sizes: Iterable[int] | None = None) -> Iterator[T]:
        """Yield `items`, counting each (or its size in `sizes`) as done after it is used."""
        sizes = iter(sizes) if sizes is not None else None
        for item in items:
            yield item
            self.update(next(sizes) if sizes is not None else 1)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Heartbeat:
    """`with Heartbeat(what, log):` a plain line every `every_s` seconds while the block runs.

    From a thread of its own, so that a long phase (decoding a dataset, an evaluation) needs no
    hook inside it: a user whose log stays silent for minutes cannot tell a slow start from a hung
    one. `eta`: the phase's expected seconds, for the time left in each line."""

    def __init__(self, what: str, log: Callable[[str], None], every_s: float = 15.0, eta: float | None = None):
        self.what, self.log, self.every_s, self.eta = what, log, every_s, eta
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.beat, daemon=True)

    def beat(self) -> None:
        started = time.perf_counter()
        while not self.done.wait(self.every_s):
            elapsed = time.perf_counter() - started
            left = f", about {duration(self.eta - elapsed)} left" if self.eta and self.eta > elapsed else ""
            self.log(f"{self.what}: {duration(elapsed)} so far{left}")

    def __enter__(self) -> "Heartbeat":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()
