import copy

import pytest
import torch
from torch import nn

import ssgen.nets  # noqa: F401  (fills the registries)
from ssgen.nets.base import DiscriminatorConfig, GeneratorConfig
from ssgen.errors import ConfigError
from ssgen.registry import DISCRIMINATORS, GENERATORS

RESOLUTIONS = {"resnet": (32, 48, 64, 128), "dcgan": (32, 48, 64)}
SMALL = DiscriminatorConfig(width=16)
SMALL_G = GeneratorConfig(width=16, z_dim=8)
CASES = [(name, resolution) for name, resolutions in RESOLUTIONS.items() for resolution in resolutions]


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_every_registered_net_is_covered():
    assert set(RESOLUTIONS) == set(GENERATORS.names()) == set(DISCRIMINATORS.names())


@pytest.mark.parametrize("sbn", [False, True])
@pytest.mark.parametrize("name,resolution", CASES)
def test_generator_maps_z_to_images_in_tanh_range(name, resolution, sbn):
    torch.manual_seed(0)
    G = GENERATORS.get(name)(GeneratorConfig(width=16, z_dim=8, sbn=sbn), resolution)
    assert G.z_dim == 8
    images = G(torch.randn(3, 8))
    assert images.shape == (3, 3, resolution, resolution) and images.dtype == torch.float32
    assert images.abs().max() <= 1 and images.std() > 0


@pytest.mark.parametrize("name,resolution", CASES)
def test_discriminator_gives_pooled_features_and_logits(name, resolution):
    D = DISCRIMINATORS.get(name)(SMALL, resolution)
    features = D(torch.randn(3, 3, resolution, resolution))
    assert features.shape == (3, D.feature_dim) and D.feature_dim == SMALL.width
    assert D.critic(features).squeeze(1).shape == (3,)
    assert D.block_names == [f"block{i + 1}" for i in range(len(D.block_names))]


def test_reference_cifar10_parameter_counts():
    # SNGAN's CIFAR-10 nets (G ~4.3M, D ~1.0M). G: linear 128 -> 4*4*256 (528,384), 3 up blocks
    # of two 3x3 convs + 1x1 shortcut + two BNs (1,246,976 each), BN + conv3x3 to RGB (7,427).
    # D: optimized block (151,680), a downsampling block with a 1x1 shortcut (311,680), two
    # blocks with identity shortcuts (295,168 each), critic linear(128, 1) (129).
    assert count(GENERATORS.get("resnet")(GeneratorConfig(width=256), 32)) == 4_276_739
    assert count(DISCRIMINATORS.get("resnet")(DiscriminatorConfig(width=128), 32)) == 1_053_825
    # sBN adds a z -> 32 -> 2C MLP per norm and drops the 2C affine parameters: +3.4%.
    assert count(GENERATORS.get("resnet")(GeneratorConfig(width=256, sbn=True), 32)) == 4_420_323


def test_reference_dcgan_parameter_counts():
    # The SNGAN paper's standard CNN at width 512: D's seven convs hold 2,926,272 weights.
    assert count(DISCRIMINATORS.get("dcgan")(DiscriminatorConfig(width=512), 32)) == 2_928_193
    assert count(GENERATORS.get("dcgan")(GeneratorConfig(width=512), 32)) == 3_813_379


@pytest.mark.parametrize("name,block_widths", [("resnet", [16, 16, 16, 16]), ("dcgan", [2, 4, 8, 16])])
def test_block_features_returns_the_requested_layers(name, block_widths):
    D = DISCRIMINATORS.get(name)(SMALL, 32).eval()
    x = torch.randn(2, 3, 32, 32)
    names = ["penultimate", *reversed(D.block_names)]
    features = D.block_features(x, names)
    assert list(features) == names
    assert [features[n].shape for n in D.block_names] == [(2, width) for width in block_widths]
    torch.testing.assert_close(features["penultimate"], D(x))


def test_block_features_are_average_pooled_activations_and_stop_early():
    D = DISCRIMINATORS.get("resnet")(SMALL, 32).eval()
    x = torch.randn(2, 3, 32, 32)
    features = D.block_features(x, ["block4", "penultimate"])
    # The last block's 8x8 map: its average times 64 is the penultimate sum pool.
    torch.testing.assert_close(features["block4"] * 64, features["penultimate"])
    ran = []
    D.blocks["block3"].register_forward_hook(lambda *_: ran.append("block3"))
    assert D.block_features(x, ["block2"])["block2"].shape == (2, SMALL.width)
    assert ran == []
    with pytest.raises(ConfigError, match="'block9'.*valid: block1, block2, block3, block4, penultimate"):
        D.block_features(x, ["block9"])


@pytest.mark.parametrize("name", sorted(RESOLUTIONS))
def test_discriminator_treats_batch_items_independently(name):
    # Real, fake and rotated images share one D pass: no item may see the others.
    D = DISCRIMINATORS.get(name)(SMALL, 32).train()
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in D.modules())
    state = copy.deepcopy(D.state_dict())  # the same power-iteration vectors for both passes
    x = torch.randn(4, 3, 32, 32)
    first = D(x)
    D.load_state_dict(state)
    second = D(torch.cat([x[:1], 5 * torch.randn(3, 3, 32, 32)]))
    torch.testing.assert_close(first[0], second[0])


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
@pytest.mark.parametrize("name", sorted(RESOLUTIONS))
def test_unsupported_resolution_is_a_config_error(kind, name):
    registry = GENERATORS if kind == "generator" else DISCRIMINATORS
    supported = ", ".join(map(str, RESOLUTIONS[name]))
    with pytest.raises(ConfigError, match=f"resolution 40 is not supported; supported: {supported}$"):
        registry.get(name)(SMALL_G if kind == "generator" else SMALL, 40)


def test_width_that_does_not_divide_into_the_stages_is_a_config_error():
    with pytest.raises(ConfigError, match="width 20 must be a multiple of 16"):
        DISCRIMINATORS.get("resnet")(DiscriminatorConfig(width=20), 64)


@pytest.mark.parametrize("name", sorted(RESOLUTIONS))
def test_nets_run_under_bf16_autocast_in_channels_last(name):
    G = GENERATORS.get(name)(GeneratorConfig(width=16, z_dim=8, sbn=True), 32).to(memory_format=torch.channels_last)
    D = DISCRIMINATORS.get(name)(SMALL, 32).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = D.critic(D(G(torch.randn(4, 8)).contiguous(memory_format=torch.channels_last)))
    logits.float().sum().backward()
    assert torch.isfinite(logits.float()).all()
    assert all(torch.isfinite(p.grad).all() for p in G.parameters() if p.grad is not None)
