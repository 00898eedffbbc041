"""`folder`: images in a directory or a .zip; the first-level subfolder is the class.

`data.path` is the split itself (train), or a directory holding `train.zip`/`test.zip` or
`train/`/`test/`. Where no test split is beside it, a seeded, class-balanced `data.holdout` share
of the train split is held out as the test split (`ssgen.data.holdout`). Any image mode
(grayscale, palette, 16-bit, RGBA) is converted to RGB; any size is resized (shorter side) and
centre-cropped to `data.resolution`. Zip members that would escape the archive (`..`, absolute
paths) are refused. Sets that fit are decoded once per
process (in parallel) and held in memory, their decoded copy kept on disk for the next run
(`ssgen.data.decoded_cache`, `data.cache`); larger ones are decoded on demand.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import warnings
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from ssgen.config import DataConfig
from ssgen.data.base import ImageSet
from ssgen.data.decoded_cache import copy_path, read_copy, say, write_copy
from ssgen.data.holdout import Holdout, chosen, recorded_holdout, require_present
from ssgen.errors import DataError
from ssgen.files import stat_identity
from ssgen.registry import DATASETS

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
# The decoders PIL may use, whatever a file's name says: PIL picks a decoder from the content, and
# some (EPS) would run an external program on the file's data.
FORMATS = ("PNG", "JPEG", "BMP", "DIB", "GIF", "WEBP", "TIFF", "PPM")
IN_MEMORY_LIMIT = 4 << 30  # bytes of decoded uint8 images held in memory
_decoded: dict[tuple, ImageSet] = {}  # decode once per process
_archives: dict[tuple, zipfile.ZipFile] = {}


# ---------------------------------------------------------------- sources
def data_path(cfg: DataConfig) -> Path:
    if not cfg.path:
        raise DataError("data.name=folder needs data.path: a folder or .zip of images")
    path = Path(cfg.path).expanduser().resolve()
    if not path.exists():
        raise DataError(f"data.path {str(path)!r} does not exist; expected a folder or .zip of images")
    return path


def find_split(path: Path, split: str) -> Path | None:
    """The folder or zip of `split` under data.path `path`, or None where it has none."""
    if path.is_dir():
        for candidate in (path / f"{split}.zip", path / split):
            if candidate.exists():
                return candidate
    if split == "train":
        return path
    # data.path names the train split itself (DIR/train.zip or DIR/train): the other split is its sibling.
    if path.name in ("train", "train.zip"):
        for candidate in (path.parent / f"{split}.zip", path.parent / split):
            if candidate.exists():
                return candidate
    return None


def split_source(cfg: DataConfig, split: str) -> Path:
    path = data_path(cfg)
    source = find_split(path, split)
    if source is None:
        instead = "" if cfg.holdout else "; data.holdout=0, so none of the train images are held out instead"
        raise DataError(f"data.path {str(path)!r} has no {split} split; expected {split}.zip or {split}/ "
                        f"beside train.zip or train/ in a parent folder{instead}")
    return source


def list_members(source: Path) -> list[str]:
    """Relative POSIX paths of the image files, sorted."""
    if source.is_dir():
        names = [p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()]
    elif zipfile.is_zipfile(source):
        names = [n for n in open_archive(source).namelist() if not n.endswith("/")]
        for name in names:
            if escapes(name):
                raise DataError(f"zip {str(source)!r}: member {name!r} points outside the archive; refused")
    else:
        raise DataError(f"data.path {str(source)!r} is neither a folder nor a .zip file")
    return sorted(n for n in names if is_image_name(n))


# String tests, not PurePosixPath's: CIFAR-10's 50,000 names took seconds through pathlib on every run.
def escapes(name: str) -> bool:
    """A member name that points outside its archive: absolute, through `..`, or to a drive (c:)."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    return name.startswith("/") or ".." in parts or (bool(parts) and ":" in parts[0])


def is_image_name(name: str) -> bool:
    base = posixpath.basename(name)
    return posixpath.splitext(base)[1].lower() in EXTENSIONS and not base.startswith(".")


def open_archive(source: Path) -> zipfile.ZipFile | None:
    """One open zip per process (DataLoader workers must not share a file position) and per version
    of the file (a zip replaced under the same name is opened again): its directory is read once."""
    if not source.is_file():
        return None
    key = (os.getpid(), str(source), stat_identity(source))
    if key not in _archives:
        _archives[key] = zipfile.ZipFile(source)
    return _archives[key]


