"""Jigsaw pretext (Noroozi & Favaro, ECCV 2016): an image cut into a grid of tiles, the tiles
shuffled by one of a fixed set of permutations, the network asked which. Pure tensor functions.

Tiles are [B, grid*grid, C, t, t] in row-major cell order: tile k comes from cell row k // grid,
column k % grid. A permutation p shuffles them so that position i holds tile p[i].
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import torch

from ssgen.errors import ConfigError
from ssgen.files import atomic_write, cache_root

MAX_TILES = 9           # a 3x3 grid; the greedy search scans all tiles! orders (4x4 would be 16!)
TILE_RATIO = (64, 75)   # the paper's 64 px tile inside a 75 px cell, kept at every image size


# ---------------------------------------------------------------- the permutation set
def permutation_set(count: int, tiles: int = 9) -> torch.Tensor:
    """[count, tiles] long: `count` permutations of range(tiles), far apart in Hamming distance.

    A greedy search from the identity: it repeatedly adds the candidate (among all tiles!
    permutations, in lexicographic order) whose minimum Hamming distance to the chosen set is
    largest, since the closest pair is what makes puzzles ambiguous. Ties, which are many, go to
    the larger total distance to the set, then to the lowest index. (The paper's Algorithm 1 and
    its reference code maximise the mean distance alone, from a random start.) The result is the
    same on every machine; it is cached in memory and in $SSGEN_CACHE/jigsaw/ (default
    ~/.cache/ssgen/jigsaw/), so a run and its resume share one set without recomputing it
    (count 1000 takes about 1 s on one CPU core).
    """
    if not 1 <= tiles <= MAX_TILES:
        raise ConfigError(f"jigsaw tiles = {tiles}: expected 1 to {MAX_TILES} (the search scans all tiles! orders)")
    if not 1 <= count <= math.factorial(tiles):
        raise ConfigError(f"jigsaw permutation count = {count}: expected 1 to {tiles}! = {math.factorial(tiles)}")
    return _cached_permutation_set(count, tiles).clone()  # a clone: callers may not edit the cache


def cache_dir() -> Path:
    """Where permutation sets are kept between runs."""
    return cache_root() / "jigsaw"


@functools.lru_cache(maxsize=None)
def _cached_permutation_set(count: int, tiles: int) -> torch.Tensor:
    path = cache_dir() / f"maximin-count{count}-tiles{tiles}.txt"
    if path.exists():
        stored = _parse(path.read_text(), count, tiles)
        if stored is not None:
            return stored
    permutations = _greedy_maximin(count, tiles)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "".join(" ".join(map(str, row)) + "\n" for row in permutations.tolist()))
    return permutations


def _parse(text: str, count: int, tiles: int) -> torch.Tensor | None:
    """The stored set, or None if the file does not hold `count` distinct permutations of
    range(tiles) (then it is recomputed and rewritten: the search is deterministic)."""
    try:
        rows = torch.tensor([[int(v) for v in line.split()] for line in text.splitlines()])
    except ValueError:
        return None
    valid = (rows.shape == (count, tiles)
             and torch.equal(rows.sort(dim=1).values, torch.arange(tiles).expand(count, tiles))
             and len(rows.unique(dim=0)) == count)
    return rows if valid else None


def _greedy_maximin(count: int, tiles: int) -> torch.Tensor:
    # Each step is a dozen operations on tiles! bytes, too small to share between threads: on a
    # busy machine the threads' synchronisation made it 10-30x slower than one thread.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _greedy_maximin_search(count, tiles)
    finally:
        torch.set_num_threads(threads)


def _greedy_maximin_search(count: int, tiles: int) -> torch.Tensor:
    # Distances as shared positions (tiles - Hamming distance), counted by adding one uint8 row
    # per position: holds[position * tiles + value] marks the candidates with `value` there.
    # Chosen candidates share every position with the set and are never picked again while an
    # unchosen one (sharing at most tiles - 2) is left.
    orders = _lexicographic_permutations(tiles)                            # [tiles!, tiles]
    holds = torch.zeros(tiles * tiles, len(orders), dtype=torch.uint8)
    holds[torch.arange(tiles) * tiles + orders, torch.arange(len(orders))[:, None]] = 1
    most = torch.zeros(len(orders), dtype=torch.uint8)     # most positions shared with one chosen
    shared = torch.zeros(len(orders), dtype=torch.int32)   # positions shared with all, summed
    chosen = [0]                                           # the identity
    for _ in range(count - 1):
        rows = (torch.arange(tiles) * tiles + orders[chosen[-1]]).tolist()
        matches = holds[rows[0]].clone()
        for row in rows[1:]:
            matches += holds[row]
        torch.maximum(most, matches, out=most)
        shared += matches
        # shared < tiles * count + 1, so `most` decides first; argmin takes the lowest index.
        chosen.append(int((most.int() * (tiles * count + 1) + shared).argmin()))
    return orders[chosen]


def _lexicographic_permutations(n: int) -> torch.Tensor:
    """[n!, n] long: every permutation of range(n), in itertools' (lexicographic) order, built
    without a Python loop over n! tuples: those starting with v are v followed by the
    permutations of range(n - 1), every value >= v raised by 1 (an order-keeping map)."""
    orders = torch.zeros(1, 0, dtype=torch.long)
    for size in range(1, n + 1):
        first = torch.arange(size).repeat_interleave(len(orders))[:, None]
        rest = orders.repeat(size, 1)
        orders = torch.cat([first, rest + (rest >= first)], dim=1)
    return orders


def min_hamming(permutations: torch.Tensor) -> int:
    """The smallest Hamming distance between two rows of [N, tiles] (`tiles` for a single row)."""
    distances = (permutations[:, None] != permutations[None]).sum(-1)
    distances.fill_diagonal_(permutations.shape[1])
    return int(distances.min())


# ---------------------------------------------------------------- tiles
def default_tile(cell: int) -> int:
    """Tile side for a cell side: the paper's 64/75 ratio (a gap of about 15%, at least 1 px, so
    a network cannot match tiles by the continuity of their edges); 32 px -> cell 10, tile 8;
    64 -> 21, 17; 96 -> 32, 27; 225 -> 75, 64."""
    return max(1, cell * TILE_RATIO[0] // TILE_RATIO[1])


def cut_tiles(x: torch.Tensor, grid: int = 3, tile: int | None = None,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """[B, C, H, W] -> [B, grid*grid, C, tile, tile] in row-major cell order.

    The image holds grid x grid square cells of side min(H, W) // grid, centred (the pixels left
    over, e.g. 2 of 32 at grid 3, are dropped half before and half after, the odd one after).
    Each tile is a `tile` x `tile` crop at a random offset inside its cell, drawn per image and
    per tile (from `generator`, else torch's global RNG, on x's device). `tile` defaults to
    default_tile(cell); tile == cell cuts the cells exactly, with no jitter.
    """
    if grid < 1:
        raise ConfigError(f"jigsaw grid = {grid}: expected at least 1")
    batch, _, height, width = x.shape
    cell = min(height, width) // grid
    if cell < 1:
        raise ConfigError(f"jigsaw grid = {grid}: {height}x{width} images have fewer than {grid} pixels a side")
    tile = default_tile(cell) if tile is None else tile
    if not 1 <= tile <= cell:
        raise ConfigError(f"jigsaw tile = {tile}: expected 1 to the cell size {cell} ({height}x{width} / grid {grid})")
    cells = torch.arange(grid, device=x.device) * cell
    tops = ((height - grid * cell) // 2 + cells).repeat_interleave(grid)    # row-major: the row repeats
    lefts = ((width - grid * cell) // 2 + cells).repeat(grid)
    jitter = torch.randint(0, cell - tile + 1, (2, batch, grid * grid), generator=generator, device=x.device)
    windows = x.unfold(2, tile, 1).unfold(3, tile, 1)                       # view [B, C, H-t+1, W-t+1, t, t]
    images = torch.arange(batch, device=x.device)[:, None]
    return windows[images, :, tops + jitter[0], lefts + jitter[1]]          # [B, K, C, t, t]


def assemble(tiles: torch.Tensor, grid: int) -> torch.Tensor:
    """[B, grid*grid, C, t, t] in row-major order -> [B, C, grid*t, grid*t], tiles side by side
    without gaps (for display, and to check a cut)."""
    batch, count, channels, side, _ = tiles.shape
    if count != grid * grid:
        raise ConfigError(f"jigsaw grid = {grid}: {count} tiles do not make a {grid}x{grid} grid")
    rows = tiles.reshape(batch, grid, grid, channels, side, side).permute(0, 3, 1, 4, 2, 5)
    return rows.reshape(batch, channels, grid * side, grid * side)


def shuffle_tiles(tiles: torch.Tensor, permutations: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Position i of image b receives tile permutations[labels[b], i]."""
    order = permutations.to(tiles.device)[labels]                           # [B, K]
    return tiles[torch.arange(len(tiles), device=tiles.device)[:, None], order]


