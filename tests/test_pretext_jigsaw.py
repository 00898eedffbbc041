"""Jigsaw pretext: the permutation set (greedy maximin, cached), tiles, shuffles and puzzles."""

import itertools

import pytest
import torch

from ssgen.errors import ConfigError
from ssgen.pretext import jigsaw
from ssgen.pretext.jigsaw import (assemble, cut_tiles, default_tile, jigsaw_puzzles, min_hamming,
                                  normalise_tiles, permutation_set, shuffle_tiles, unshuffle_tiles)


@pytest.fixture(autouse=True)
def fresh_cache(private_cache):
    """Every test starts with an empty disk cache of its own and an empty memory cache."""
    jigsaw._cached_permutation_set.cache_clear()
    yield private_cache / "jigsaw"
    jigsaw._cached_permutation_set.cache_clear()


def coordinates(batch: int, size: int) -> torch.Tensor:
    """[batch, 1, size, size] images whose pixel (r, c) holds r * size + c: a tile's first pixel
    tells where it was cut."""
    return torch.arange(size * size, dtype=torch.float64).view(1, 1, size, size).repeat(batch, 1, 1, 1)


def tile_origins(tiles: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, columns) [B, K] of the top-left pixel of tiles cut from coordinates(., size)."""
    first = tiles[:, :, 0, 0, 0].long()
    return first // size, first % size


# ---------------------------------------------------------------- permutation set
def brute_force_maximin(count: int, tiles: int) -> list[tuple[int, ...]]:
    """The documented rule, written the slow and obvious way."""
    candidates = list(itertools.permutations(range(tiles)))
    chosen = [candidates[0]]
    while len(chosen) < count:
        def key(index):
            distances = [sum(a != b for a, b in zip(candidates[index], c)) for c in chosen]
            return (min(distances), sum(distances), -index)
        unchosen = [i for i, c in enumerate(candidates) if c not in chosen]
        chosen.append(candidates[max(unchosen, key=key)])
    return chosen


@pytest.mark.parametrize("tiles, count", [(4, 5), (4, 12), (4, 24), (5, 20), (5, 120)])
def test_permutation_set_is_the_greedy_maximin(tiles, count):
    expected = brute_force_maximin(count, tiles)
    assert permutation_set(count, tiles).tolist() == [list(p) for p in expected]
    brute_min = min(sum(a != b for a, b in zip(p, q)) for p, q in itertools.combinations(expected, 2))
    assert min_hamming(permutation_set(count, tiles)) == brute_min


def test_permutation_set_of_nine_tiles(fresh_cache):
    permutations = permutation_set(30)
    assert permutations.shape == (30, 9) and permutations.dtype == torch.long
    assert torch.equal(permutations.sort(dim=1).values, torch.arange(9).expand(30, 9))   # permutations
    assert len(permutations.unique(dim=0)) == 30                                         # distinct
    assert permutations[0].tolist() == list(range(9))                                  # from the identity
    assert min_hamming(permutations) == 7
    # Recomputed without either cache: the same set.
    jigsaw._cached_permutation_set.cache_clear()
    for file in fresh_cache.iterdir():
        file.unlink()
    assert torch.equal(permutation_set(30), permutations)


def test_min_hamming():
    assert min_hamming(torch.tensor([[0, 1, 2], [1, 0, 2], [2, 1, 0]])) == 2
    assert min_hamming(torch.tensor([[0, 1, 2], [1, 2, 0], [2, 0, 1]])) == 3
    assert min_hamming(torch.tensor([[0, 1, 2]])) == 3


def test_permutation_set_is_read_from_disk(fresh_cache, monkeypatch):
    computed = permutation_set(10, tiles=5)
    file = fresh_cache / "maximin-count10-tiles5.txt"
    assert [list(map(int, line.split())) for line in file.read_text().splitlines()] == computed.tolist()

    def no_search(*args):
        raise AssertionError("recomputed although the cache file is there")
    jigsaw._cached_permutation_set.cache_clear()
    monkeypatch.setattr(jigsaw, "_greedy_maximin", no_search)
    assert torch.equal(permutation_set(10, tiles=5), computed)


def test_a_damaged_cache_file_is_recomputed(fresh_cache):
    computed = permutation_set(10, tiles=5)
    file = fresh_cache / "maximin-count10-tiles5.txt"
    for damage in ("0 1 2 3 4\n" * 10, "garbage\n", ""):
        file.write_text(damage)
        jigsaw._cached_permutation_set.cache_clear()
        assert torch.equal(permutation_set(10, tiles=5), computed)
        assert file.read_text().split() == [str(v) for v in computed.flatten().tolist()]


def test_callers_cannot_change_the_cached_set():
    permutation_set(4, tiles=4).zero_()
    assert permutation_set(4, tiles=4)[1].tolist() != [0, 0, 0, 0]


# ---------------------------------------------------------------- tiles
@pytest.mark.parametrize("size, grid", [(33, 3), (48, 3), (32, 2)])
def test_cells_cut_exactly_reassemble_the_image(size, grid):
    x = torch.randn(2, 3, size, size)
    assert torch.equal(assemble(cut_tiles(x, grid, tile=size // grid), grid), x)


@pytest.mark.parametrize("size, cell, tile", [(32, 10, 8), (64, 21, 17), (96, 32, 27), (225, 75, 64)])
def test_default_tiles_leave_a_gap(size, cell, tile):
    assert default_tile(cell) == tile
    assert cut_tiles(torch.zeros(1, 3, size, size)).shape == (1, 9, 3, tile, tile)


def test_the_remainder_is_split_around_a_centred_grid():
    rows, columns = tile_origins(cut_tiles(coordinates(1, 32), 3, tile=10), 32)   # 2 px left over
    assert rows[0].tolist() == [1, 1, 1, 11, 11, 11, 21, 21, 21]                  # row-major cells
    assert columns[0].tolist() == [1, 11, 21] * 3


def test_jitter_is_per_image_per_tile_inside_the_cell_and_seeded():
    x = coordinates(64, 32)
    tiles = cut_tiles(x, generator=torch.Generator().manual_seed(0))               # cell 10, tile 8
    rows, columns = tile_origins(tiles, 32)
    cell_rows = 1 + 10 * torch.arange(3).repeat_interleave(3)
    cell_columns = 1 + 10 * torch.arange(3).repeat(3)
    dy, dx = rows - cell_rows, columns - cell_columns
    assert dy.min() == 0 and dy.max() == 2 and dx.min() == 0 and dx.max() == 2     # every offset, none outside
    offsets = dy * 3 + dx                                                          # [images, tiles]
    assert (offsets != offsets[:, :1]).any(dim=1).all()                            # per tile in every image
    assert (offsets != offsets[:1]).any(dim=0).all()                               # per image at every tile
    assert torch.equal(tiles, cut_tiles(x, generator=torch.Generator().manual_seed(0)))
    assert not torch.equal(tiles, cut_tiles(x, generator=torch.Generator().manual_seed(1)))


def test_tiles_carry_gradients_to_the_image():
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    tiles, _ = jigsaw_puzzles(x, permutation_set(24, tiles=4), generator=torch.Generator().manual_seed(0))
    tiles.sum().backward()                                                         # grid 2: cell 16, tile 13
    assert set(x.grad.unique().tolist()) == {0.0, 1.0}                             # every tile pixel, once
    assert (x.grad.sum(dim=(1, 2, 3)) == 4 * 3 * 13 * 13).all()


def test_shuffle_then_unshuffle_is_the_identity():
    tiles = torch.randn(6, 9, 3, 8, 8)
    permutations = permutation_set(30)
    labels = torch.tensor([0, 5, 29, 7, 7, 13])
    shuffled = shuffle_tiles(tiles, permutations, labels)
    assert not torch.equal(shuffled[1:], tiles[1:])
    assert torch.equal(unshuffle_tiles(shuffled, permutations, labels), tiles)


def test_each_permutation_moves_the_cells_it_names():
    x = torch.randn(1, 3, 48, 48).expand(24, -1, -1, -1)
    permutations, labels = permutation_set(24, tiles=4), torch.arange(24)
    tiles = cut_tiles(x, grid=2, tile=24)
    shuffled = shuffle_tiles(tiles, permutations, labels)
    for b, order in enumerate(permutations.tolist()):
        for position, cell in enumerate(order):    # position i holds cell permutations[label, i]
            r, c = divmod(cell, 2)
            assert torch.equal(shuffled[b, position], x[b, :, 24 * r:24 * r + 24, 24 * c:24 * c + 24])
    assert torch.equal(assemble(unshuffle_tiles(shuffled, permutations, labels), 2), x)


def test_jigsaw_puzzles():
    permutations = permutation_set(30)
    tiles, labels = jigsaw_puzzles(coordinates(40, 32), permutations, generator=torch.Generator().manual_seed(0))
    assert tiles.shape == (40, 9, 1, 8, 8) and labels.shape == (40,)
    assert labels.min() >= 0 and labels.max() < 30 and len(labels.unique()) > 10
    rows, columns = tile_origins(tiles, 32)
    cells = permutations[labels]                                                   # the cell at each position
    assert ((rows - 1 - 10 * (cells // 3)).clamp(0, 2) == rows - 1 - 10 * (cells // 3)).all()
    assert ((columns - 1 - 10 * (cells % 3)).clamp(0, 2) == columns - 1 - 10 * (cells % 3)).all()


def test_normalise_tiles():
    tiles = torch.rand(4, 9, 3, 8, 8)
    tiles[0, 1] = tiles[0, 0] * 5 + 3
    tiles[1, 2] = 0.3                                                              # a flat tile
    normalised = normalise_tiles(tiles)
    assert torch.allclose(normalised[0, 1], normalised[0, 0], atol=1e-5)           # brightness, contrast gone
    assert torch.equal(normalised[1, 2], torch.zeros(3, 8, 8))
    others = normalised[2:]
    assert torch.allclose(others.mean(dim=(-3, -2, -1)), torch.zeros(2, 9), atol=1e-5)
    assert torch.allclose(others.std(dim=(-3, -2, -1), correction=0), torch.ones(2, 9), atol=1e-5)


# ---------------------------------------------------------------- bad arguments
@pytest.mark.parametrize("call, named", [
    (lambda: permutation_set(0), "count = 0"),
    (lambda: permutation_set(25, tiles=4), "count = 25"),
    (lambda: permutation_set(5, tiles=0), "tiles = 0"),
    (lambda: permutation_set(5, tiles=16), "tiles = 16"),
    (lambda: cut_tiles(torch.zeros(1, 3, 32, 32), tile=11), "tile = 11"),
    (lambda: cut_tiles(torch.zeros(1, 3, 32, 32), tile=0), "tile = 0"),
    (lambda: cut_tiles(torch.zeros(1, 3, 32, 32), grid=0), "grid = 0"),
    (lambda: cut_tiles(torch.zeros(1, 3, 2, 2), grid=3), "grid = 3"),
    (lambda: assemble(torch.zeros(1, 9, 3, 8, 8), grid=2), "grid = 2"),
    (lambda: jigsaw_puzzles(torch.zeros(1, 3, 32, 32), permutation_set(3, tiles=5)), "of 5 tiles"),
])
def test_bad_arguments_name_the_value(call, named):
    with pytest.raises(ConfigError, match=named):
        call()
