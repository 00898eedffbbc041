"""Lab conversion, ab/L bins, soft encoding, rebalancing and annealed-mean decoding."""

import torch

from ssgen.pretext.color import (AB_BINS, L_BINS, ab_bins, ab_to_bin, annealed_mean, bin_to_ab, join_lab,
                                 l_bin_centres, l_to_bin, lab_to_rgb, rebalancing_weights, rgb_to_lab,
                                 soft_encode, split_lab)


def pixels(*rgb):
    return torch.tensor(rgb, dtype=torch.float64)[:, :, None, None]   # [N, 3, 1, 1]


def test_lab_round_trip_in_float64():
    rgb = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert (lab_to_rgb(rgb_to_lab(rgb)) - rgb).abs().max() < 1e-4


def test_lab_known_values():
    lab = rgb_to_lab(pixels([1, 1, 1], [0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]))[:, :, 0, 0]
    expected = torch.tensor([[100, 0, 0], [0, 0, 0], [53.24, 80.09, 67.20],
                             [87.73, -86.18, 83.18], [32.30, 79.19, -107.86]], dtype=torch.float64)
    assert torch.allclose(lab, expected, atol=0.01)


def test_lab_keeps_float32_and_has_finite_gradients():
    rgb = torch.rand(2, 3, 4, 4, requires_grad=True)
    lab = rgb_to_lab(rgb)
    assert lab.dtype == torch.float32
    lab.sum().backward()
    assert torch.isfinite(rgb.grad).all()


def test_images_split_and_join_through_lab():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    L, ab = split_lab(x)
    assert L.shape == (2, 1, 8, 8) and ab.shape == (2, 2, 8, 8)
    assert (join_lab(L, ab) - x).abs().max() < 1e-4


def test_ab_bins_are_the_cells_that_in_gamut_colours_reach():
    bins = ab_bins()
    assert bins.shape == (AB_BINS, 2)
    assert (bins % 10 == 0).all() and len(torch.unique(bins, dim=0)) == AB_BINS
    # A dense sample of the whole RGB cube (not only its surface) reaches exactly these cells.
    v = torch.linspace(0, 1, 48, dtype=torch.float64)
    cube = torch.stack(torch.meshgrid(v, v, v, indexing="ij")).reshape(1, 3, -1, 1)
    reached = torch.unique(bin_to_ab(ab_to_bin(rgb_to_lab(cube)[:, 1:], bins), bins).reshape(2, -1).T, dim=0)
    assert set(map(tuple, reached.tolist())) <= set(map(tuple, bins.tolist()))
    assert len(reached) > 0.95 * AB_BINS


def test_ab_quantization_round_trip():
    bins = ab_bins()
    index = torch.randint(AB_BINS, (2, 5, 5))
    assert torch.equal(ab_to_bin(bin_to_ab(index, bins), bins), index)
    ab = bin_to_ab(index, bins) + torch.rand(2, 2, 5, 5, dtype=torch.float64) * 8 - 4   # within the cell
    assert torch.equal(ab_to_bin(ab, bins), index)


def test_l_bins():
    L = torch.tensor([0.0, 1.9, 2.0, 55.0, 100.0]).view(1, 1, 5, 1)
    assert l_to_bin(L).flatten().tolist() == [0, 0, 1, 27, L_BINS - 1]
    assert torch.equal(l_to_bin(l_bin_centres().view(1, 1, L_BINS, 1)).flatten(), torch.arange(L_BINS))


def test_soft_encoding_is_a_distribution_peaked_at_the_nearest_bin():
    bins = ab_bins()
    ab = rgb_to_lab(torch.rand(2, 3, 6, 6, dtype=torch.float64))[:, 1:]
    target = soft_encode(ab, bins, neighbours=5, sigma=5.0)
    assert target.shape == (2, AB_BINS, 6, 6)
    assert torch.allclose(target.sum(1), torch.ones(2, 6, 6))
    assert ((target > 0).sum(1) == 5).all()
    assert torch.equal(target.argmax(1), ab_to_bin(ab, bins))


def test_rebalancing_weights_have_expectation_one_under_the_prior():
    prior = torch.rand(AB_BINS, dtype=torch.float64) ** 4
    prior[:10] = 0   # bins never seen
    weights = rebalancing_weights(prior, gamma=0.5)
    assert torch.allclose((prior / prior.sum() * weights).sum(), torch.tensor(1.0, dtype=torch.float64))
    assert weights[prior.argmin()] > weights[prior.argmax()]          # rare colours weigh more
    assert torch.allclose(rebalancing_weights(prior, gamma=1.0), torch.ones_like(prior, dtype=torch.float64))


def test_annealed_mean_goes_from_mean_to_mode():
    bins = ab_bins()
    logits = torch.full((1, AB_BINS, 1, 1), -10.0)
    logits[0, [0, 100], 0, 0] = torch.tensor([2.0, 1.0])
    mode = annealed_mean(logits, bins, temperature=0.01)[0, :, 0, 0]
    assert torch.allclose(mode, bins[0].float(), atol=1e-3)
    mean = annealed_mean(logits, bins, temperature=1.0)[0, :, 0, 0]
    assert (mean - bins[0].float()).norm() > 1