def unshuffle_tiles(shuffled: torch.Tensor, permutations: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The inverse of shuffle_tiles: the tiles back in row-major cell order."""
    return shuffle_tiles(shuffled, permutations.argsort(dim=1), labels)


def jigsaw_puzzles(x: torch.Tensor, permutations: torch.Tensor, tile: int | None = None,
                   generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, C, H, W] -> (shuffled tiles [B, K, C, t, t], labels [B]): one random permutation of
    `permutations` [N, K] per image (K = grid*grid tiles), its index the label. Pass the tiles
    through normalise_tiles before a network sees them."""
    grid = math.isqrt(permutations.shape[1])
    if grid * grid != permutations.shape[1]:
        raise ConfigError(f"jigsaw permutations of {permutations.shape[1]} tiles: expected a square grid")
    labels = torch.randint(0, len(permutations), (len(x),), generator=generator, device=x.device)
    return shuffle_tiles(cut_tiles(x, grid, tile, generator), permutations, labels), labels


def normalise_tiles(tiles: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """Each tile [..., C, t, t] to zero mean and unit std over all its channels and pixels, so a
    network cannot match neighbours by brightness or contrast (the paper normalises "the mean and
    the standard deviation of each patch independently"; the reference loader takes one mean and
    one std over the tile's three channels, which keeps its colour). The std is floored at `eps`
    (about one grey level of [-1, 1] images), which bounds the gain at 1/eps: a nearly flat tile
    stays nearly flat instead of its rounding noise, and the gradient through it, growing
    without limit."""
    mean = tiles.mean(dim=(-3, -2, -1), keepdim=True)
    std = tiles.std(dim=(-3, -2, -1), keepdim=True, correction=0)
    return (tiles - mean) / std.clamp_min(eps)
