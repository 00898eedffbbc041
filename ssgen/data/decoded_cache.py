"""A decoded uint8 copy of a folder's or zip's images on disk, read by the next run (or resume)
instead of decoding every file again: CIFAR-10's 50,000 JPEGs take seconds to minutes to
decode, their decoded copy a fraction of a second to read.

The copy is `$SSGEN_CACHE/decoded/<key>.npy` (default ~/.cache/ssgen, beside the FD reference
statistics), the key a hash of everything that determines its pixels: the images' identity
(`folder.source_identity`: a zip's names, CRC-32s and sizes, read from its central directory,
so a copied zip finds the copy; a folder's names and stat identities, so any rewrite of a file
misses it), the split, the resolution, the decoder's version and Pillow's. A copy that cannot be
read or has the wrong shape is decoded again and rewritten, said in a warning. `data.cache:
false` turns it off. Nothing prunes old copies: `rm -r $SSGEN_CACHE/decoded` frees the space.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import PIL

from ssgen.files import atomic_write, cache_root

# Bump when `folder.decode` or `folder.fit` change the pixels they make: old copies then miss.
DECODER_VERSION = 1

_log: ContextVar[Callable[[str], None] | None] = ContextVar("ssgen_data_log", default=None)


@contextlib.contextmanager
def data_log(log: Callable[[str], None]) -> Iterator[None]:
    """`with data_log(log):` what the datasets built inside do with their images (decoded, and
    with how many processes, or read from the cache) is said through `log`; elsewhere nothing."""
    token = _log.set(log)
    try:
        yield
    finally:
        _log.reset(token)


def say(line: str) -> None:
    log = _log.get()
    if log is not None:
        log(line)


def copy_path(identity: str, split: str, resolution: int) -> Path:
    parts = {"images": identity, "split": split, "resolution": resolution, "decoder": DECODER_VERSION,
             "pillow": PIL.__version__}
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]
    return cache_root() / "decoded" / f"{key}.npy"


def read_copy(path: Path, shape: tuple[int, ...], what: str) -> np.ndarray | None:
    """The decoded copy at `path`, or None where there is none or it is unusable (said)."""
    if not path.is_file():
        return None
    started = time.perf_counter()
    try:
        images = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:  # truncated, garbage or unreadable
        say(f"warning: the decoded copy of {what} in {path} cannot be read ({type(err).__name__}: {err}); "
            "decoding again and rewriting it")
        return None
    if images.dtype != np.uint8 or images.shape != shape:
        say(f"warning: the decoded copy of {what} in {path} holds {images.dtype} {list(images.shape)}, not "
            f"uint8 {list(shape)}; decoding again and rewriting it")
        return None
    say(f"data: {what}: decoded copy read from the cache in {time.perf_counter() - started:.1f}s ({path})")
    return images


def write_copy(path: Path, images: np.ndarray, what: str) -> None:
    """Store `images` at `path` for the next run; a cache that cannot be written is said, not fatal."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: a run killed mid-write leaves no torn copy; parallel runs may race to write it.
        atomic_write(path, lambda f: np.save(f, images, allow_pickle=False))
    except OSError as err:
        say(f"warning: no decoded copy of {what} kept: {path} cannot be written ({err}); "
            "the next run decodes again (data.cache=false stops trying)")
        return
    say(f"data: decoded copy of {what} kept for the next run ({path}, {images.nbytes / 2**20:.0f} MiB)")
