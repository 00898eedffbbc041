"""The GAN recipe's selectable choices (z distribution, D pooling, EMA start): the defaults are
the formulas ssgen always used, and each option does what it claims."""

import pytest
import torch

from ssgen.config import load_config
from ssgen.errors import ConfigError
from ssgen.methods.gan import GAN
from ssgen.registry import METHODS
from ssgen.step import DataInfo, Progress

from small_runs import SMALL_GAN

RECIPE = ["method.name=ssgan", *SMALL_GAN, "method.n_dis=2", "method.ema_decay=0.9"]


def method(*overrides):
    cfg = load_config(None, [*RECIPE, *overrides])
    torch.manual_seed(0)
    return METHODS.get(cfg.method.name)(cfg.method, DataInfo(resolution=32))


def losses(gan: GAN, steps: int = 3) -> list[dict[str, float]]:
    """A seeded short run's logs, step by step."""
    g = torch.Generator().manual_seed(5)
    batches = iter([torch.rand(8, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2 * steps)])
    torch.manual_seed(1)
    return [{k: v.item() for k, v in gan.train_step(lambda: next(batches), Progress(step, 10)).items()}
            for step in range(1, steps + 1)]


def test_defaults_are_the_explicit_reference_choices():
    explicit = method("method.z_distribution=normal", "method.discriminator.pooling=sum", "method.ema_start=0")
    assert losses(method()) == losses(explicit)
    assert losses(method()) != losses(method("method.discriminator.pooling=mean"))


def test_default_noise_is_standard_normal_and_uniform_lies_in_minus_one_one():
    normal = method().noise(4096, torch.Generator().manual_seed(3), torch.device("cpu"))
    assert torch.equal(normal, torch.randn(4096, 16, generator=torch.Generator().manual_seed(3)))
    uniform = method("method.z_distribution=uniform").noise(4096, torch.Generator().manual_seed(3),
                                                             torch.device("cpu"))
    assert uniform.min() >= -1 and uniform.max() <= 1
    assert uniform.min() < -0.99 and uniform.max() > 0.99 and abs(uniform.mean()) < 0.01  # U(-1, 1), not N
    assert abs(uniform.var() - 1 / 3) < 0.01


def test_mean_pooling_is_sum_over_the_last_maps_area():
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    summed, averaged = method().D.eval(), method("method.discriminator.pooling=mean").D.eval()
    averaged.load_state_dict(summed.state_dict())
    last = summed.activation(torch.nn.Sequential(*summed.blocks.values())(x))  # [B, C, 8, 8]
    assert torch.equal(summed(x), last.sum(dim=(2, 3)))
    torch.testing.assert_close(averaged(x), summed(x) / (8 * 8))
    torch.testing.assert_close(averaged.block_features(x, ["penultimate"])["penultimate"], averaged(x))


def test_ema_copies_g_before_its_start_step_then_averages():
    gan = method("method.ema_start=3")
    g = torch.Generator().manual_seed(5)
    for step in range(1, 5):
        before = [p.clone() for p in gan.G_ema.parameters()]
        gan.train_step(lambda: torch.rand(8, 3, 32, 32, generator=g) * 2 - 1, Progress(step, 10))
        live, ema = list(gan.G.parameters()), list(gan.G_ema.parameters())
        if step < 3:
            assert all(torch.equal(e, p) for e, p in zip(ema, live)), step
        else:
            for e, old, p in zip(ema, before, live):
                torch.testing.assert_close(e, 0.9 * old + 0.1 * p)
            assert not all(torch.equal(e, p) for e, p in zip(ema, live))


@pytest.mark.parametrize("overrides, named", [
    (["method.z_distribution=gaussian"], "method.z_distribution: 'gaussian' is not one of normal, uniform"),
    (["method.discriminator.pooling=max"], "method.discriminator.pooling: 'max' is not one of sum, mean"),
    (["method.ema_start=-1"], "method.ema_start: -1 is out of range"),
    (["method.ema_decay=0", "method.ema_start=10"], "method.ema_start: 10 starts an EMA that is off"),
    (["method.ema_start=200", "trainer.steps=100"], "method.ema_start: 200 is beyond trainer.steps (100)"),
])
def test_bad_recipe_values_are_config_errors_naming_them(overrides, named):
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        cfg = load_config(None, [*RECIPE, *overrides])
        METHODS.get(cfg.method.name).check_config(cfg)