def read_bytes(source: Path, member: str, archive: zipfile.ZipFile | None) -> bytes:
    return archive.read(member) if archive is not None else (source / member).read_bytes()


# ---------------------------------------------------------------- decoding
def to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16/32-bit grey: scale, don't clip
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") else max(float(array.max()), 1.0)
        image = Image.fromarray((array / peak * 255).round().astype(np.uint8))
    if image.mode in ("P", "PA", "LA"):  # palette/transparency modes convert cleanly through RGBA
        image = image.convert("RGBA")
    return image.convert("RGB")


def fit(image: Image.Image, resolution: int) -> Image.Image:
    """Resize the shorter side to `resolution`, then centre-crop a square."""
    w, h = image.size
    if (w, h) != (resolution, resolution):
        scale = resolution / min(w, h)
        size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
        image = image.resize(size, Image.BICUBIC)
        left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
        image = image.crop((left, top, left + resolution, top + resolution))
    return image


def decode(data: bytes, resolution: int, where: str) -> np.ndarray:
    """Bytes of one image file -> uint8 [3,R,R]; DataError naming the file if unusable."""
    if not data:
        raise DataError(f"image {where} is empty (0 bytes)")
    try:
        # PIL's UserWarnings about damaged metadata ("Corrupt EXIF data") would print lines of their
        # own, unnamed: the image either decodes anyway or fails below with a DataError naming it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                image.load()  # decodes everything now: a truncated file fails here
                array = np.asarray(fit(to_rgb(image), resolution))
    except DataError:
        raise
    except Image.UnidentifiedImageError:  # PIL's own text names a BytesIO object, not the file
        raise DataError(f"image {where} is not a {', '.join(FORMATS)} image (or is corrupt)") from None
    except Exception as err:
        raise DataError(f"image {where} cannot be decoded ({type(err).__name__}: {err})") from None
    return np.ascontiguousarray(array.transpose(2, 0, 1))


UNUSABLE_NAMED = 20  # unusable images named in one error; the rest are counted


def _decode_chunk(source: str, members: list[str], resolution: int) -> tuple[np.ndarray, list[str]]:
    """The chunk's images (an unusable one left black) and, for each unusable one, why: a folder
    is checked whole, so that one run names every damaged file, not the first alone."""
    path = Path(source)
    archive = zipfile.ZipFile(path) if path.is_file() else None
    images, problems = np.zeros((len(members), 3, resolution, resolution), np.uint8), []
    try:
        for i, member in enumerate(members):
            try:
                images[i] = decode(read_bytes(path, member, archive), resolution, f"{member!r} in {source!r}")
            except DataError as err:
                problems.append(str(err))
        return images, problems
    finally:
        if archive is not None:
            archive.close()


def refuse_unusable(source: Path, problems: list[str]) -> None:
    """One DataError naming the unusable images (the first UNUSABLE_NAMED, the rest counted)."""
    problems = sorted(problems)  # each names its file first: in file order, whichever worker found it
    if len(problems) == 1:
        raise DataError(problems[0])
    if problems:
        more = f"; and {len(problems) - UNUSABLE_NAMED} more" if len(problems) > UNUSABLE_NAMED else ""
        raise DataError(f"{len(problems)} images in {str(source)!r} cannot be used; remove or replace them: "
                        + "; ".join(problems[:UNUSABLE_NAMED]) + more)


def decode_all(source: Path, members: list[str], resolution: int, what: str) -> np.ndarray:
    workers = min(os.cpu_count() or 1, 8) if len(members) >= 2000 else 1  # a pool's start-up costs more
    say(f"data: decoding {what} with {workers} process{'es' if workers > 1 else ''} ...")
    if workers == 1:
        images, problems = _decode_chunk(str(source), members, resolution)
        refuse_unusable(source, problems)
        return images
    chunks = [members[i::workers * 4] for i in range(workers * 4)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_decode_chunk, [str(source)] * len(chunks), chunks, [resolution] * len(chunks)))
    refuse_unusable(source, [problem for _, problems in parts for problem in problems])
    images = np.empty((len(members), 3, resolution, resolution), np.uint8)
    for i, (part, _) in enumerate(parts):
        images[i::workers * 4] = part
    return images


def decoded_images(source: Path, members: list[str], split: str, resolution: int, identity: str,
                   cache: bool) -> torch.Tensor:
    """All of `members` decoded: the cache's decoded copy where it has one (`cache`), else decoded
    in parallel and, with `cache`, copied into it for the next run."""
    what = f"{len(members):,} {split} images of {str(source)!r}"
    if not cache:
        return torch.from_numpy(decode_all(source, members, resolution, what))
    path = copy_path(identity, split, resolution)
    images = read_copy(path, (len(members), 3, resolution, resolution), what)
    if images is None:
        images = decode_all(source, members, resolution, what)
        write_copy(path, images, what)
    return torch.from_numpy(images)


