"""A run directory's life while it trains, in one place: checked writable and locked before any
compute (`with RunDirectory(...)`: the lock is held until the block ends), claimed by a fresh run
(refused while it holds another run, or emptied with --overwrite), the run's records written at
its start (config.yaml, holdout.txt, labelled.txt), and metrics.jsonl cut back to the checkpoint
on resume. The files' names and formats are ssgen.checkpoint's; only the main process writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from ssgen.checkpoint import CHECKPOINT_DIR, CONFIG_FILE, HOLDOUT_FILE, LABELLED_FILE, list_checkpoints
from ssgen.config import Config, to_dict
from ssgen.data import holdout_text
from ssgen.data.labelled import labelled_text
from ssgen.errors import SsgenError
from ssgen.eval.metrics import METRICS_FILE
from ssgen.files import atomic_write

RUN_FILES = (CONFIG_FILE, METRICS_FILE, HOLDOUT_FILE, CHECKPOINT_DIR, "tb", "samples")
LOCK_FILE = ".lock"


class RunDirectory:
    """`path` as one training process sees it; `is_main`: this process writes the files (under
    torchrun the others only read them)."""

    def __init__(self, path: str | Path, is_main: bool = True):
        self.path, self.is_main = Path(path), is_main
        self.lock = None

    def __enter__(self) -> RunDirectory:
        if self.is_main:
            check_writable(self.path)
            self.lock = lock_run_dir(self.path)
        return self

    def __exit__(self, *exc) -> None:
        if self.lock is not None:
            self.lock.close()  # releases the lock
            self.lock = None

    def claim(self, overwrite: bool) -> None:
        """A fresh run's: see claim_run_dir."""
        claim_run_dir(self.path, overwrite, self.is_main)

    def record_start(self, cfg: Config, holdout: list[str], labelled, resumed_at: int | None) -> None:
        """The run's records, written at every start: the config (rewritten at every resume, since a
        torn config.yaml would make the run impossible to resume), the held-out test images and the
        labelled rows where there are some; on resume (`resumed_at`: the checkpoint's step, 0 if
        none) the metrics a killed run logged after it are dropped."""
        if not self.is_main:
            return
        atomic_write(self.path / CONFIG_FILE, yaml.safe_dump(to_dict(cfg), sort_keys=False))
        if holdout:
            atomic_write(self.path / HOLDOUT_FILE, holdout_text(holdout))
        if labelled is not None:
            atomic_write(self.path / LABELLED_FILE, labelled_text(labelled))
        if resumed_at is not None:
            drop_metrics_after(self.path, resumed_at)


def claim_run_dir(run_dir: Path, overwrite: bool, is_main: bool) -> None:
    """A fresh run never writes into a directory that holds a run: its metrics, TensorBoard
    events and checkpoints would interleave with the old run's, and a resume would continue the
    old one. Refuse with the choices, or with `overwrite` delete the old run's files first."""
    found = [name for name in RUN_FILES if (run_dir / name).exists()]
    if not found:
        return
    if not overwrite:
        checkpoints = list_checkpoints(run_dir)
        held = f"{len(checkpoints)} checkpoint(s), the last {checkpoints[-1].name}" if checkpoints else ", ".join(found)
        raise SsgenError(f"{run_dir} already holds a run ({held}); continue it with: ssgen train --resume {run_dir}; "
                         f"or train into another directory: --set run_dir=DIR; or replace it: --overwrite")
    if is_main:
        for name in found:
            path = run_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def lock_run_dir(run_dir: Path):
    """An exclusive lock on the run directory, held by the training process until it ends (the
    system drops it when a process dies, so a kill leaves no stale lock). Two launches into one
    directory at the same moment would both pass the one-run check and interleave their files;
    so would a resume of a run that is still going."""
    import fcntl

    handle = open(run_dir / LOCK_FILE, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SsgenError(f"{run_dir} is in use: another ssgen process is training in it now; wait for it to "
                         "end or stop it, or train into another directory: --set run_dir=DIR") from None
    return handle


def check_writable(run_dir: Path) -> None:
    """Fail before any compute if the run directory cannot take files."""
    probe = run_dir / ".write-probe"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)  # a full disk fails here rather than at the first checkpoint
            f.flush()
        probe.unlink()
    except OSError as err:
        raise SsgenError(f"run directory {str(run_dir)!r} is not writable: {err.strerror or err}") from None


def drop_metrics_after(run_dir: Path, step: int) -> None:
    """On resume, forget what a killed run logged after its last checkpoint (the resumed run logs
    those steps again), and a last line a kill cut short, which the next append would run into."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            continue
    atomic_write(path, "".join(kept))
