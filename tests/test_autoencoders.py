"""The four pretext-task autoencoders: training lowers their loss, probe features, image grids."""

import pytest
import torch

from ssgen.config import load_config
from ssgen.errors import ConfigError
from ssgen.methods import METHODS
from ssgen.step import DataInfo
from ssgen.nets.autoencoder import build_autoencoder

TINY = ["method.encoder.width=8", "method.decoder.width=8", "method.optim.lr=3e-3", "method.optim.betas=[0.5, 0.999]"]
CASES = {
    "denoising": [],
    "denoising-masking": ["method.name=denoising", "method.noise=masking", "method.level=0.3"],
    "context-central": ["method.name=context", "method.mask=central"],
    "context-blocks": ["method.name=context", "method.mask=random_block"],
    "split_brain": [],
    "split_brain-regression": ["method.name=split_brain", "method.loss=regression"],
    "colorization": [],
}


def build(*overrides, resolution=32):
    cfg = load_config(None, [*TINY, *overrides])
    return METHODS.get(cfg.method.name)(cfg.method, DataInfo(resolution))


def batch(n=4, size=32):
    """Smooth coloured images: a learnable signal, unlike white noise."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, 3, 4, 4, generator=g) * 2 - 1
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def seeded_loss(method, x):
    torch.manual_seed(123)  # the same noise / mask before and after training
    with torch.no_grad():
        return float(method.loss(x)[0])


@pytest.mark.parametrize("case", CASES)
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(case):
    torch.manual_seed(0)
    method = build(*(CASES[case] or [f"method.name={case}"]))
    x = batch(2)
    before = seeded_loss(method, x)
    for _ in range(3):
        logs = method.train_step(lambda: x)
    assert all(v.dim() == 0 and torch.isfinite(v) for v in logs.values())
    assert seeded_loss(method, x) < before


@pytest.mark.parametrize("name", ["denoising", "context", "split_brain", "colorization"])
def test_features_and_image_grids(name):
    method = build(f"method.name={name}")
    x = batch(3)
    assert method.feature_layers[:2] == ["encoder", "block1"]
    features = method.features(x)
    assert list(features) == ["encoder"] and features["encoder"].shape == (3, 8)  # split-brain: 4 + 4
    assert set(method.features(x, method.feature_layers)) == set(method.feature_layers)
    with pytest.raises(ConfigError):
        method.features(x, ["nope"])
    grids = method.image_grids(x, None)
    assert {"input", "corrupted", "output"} <= set(grids)
    for images in grids.values():
        assert images.shape == x.shape and images.min() >= -1.01 and images.max() <= 1.01


def test_split_brain_features_concatenate_both_halves():
    method = build("method.name=split_brain")
    assert set(method.nets) == {"l_to_ab", "ab_to_l"}
    assert all(net.encoder.feature_dim == 4 for net in method.nets.values())


def test_colorization_counts_the_ab_prior_over_the_first_batches_only():
    method = build("method.name=colorization", "method.prior_batches=2")
    x = batch(2)
    for _ in range(3):
        method.train_step(lambda: x)
    assert method.ab_counts.sum() == 2 * 2 * 32 * 32
    assert {"ab_counts", "prior_batches_seen"} <= set(method.state_dict())
    weights = method.class_weights()
    prior = method.ab_counts / method.ab_counts.sum()
    assert torch.allclose((prior * weights).sum(), torch.tensor(1.0))


def test_context_encoder_adversarial_trains_its_own_discriminator():
    method = build("method.name=context", "method.adversarial=true", "method.discriminator.width=8")
    assert set(method.optimizers()) == {"autoencoder", "discriminator"}
    before = [p.detach().clone() for p in method.D.parameters()]
    x = batch()
    logs = method.train_step(lambda: x)
    assert {"loss/l2", "loss/d", "loss/adversarial", "loss/total"} <= set(logs)
    assert any(not torch.equal(a, b) for a, b in zip(before, method.D.parameters()))
    assert all(not n.startswith("D.") for n, _ in method.nets.named_parameters())


@pytest.mark.parametrize("resolution", [32, 64])
def test_encoder_decoder_shapes(resolution):
    cfg = load_config(None, ["method.name=denoising"]).method
    net = build_autoencoder(cfg.encoder, cfg.decoder, resolution, in_channels=1, out_channels=5)
    x = torch.zeros(2, 1, resolution, resolution)
    assert net.encoder.feature_map(x).shape == (2, 128, 8, 8)
    assert net.encoder(x).shape == (2, 128)  # the pooled representation
    assert net(x).shape == (2, 5, resolution, resolution)


def test_encoder_matches_the_sngan_discriminator_in_size():
    from ssgen.registry import DISCRIMINATORS
    cfg = load_config(None, ["method.name=denoising"]).method
    encoder = build_autoencoder(cfg.encoder, cfg.decoder, 32, 3, 3).encoder
    discriminator = DISCRIMINATORS.get("resnet")(load_config(None, ["method.name=gan"]).method.discriminator, 32)

    def count(module):
        return sum(p.numel() for p in module.parameters())

    assert count(encoder) == count(discriminator) - count(discriminator.critic)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="method.noise"):
        load_config(None, ["method.name=denoising", "method.noise=poisson"])
    with pytest.raises(ConfigError, match="resolution"):
        build("method.name=denoising", resolution=40)