def source_identity(source: Path, members: list[str]) -> str:
    """Cheap content identity of the files: zip CRCs and sizes, or each file's stat identity (inode,
    size, mtime, ctime: a file replaced by one of the same size and mtime is noticed)."""
    digest = hashlib.sha256()
    if source.is_file():
        archive = open_archive(source)
        for member in members:
            info = archive.getinfo(member)
            digest.update(f"{member}|{info.CRC}|{info.file_size}".encode())
    else:
        for member in members:
            digest.update(f"{member}|{stat_identity(source / member)}".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- the dataset
@dataclass(frozen=True)
class Listing:
    """The image files of one split's folder or zip and their labels (-1: outside class subfolders)."""
    source: Path
    members: list[str]
    classes: list[str]
    labels: list[int]


def scan(source: Path) -> Listing:
    members = list_members(source)
    if not members:
        raise DataError(f"{str(source)!r} holds no images (expected files ending in "
                        f"{', '.join(sorted(EXTENSIONS))})")
    tops = [m.split("/")[0] if "/" in m else None for m in members]
    classes = sorted({t for t in tops if t is not None})
    index = {name: i for i, name in enumerate(classes)}
    return Listing(source, members, classes, [index[t] if t is not None else -1 for t in tops])


def image_set(listing: Listing, rows: list[int], split: str, resolution: int, cache: bool) -> ImageSet:
    """The images `rows` of `listing` as `split`: decoded once per process where they fit in memory
    (`cache`: and once for every run, `decoded_images`), else on demand. All splits of one listing
    share its classes, so labels mean the same in each."""
    source, members = listing.source, [listing.members[i] for i in rows]
    # Every file's identity, not the folder's stat: an image edited in place, or added inside a
    # class folder, leaves the folder's own stat as it was (a notebook measuring twice).
    identity = source_identity(source, members)
    key = (str(source), resolution, split, identity)
    if key in _decoded:
        return _decoded[key]
    labels = torch.tensor([listing.labels[i] for i in rows], dtype=torch.long)
    name = f"folder:{source}"
    if len(members) * 3 * resolution ** 2 <= IN_MEMORY_LIMIT:
        result = ImageSet(name, split, resolution, listing.classes, labels,
                          images=decoded_images(source, members, split, resolution, identity, cache))
    else:
        def decode_one(i: int) -> torch.Tensor:
            where = f"{members[i]!r} in {str(source)!r}"
            return torch.from_numpy(decode(read_bytes(source, members[i], open_archive(source)),
                                           resolution, where))

        result = ImageSet(name, split, resolution, listing.classes, labels, decode=decode_one,
                          identity=identity)
    _decoded[key] = result
    return result


@DATASETS.register("folder")
def folder(cfg: DataConfig, split: str) -> ImageSet:
    """The folder's own `split` (train, or a test split beside it), whole."""
    listing = scan(split_source(cfg, split))
    return image_set(listing, list(range(len(listing.members))), split, cfg.resolution, cfg.cache)


def choose_holdout(cfg: DataConfig, recorded: Sequence[str] | None = None) -> Holdout:
    """What of the train split is held out as the test split: the run's `recorded` choice (empty: none),
    else nothing where a test split is beside it or data.holdout is 0, else the seeded choice."""
    path = data_path(cfg)
    if recorded is not None:
        if not recorded:
            return Holdout()
        listing = scan(split_source(cfg, "train"))
        return recorded_holdout(str(listing.source), listing.members, listing.labels, listing.classes, recorded)
    if find_split(path, "test") is not None or not cfg.holdout:
        return Holdout()
    listing = scan(split_source(cfg, "train"))
    return chosen(str(listing.source), listing.members, listing.labels, listing.classes, cfg.holdout, cfg.seed)


def held_out_split(cfg: DataConfig, split: str, held_out: Sequence[str]) -> ImageSet:
    """The train split less the `held_out` members (train), or those members (test)."""
    listing = scan(split_source(cfg, "train"))
    require_present(str(listing.source), listing.members, held_out)  # the folder may have changed since
    held = set(held_out)
    rows = [i for i, member in enumerate(listing.members) if (member in held) == (split == "test")]
    return image_set(listing, rows, split, cfg.resolution, cfg.cache)
