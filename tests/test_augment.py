import re

import pytest
import torch
import torchvision.transforms.v2.functional as TF

from ssgen.augment import PRESETS, Augmenter, ViewConfig, view_configs
from ssgen.augment import ops
from ssgen.errors import ConfigError

# A view that does nothing but what a test switches on: a whole-image crop, no colour.
PLAIN = dict(crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0], flip=0.0, jitter_p=0.0, grayscale_p=0.0)


def images(n=8, size=32, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def one_view(x, **changes):
    (view,) = Augmenter([ViewConfig(**{**PLAIN, **changes})], x.shape[-1])(x)
    return view


def test_identical_images_get_their_own_draws():
    x = images(1).repeat(2, 1, 1, 1)
    torch.manual_seed(0)
    for view in Augmenter(view_configs("simclr"), 32)(x):
        assert not torch.allclose(view[0], view[1])
    jittered = one_view(x, jitter_p=1.0)  # colour alone: its factors too are drawn per image
    assert not torch.allclose(jittered[0], jittered[1])


def test_same_seed_or_restored_rng_state_gives_identical_views():
    x, augment = images(), Augmenter(view_configs("dino"), 32)
    torch.manual_seed(3)
    first = augment(x)
    torch.manual_seed(3)
    again = augment(x)
    state = torch.get_rng_state()
    later = augment(x)
    torch.set_rng_state(state)
    resumed = augment(x)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert all(torch.equal(a, b) for a, b in zip(later, resumed))
    assert not torch.equal(first[0], later[0])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_sizes_counts_and_range(preset):
    views = view_configs(preset)
    out = Augmenter(views, 32)(images())
    sizes = [round(v.size * 32) for v in views for _ in range(v.count)]
    assert [tuple(v.shape) for v in out] == [(8, 3, s, s) for s in sizes]
    for v in out:
        assert v.min() >= -1 and v.max() <= 1 and torch.isfinite(v).all()


def test_dino_local_crops_are_half_size_and_configurable():
    views = view_configs("dino")
    views[-1].count = 6
    out = Augmenter(views, 64)(images(2, 64))
    assert [v.shape[-1] for v in out] == [64, 64] + [32] * 6


def test_whole_image_crop_is_the_identity_and_flip_mirrors():
    x = images()
    assert torch.allclose(one_view(x), x, atol=1e-5)
    assert torch.allclose(one_view(x, flip=1.0), x.flip(-1), atol=1e-5)


def test_weak_view_shifts_by_whole_pixels():
    x = images(1).repeat(64, 1, 1, 1)
    torch.manual_seed(0)
    (view,) = Augmenter(view_configs("weak"), 32)(x)
    centre = view[..., 8:24, 8:24]
    found = []
    for v in centre:  # each view's middle is the image's middle, mirrored or not, moved by <= 4 px
        matches = [(dy, dx, m) for dy in range(-4, 5) for dx in range(-4, 5) for m in (False, True)
                   if torch.allclose(v, (x[0].flip(-1) if m else x[0])[..., 8 + dy:24 + dy, 8 + dx:24 + dx], atol=1e-5)]
        assert matches
        found.append(matches[0])
    assert len({(dy, dx) for dy, dx, _ in found}) > 5


def test_grayscale_gives_equal_channels():
    view = one_view(images(), grayscale_p=1.0)
    assert torch.allclose(view[:, 0], view[:, 1]) and torch.allclose(view[:, 1], view[:, 2])


def test_solarize_inverts_values_above_the_threshold():
    x = images()
    view = one_view(x, solarize_p=1.0)
    assert torch.allclose(view, torch.where(x >= 0, -x, x), atol=1e-5)


def test_blur_smooths_and_keeps_constant_images():
    x = images()
    blurred = one_view(x, blur_p=1.0, blur_sigma=[1.0, 1.0])
    assert blurred.std() < 0.5 * x.std()
    flat = torch.full((2, 3, 32, 32), 0.25)
    assert torch.allclose(one_view(flat, blur_p=1.0), flat, atol=1e-5)


def test_colour_ops_match_torchvision_per_image():
    x = (images(4) + 1) / 2
    factors = torch.tensor([0.6, 1.3, 0.9, 1.4])
    shifts = torch.tensor([-0.1, 0.05, 0.3, -0.5])
    for i in range(4):
        f, s, image = factors[i].item(), shifts[i].item(), x[i]
        assert torch.allclose(ops.brightness(x, factors)[i], TF.adjust_brightness(image, f), atol=1e-5)
        assert torch.allclose(ops.contrast(x, factors)[i], TF.adjust_contrast(image, f), atol=1e-5)
        assert torch.allclose(ops.saturation(x, factors)[i], TF.adjust_saturation(image, f), atol=1e-5)
        assert torch.allclose(ops.hue(x, shifts)[i], TF.adjust_hue(image, s), atol=1e-4)


def test_neutral_jitter_leaves_images_unchanged():
    x = (images() + 1) / 2
    neutral = torch.tensor([[1.0, 1.0, 1.0, 0.0]]).expand(8, 4)
    assert torch.allclose(ops.color_jitter(x, neutral), x, atol=1e-5)


def test_random_boxes_follow_scale_and_ratio():
    torch.manual_seed(0)
    cx, cy, w, h = ops.random_boxes(4000, [0.08, 1.0], [3 / 4, 4 / 3], torch.device("cpu")).unbind(1)
    area = w * h
    assert area.min() >= 0.08 - 1e-6 and area.max() <= 1 + 1e-6
    assert ((w / h) >= 0.75 - 1e-4).all() and ((w / h) <= 4 / 3 + 1e-4).all()
    assert (cx - w / 2 >= -1e-6).all() and (cx + w / 2 <= 1 + 1e-6).all()
    assert (cy - h / 2 >= -1e-6).all() and (cy + h / 2 <= 1 + 1e-6).all()


@pytest.mark.parametrize("changes, named", [
    (dict(flip=1.5), "flip: 1.5"),
    (dict(blur_p=-0.1), "blur_p: -0.1"),
    (dict(size=0.0), "size: 0.0"),
    (dict(count=0), "count: 0"),
    (dict(crop_scale=[0.5, 0.2]), "crop_scale: [0.5, 0.2]"),
    (dict(crop_scale=[0.0, 1.0]), "crop_scale: [0.0, 1.0]"),
    (dict(crop_ratio=[1.0]), "crop_ratio: [1.0]"),
    (dict(jitter=[0.4, 0.4, 0.4, 0.7]), "jitter: [0.4, 0.4, 0.4, 0.7]"),
    (dict(jitter=[0.4, 0.4, 0.4]), "jitter: [0.4, 0.4, 0.4]"),
    (dict(blur_sigma=[2.0, 0.1]), "blur_sigma: [2.0, 0.1]"),
    (dict(size=0.01), "size: 0.01"),
])
def test_bad_values_are_config_errors_naming_them(changes, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        Augmenter([ViewConfig(**changes)], 32)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="'simclr2'.*simclr, byol"):
        view_configs("simclr2")


def test_presets_are_fresh_copies():
    view_configs("dino")[-1].count = 9
    assert view_configs("dino")[-1].count == 6


# Each preset's parameters as its named source writes them at 32 px (ssgen/augment/views.py):
# (size, crop_scale, jitter, blur_p, solarize_p, count) a view kind; flip 0.5, grayscale 0.2 and
# jitter p 0.8 in all of them.
SIMCLR_JITTER, BYOL_JITTER = [0.4, 0.4, 0.4, 0.1], [0.4, 0.4, 0.2, 0.1]
SOLO_LEARN_ASYMMETRIC = [(1.0, [0.08, 1.0], BYOL_JITTER, 0.0, 0.0, 1),  # byol.yaml and dino.yaml
                         (1.0, [0.08, 1.0], BYOL_JITTER, 0.0, 0.2, 1)]
SOURCES = {
    "simclr": [(1.0, [0.08, 1.0], SIMCLR_JITTER, 0.0, 0.0, 2)],           # SimCLR appendix B.9
    "byol": SOLO_LEARN_ASYMMETRIC,                                         # lightly's benchmark: blur 0 too
    "moco_v2": [(1.0, [0.08, 1.0], SIMCLR_JITTER, 0.5, 0.0, 2)],          # solo-learn symmetric_weak.yaml
    "dino": [(1.0, [0.4, 1.0], BYOL_JITTER, 0.0, 0.0, 1),                  # DINO's global_crops_scale
             (1.0, [0.4, 1.0], BYOL_JITTER, 0.0, 0.2, 1),
             (0.5, [0.05, 0.4], BYOL_JITTER, 0.0, 0.0, 6)],                # lightly's n_local_views
    "dino_cifar": SOLO_LEARN_ASYMMETRIC,
}


@pytest.mark.parametrize("preset", sorted(SOURCES))
def test_preset_matches_its_named_source(preset):
    views = view_configs(preset)
    assert [(v.size, v.crop_scale, v.jitter, v.blur_p, v.solarize_p, v.count) for v in views] == SOURCES[preset]
    assert all((v.flip, v.grayscale_p, v.jitter_p, v.crop_ratio) == (0.5, 0.2, 0.8, [3 / 4, 4 / 3]) for v in views)


def test_no_preset_blurs_at_32px_but_moco_v2s_named_recipe():
    blurred = {name for name, views in PRESETS.items() if any(v.blur_p > 0 for v in views)}
    assert blurred == {"moco_v2"}
