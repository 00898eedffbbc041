import dataclasses

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.vision_transformer import VisionTransformer

import ssgen.nets  # noqa: F401  (fills the registries)
from ssgen.config import NetConfig, from_dict
from ssgen.errors import ConfigError
from ssgen.nets.resnet18 import ResNet18Config
from ssgen.nets.vit import ViTConfig
from ssgen.registry import ENCODERS

SMALL_RESNET = ResNet18Config(width=8)
SMALL_VIT = ViTConfig(width=32, depth=3, heads=2)  # patch 4: 64 patches at 32 px


pytestmark = pytest.mark.usefixtures("one_thread")


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build(cfg: NetConfig, in_channels: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return ENCODERS.get(cfg.name)(cfg, 32, in_channels).eval()


def random_projection(out: torch.Tensor) -> torch.Tensor:
    # Not out.sum(): a LayerNorm's outputs sum to a constant, which would give zero gradients.
    return (out * torch.randn_like(out)).sum()


def test_each_encoder_carries_its_own_options_class():
    assert ENCODERS.config_class("resnet18") is ResNet18Config
    assert ENCODERS.config_class("vit") is ViTConfig
    # The standard sizes by default, not NetConfig's D width of 128.
    assert build(ResNet18Config()).feature_dim == 512
    vit = ViTConfig()
    assert (vit.width, vit.depth, vit.heads, vit.mlp_ratio, vit.patch_size) == (192, 12, 3, 4.0, 4)


@pytest.mark.parametrize("in_channels", [1, 2, 3])
def test_resnet18_shapes(in_channels):
    net = build(SMALL_RESNET, in_channels)
    x = torch.randn(2, in_channels, 32, 32)
    assert net.block_names == ["layer1", "layer2", "layer3", "layer4"]
    assert net(x).shape == (2, net.feature_dim) and net.feature_dim == 8 * 8
    assert net.feature_map(x).shape == (2, 64, 4, 4)
    features = net.block_features(x, [*net.block_names, "encoder"])
    assert {name: f.shape[1] for name, f in features.items()} == {
        "layer1": 8, "layer2": 16, "layer3": 32, "layer4": 64, "encoder": 64}
    assert all(f.shape[0] == 2 for f in features.values())


@pytest.mark.parametrize("in_channels", [1, 2, 3])
def test_vit_shapes(in_channels):
    net = build(SMALL_VIT, in_channels)
    x = torch.randn(2, in_channels, 32, 32)
    assert (net.num_patches, net.patch_size, net.feature_dim) == (64, 4, 32)
    assert net.block_names == ["block1", "block2", "block3"]
    assert net(x).shape == (2, 32)
    assert net.tokens(x).shape == (2, 65, 32)
    assert net.tokens(x, torch.rand(2, 64) < 0.5).shape == (2, 65, 32)
    features = net.block_features(x, [*net.block_names, "encoder"])
    assert list(features) == ["block1", "block2", "block3", "encoder"]
    assert all(f.shape == (2, 32) for f in features.values())


def test_resnet18_is_torchvisions_cifar_resnet18():
    """At width 64 the trunk is torchvision's resnet18 with a 3x3 stride-1 stem, no max-pool and
    no fc (solo-learn's CIFAR backbone): same state dict, same output."""
    reference = torchvision.models.resnet18()
    reference.conv1 = nn.Conv2d(3, 64, 3, padding=1, bias=False)
    reference.maxpool, reference.fc = nn.Identity(), nn.Identity()
    net = build(ResNet18Config())
    assert {k: v.shape for k, v in net.state_dict().items()} == \
           {k: v.shape for k, v in reference.state_dict().items()}
    assert count(net) == count(reference) == 11_168_832  # ~11.2M
    reference.load_state_dict(net.state_dict())
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(net(x), reference.eval()(x))


def test_vit_tiny_has_torchvisions_parameters_plus_the_mask_token():
    reference = VisionTransformer(32, 4, num_layers=12, num_heads=3, hidden_dim=192, mlp_dim=768)
    net = build(ViTConfig())
    assert count(net) == count(reference) - count(reference.heads) + 192  # 5.36M
    assert net.encoder.pos_embedding.shape == (1, 65, 192)


@pytest.mark.parametrize("cfg", [SMALL_RESNET, SMALL_VIT], ids=["resnet18", "vit"])
def test_block_features_encoder_is_forward_and_runs_only_as_deep_as_asked(cfg):
    net = build(cfg)
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(net.block_features(x, ["encoder"])["encoder"], net(x), rtol=0, atol=0)
    blocks = net.stages() if cfg.name == "resnet18" else list(net.encoder.layers)
    ran = []
    for index, block in enumerate(blocks):
        block.register_forward_hook(lambda *_, index=index: ran.append(index))
    features = net.block_features(x, [net.block_names[1], net.block_names[0]])
    assert list(features) == [net.block_names[1], net.block_names[0]] and ran == [0, 1]
    assert net.block_features(x, []) == {}


@pytest.mark.parametrize("cfg", [SMALL_RESNET, SMALL_VIT], ids=["resnet18", "vit"])
def test_unknown_layer_is_a_config_error_naming_it_and_the_valid_ones(cfg):
    with pytest.raises(ConfigError, match=r"'layer9'.*valid: .*encoder"):
        build(cfg).block_features(torch.randn(1, 3, 32, 32), ["layer9"])


def test_masked_patches_pixels_do_not_affect_any_token():
    net = build(SMALL_VIT)
    x = torch.randn(2, 3, 32, 32)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[0, [0, 9, 63]] = True  # patches (row, col) = (0, 0), (1, 1), (7, 7) of image 0
    mask[1, 10] = True          # patch (1, 2) of image 1
    changed = x.clone()
    changed[0, :, 0:4, 0:4] = 5.0
    changed[0, :, 4:8, 4:8] = torch.randn(3, 4, 4)
    changed[0, :, 28:32, 28:32] = -3.0
    changed[1, :, 4:8, 8:12] = 7.0
    tokens = net.tokens(x, mask)
    assert torch.equal(net.tokens(changed, mask), tokens)
    # The mask token is placed before the position embedding: two masked patches still differ.
    assert not torch.allclose(tokens[0, 1 + 0], tokens[0, 1 + 9])
    # Without the mask the same change is seen; with an empty mask nothing is masked.
    assert not torch.allclose(net.tokens(changed), net.tokens(x))
    assert torch.equal(net.tokens(x, torch.zeros_like(mask)), net.tokens(x))
    # An unmasked patch's pixels do count.
    changed[1, :, 0:4, 0:4] = 5.0
    assert not torch.allclose(net.tokens(changed, mask)[1], tokens[1])


def test_bad_mask_is_an_error_naming_its_shape():
    net = build(SMALL_VIT)
    with pytest.raises(ValueError, match=r"bool \[2, 64\].*\[2, 16\]"):
        net.tokens(torch.randn(2, 3, 32, 32), torch.ones(2, 16, dtype=torch.bool))


@pytest.mark.parametrize("cfg", [SMALL_RESNET, SMALL_VIT], ids=["resnet18", "vit"])
def test_gradients_reach_every_parameter(cfg):
    net = build(cfg, in_channels=2).train()
    x = torch.randn(4, 2, 32, 32)
    if cfg.name == "vit":  # a partial mask, so that the mask token is used as well
        loss = random_projection(net.tokens(x, torch.arange(64).expand(4, 64) % 3 == 0))
    else:
        loss = random_projection(net(x)) + random_projection(net.feature_map(x))
    loss.backward()
    for name, parameter in net.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


def test_bad_vit_sizes_are_config_errors_naming_them():
    with pytest.raises(ConfigError, match=r"patch_size 5 .*resolution 32"):
        build(dataclasses.replace(SMALL_VIT, patch_size=5))
    with pytest.raises(ConfigError, match=r"heads 3 .*width 32"):
        build(dataclasses.replace(SMALL_VIT, heads=3))
    with pytest.raises(ConfigError, match=r"vit\.patch_size: 0 is out of range"):
        from_dict(ViTConfig, {"patch_size": 0}, "vit")


@pytest.mark.parametrize("cfg", [SMALL_RESNET, SMALL_VIT], ids=["resnet18", "vit"])
def test_spectral_norm_is_refused_not_ignored(cfg):
    with pytest.raises(ConfigError, match=f"encoder '{cfg.name}': spectral_norm true is not supported"):
        build(dataclasses.replace(cfg, spectral_norm=True))
