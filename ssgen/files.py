"""Atomic file writes: a crash (kill -9, power cut) leaves the old content or the new, never a torn
file; the stat identity that tells a changed file from the one a cache saw; where caches live."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None] | bytes | str) -> None:
    """Write `path` through a temporary file beside it, fsynced, then renamed over it (and the
    rename fsynced). `write` is the content, or a function that writes into the open file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # per process: parallel writers may race
    try:
        with open(tmp, "wb") as f:
            if callable(write):
                write(f)
            else:
                f.write(write.encode() if isinstance(write, str) else write)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)  # make the rename itself durable
    finally:
        os.close(directory)


def stat_identity(path: str | Path) -> str:
    """What changes when a file's content may have: device, inode, size, mtime and ctime. A file
    replaced by another with the same size and mtime (a copy with its times kept, os.utime) has a
    new inode, or a new ctime: the kernel sets ctime on every write and rename, and none can set it back."""
    stat = os.stat(path)
    return f"{stat.st_dev}:{stat.st_ino}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ctime_ns}"


def cache_root() -> Path:
    """ssgen's disk caches (FD reference statistics, decoded images, ...): $SSGEN_CACHE, else ~/.cache/ssgen."""
    return Path(os.environ.get("SSGEN_CACHE") or Path.home() / ".cache" / "ssgen")
