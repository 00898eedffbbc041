"""Context-encoder masks and denoising corruptions."""

import pytest
import torch

from ssgen.pretext.masks import central_mask, mask_border, random_block_mask, random_region_mask
from ssgen.pretext.noise import NOISES, gaussian_noise, masking_noise, salt_and_pepper_noise


def coverage(mask):
    return mask.float().mean(dim=(1, 2, 3))


@pytest.mark.parametrize("size", [32, 64])
def test_central_mask_is_the_centred_quarter(size):
    mask = central_mask(3, size)
    assert mask.shape == (3, 1, size, size) and mask.dtype == torch.bool
    assert torch.allclose(coverage(mask), torch.tensor(0.25))
    assert mask[0, 0, size // 2, size // 2] and not mask[0, 0, 0, 0]


def test_random_blocks_cover_up_to_the_fraction():
    mask = random_block_mask(200, 32, fraction=0.25, generator=torch.Generator().manual_seed(0))
    assert (coverage(mask) <= 0.25).all()
    assert coverage(mask).mean() > 0.18   # several blocks, not one
    assert not torch.equal(mask[0], mask[1])


def test_random_regions_cover_the_fraction():
    mask = random_region_mask(50, 32, fraction=0.25, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(coverage(mask), torch.tensor(0.25), atol=0.01)
    assert not torch.equal(mask[0], mask[1])


def test_mask_border_is_the_ring_next_to_the_visible_area():
    mask = central_mask(1, 8)                         # rows/cols 2..5
    ring = mask_border(mask, 1)
    assert ring.sum() == 16 - 4 and not ring[0, 0, 3, 3] and ring[0, 0, 2, 2]
    assert (ring <= mask).all()
    assert not mask_border(mask, 0).any()


def test_gaussian_noise_has_the_requested_std():
    noisy = gaussian_noise(torch.zeros(4, 3, 64, 64), 0.3, torch.Generator().manual_seed(0))
    assert abs(noisy.std().item() - 0.3) < 0.01


@pytest.mark.parametrize("noise", [masking_noise, salt_and_pepper_noise])
def test_pixel_noises_corrupt_the_requested_fraction(noise):
    x = torch.full((4, 3, 64, 64), 0.5)
    corrupted = noise(x, 0.3, torch.Generator().manual_seed(0))
    changed = (corrupted != x).any(dim=1).float().mean()
    assert abs(changed.item() - 0.3) < 0.02
    assert ((corrupted != x).all(dim=1) == (corrupted != x).any(dim=1)).all()   # whole pixels


def test_salt_and_pepper_is_black_or_white():
    corrupted = salt_and_pepper_noise(torch.zeros(2, 3, 32, 32), 0.5)
    values = set(corrupted.unique().tolist())
    assert values == {-1.0, 0.0, 1.0}


def test_noises_are_named():
    assert set(NOISES) == {"gaussian", "masking", "salt_and_pepper"}


def test_block_masks_keep_to_the_drawn_ratio_in_rectangles():
    from ssgen.pretext.masks import patch_block_masks

    torch.manual_seed(0)
    masks = patch_block_masks(200, 8, 0.1, 0.5)
    assert masks.shape == (200, 64) and masks.dtype == torch.bool
    ratios = masks.float().mean(1)
    assert ratios.max() <= 0.5 and ratios.min() >= 0.0
    assert 0.15 < ratios.mean() < 0.35  # about the middle of [0.1, 0.5]: rectangles fill most of the draw
    fixed = patch_block_masks(50, 8, 0.4, 0.4)
    assert (fixed.sum(1) <= round(0.4 * 64)).all() and fixed.sum(1).float().mean() > 0.8 * 0.4 * 64
    torch.manual_seed(0)
    assert torch.equal(patch_block_masks(200, 8, 0.1, 0.5), masks)  # the global generator: seeded, resumable
