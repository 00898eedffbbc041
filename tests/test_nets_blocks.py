import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

import ssgen.nets  # noqa: F401  (fills the registries)
from ssgen.config import NetConfig
from ssgen.nets.blocks import SelfModulatedBatchNorm2d, sn_linear
from ssgen.registry import DISCRIMINATORS, GENERATORS


def largest_singular_values(module: nn.Module) -> list[float]:
    # Spectral norm normalises each weight reshaped to [out, in * kh * kw].
    return [torch.linalg.matrix_norm(m.weight.detach().flatten(1), 2).item()
            for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("name", ["resnet", "dcgan"])
def test_spectral_norm_keeps_every_d_weight_near_unit_norm(name):
    torch.manual_seed(0)
    D = DISCRIMINATORS.get(name)(NetConfig(width=32), 32).train()
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(10):  # one power iteration per training forward
        D.critic(D(x)).sum().backward()
    sigmas = largest_singular_values(D)
    assert len(sigmas) == len(layers) and all(0.99 < s < 1.05 for s in sigmas), sigmas
    # Without spectral norm the same init is far from unit norm: the test measures something.
    plain = DISCRIMINATORS.get(name)(NetConfig(width=32, spectral_norm=False), 32)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())
    assert not all(0.99 < s < 1.05 for s in largest_singular_values(plain))


def test_sn_linear_is_the_rotation_head_shape():
    head = sn_linear(16, 4)
    assert head(torch.randn(5, 16)).shape == (5, 4) and parametrize.is_parametrized(head, "weight")
    assert not parametrize.is_parametrized(sn_linear(16, 4, enabled=False))


def test_self_modulated_bn_starts_as_plain_bn_and_learns_to_depend_on_z():
    norm = SelfModulatedBatchNorm2d(6, z_dim=8)
    x = torch.randn(4, 6, 5, 5)
    plain = F.batch_norm(x, None, None, training=True)
    torch.testing.assert_close(norm(x, torch.randn(4, 8)), plain)  # gamma = 1, beta = 0 for every z
    # The output layer starts at zero but has a gradient: the dependence on z is learnable.
    norm(x, torch.randn(4, 8)).pow(3).sum().backward()
    assert norm.modulation[-1].weight.grad.abs().sum() > 0
    with torch.no_grad():
        norm.modulation[-1].weight.normal_()
    z = torch.randn(4, 8)
    modulated = norm(x, z)
    # Each item gets its own scale and shift from its own z.
    z_changed = torch.cat([z[:1], torch.randn(3, 8)])
    torch.testing.assert_close(norm(x, z_changed)[0], modulated[0])
    assert not torch.allclose(norm(x, z_changed)[1:], modulated[1:])


def test_sbn_generator_equals_the_plain_generator_at_init():
    torch.manual_seed(0)
    plain = GENERATORS.get("resnet")(NetConfig(width=16, z_dim=8), 32)
    modulated = GENERATORS.get("resnet")(NetConfig(width=16, z_dim=8, sbn=True), 32)
    result = modulated.load_state_dict(plain.state_dict(), strict=False)  # the shared convs/linear
    assert all("norm" in key for key in result.missing_keys + result.unexpected_keys)
    z = torch.randn(4, 8)
    torch.testing.assert_close(modulated(z), plain(z))
    for m in modulated.modules():
        if isinstance(m, SelfModulatedBatchNorm2d):
            nn.init.normal_(m.modulation[-1].weight)
    assert not torch.allclose(modulated(z), plain(z), atol=1e-3)
