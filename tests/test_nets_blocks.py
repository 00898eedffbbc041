import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

import ssgen.nets  # noqa: F401  (fills the registries)
from ssgen.config import NetConfig
from ssgen.nets.base import DiscriminatorConfig, GeneratorConfig
from ssgen.nets.autoencoder import build_autoencoder
from ssgen.nets.blocks import (ResamplingBlock, SelfModulatedBatchNorm2d, conv_then_pool, downsample,
                               plain_resampling, sn_conv, sn_linear, upsample, upsample_then_conv)
from ssgen.registry import DISCRIMINATORS, GENERATORS


def largest_singular_values(module: nn.Module) -> list[float]:
    # Spectral norm normalises each weight reshaped to [out, in * kh * kw].
    return [torch.linalg.matrix_norm(m.weight.detach().flatten(1), 2).item()
            for m in module.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@pytest.mark.parametrize("name", ["resnet", "dcgan"])
def test_spectral_norm_keeps_every_d_weight_near_unit_norm(name):
    torch.manual_seed(0)
    D = DISCRIMINATORS.get(name)(DiscriminatorConfig(width=32), 32).train()
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(parametrize.is_parametrized(m, "weight") for m in layers)
    x = torch.randn(4, 3, 32, 32)
    for _ in range(10):  # one power iteration per training forward
        D.critic(D(x)).sum().backward()
    sigmas = largest_singular_values(D)
    assert len(sigmas) == len(layers) and all(0.99 < s < 1.05 for s in sigmas), sigmas
    # Without spectral norm the same init is far from unit norm: the test measures something.
    plain = DISCRIMINATORS.get(name)(DiscriminatorConfig(width=32, spectral_norm=False), 32)
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
    plain = GENERATORS.get("resnet")(GeneratorConfig(width=16, z_dim=8), 32)
    modulated = GENERATORS.get("resnet")(GeneratorConfig(width=16, z_dim=8, sbn=True), 32)
    result = modulated.load_state_dict(plain.state_dict(), strict=False)  # the shared convs/linear
    assert all("norm" in key for key in result.missing_keys + result.unexpected_keys)
    z = torch.randn(4, 8)
    torch.testing.assert_close(modulated(z), plain(z))
    for m in modulated.modules():
        if isinstance(m, SelfModulatedBatchNorm2d):
            nn.init.normal_(m.modulation[-1].weight)
    assert not torch.allclose(modulated(z), plain(z), atol=1e-3)


@pytest.mark.parametrize("size", [(8, 8), (6, 10)])
def test_a_resampling_convolution_fused_is_the_plain_composition(size):
    torch.manual_seed(0)
    conv = sn_conv(5, 7, enabled=False).double()
    nn.init.normal_(conv.bias)  # the bias must pass through the resampling unchanged
    x = torch.randn(3, 5, *size, dtype=torch.float64)
    torch.testing.assert_close(conv_then_pool(conv, x), downsample(conv(x)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(upsample_then_conv(conv, x), conv(upsample(x)), rtol=1e-12, atol=1e-12)


def resampling_networks(resolution):
    return {"G": GENERATORS.get("resnet")(GeneratorConfig(width=16, z_dim=8), resolution),
            "D": DISCRIMINATORS.get("resnet")(DiscriminatorConfig(width=16), resolution),
            "autoencoder": build_autoencoder(NetConfig(width=8), NetConfig(width=8), resolution, 3, 3)}


ON_THE_GPU = pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(),
                                                                               reason="needs a CUDA GPU")])


@pytest.mark.parametrize("device", ["cpu", ON_THE_GPU])  # on a GPU: cuDNN's strided and transposed kernels
@pytest.mark.parametrize("resolution", [32, 48])
@pytest.mark.parametrize("name", ["G", "D", "autoencoder"])
def test_networks_with_fused_resampling_compute_the_plain_networks_outputs_and_gradients(name, resolution, device):
    torch.manual_seed(0)
    fused = resampling_networks(resolution)[name].double().train().to(device)
    plain = plain_resampling(copy.deepcopy(fused))
    blocks = [m for m in fused.modules() if isinstance(m, ResamplingBlock)]
    assert blocks and all(b.fused_resampling for b in blocks)
    assert not any(m.fused_resampling for m in plain.modules() if isinstance(m, ResamplingBlock))
    x = torch.randn(4, 8, dtype=torch.float64) if name == "G" else torch.randn(4, 3, resolution, resolution,
                                                                               dtype=torch.float64)
    x = x.to(device)
    outputs = []
    for net in (fused, plain):
        out = net.critic(net(x)) if name == "D" else net(x)
        out.pow(2).mean().backward()
        outputs.append((out, [p.grad for p in net.parameters()]))
    (out_fused, grads_fused), (out_plain, grads_plain) = outputs
    torch.testing.assert_close(out_fused, out_plain, rtol=1e-10, atol=1e-10)
    assert len(grads_fused) == len(grads_plain) and all(g is not None for g in grads_fused)
    for grad_fused, grad_plain in zip(grads_fused, grads_plain):
        torch.testing.assert_close(grad_fused, grad_plain, rtol=1e-9, atol=1e-10)
    # The spectral-norm estimates moved alike (one power iteration each in training mode).
    for buffer_fused, buffer_plain in zip(fused.buffers(), plain.buffers()):
        torch.testing.assert_close(buffer_fused, buffer_plain, rtol=1e-10, atol=1e-10)
