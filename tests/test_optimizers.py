"""A method's optimizers at run time (ssgen/optimizers.py): a step updates its own optimizer's
parameters only, a non-finite one is skipped and counted, each follows its own schedule, and
the state travels through a checkpoint."""

import copy

import pytest
import torch

from ssgen.config import OptimConfig
from ssgen.optimizers import Optimizers

SGD = OptimConfig(name="sgd", lr=0.1, momentum=0.0)


def two_networks():
    """A G and a D: G's loss passes through D, as a GAN's does."""
    torch.manual_seed(0)
    return torch.nn.Linear(2, 3), torch.nn.Linear(3, 1)


def optimizers_of(g, d, g_cfg=SGD, d_cfg=SGD):
    return Optimizers({"g": (list(g.parameters()), g_cfg), "d": (list(d.parameters()), d_cfg)},
                      torch.zeros((), dtype=torch.long))


def test_a_step_updates_its_own_parameters_by_their_gradients_only():
    g, d = two_networks()
    optimizers = optimizers_of(g, d)
    x = torch.randn(4, 2)
    grads = torch.autograd.grad(d(g(x)).mean(), list(g.parameters()))
    expected = [p - 0.1 * grad for p, grad in zip(g.parameters(), grads)]
    d_before = copy.deepcopy(d.state_dict())
    optimizers.step("g", d(g(x)).mean())
    for p, want in zip(g.parameters(), expected):
        torch.testing.assert_close(p.detach(), want.detach())
    assert all(torch.equal(p, d_before[k]) for k, p in d.state_dict().items())
    assert all(p.grad is None for p in d.parameters())  # D's weight gradients never computed


def test_a_nonfinite_step_is_skipped_and_counted_only_in_skip_mode():
    g, d = two_networks()
    optimizers = optimizers_of(g, d)
    optimizers.skip_nonfinite = True
    before = copy.deepcopy(d.state_dict())
    optimizers.step("d", d(g(torch.randn(4, 2))).mean() * float("nan"))
    assert all(torch.equal(p, before[k]) for k, p in d.state_dict().items())
    assert optimizers.skipped_steps == 1  # the counter it was given (a method's checkpointed buffer)
    optimizers.skip_nonfinite = False
    optimizers.step("d", d(g(torch.randn(4, 2))).mean() * float("nan"))
    assert d.weight.isnan().all() and optimizers.skipped_steps == 1


def test_each_optimizer_follows_its_own_schedule():
    g, d = two_networks()
    optimizers = optimizers_of(g, d, OptimConfig(name="sgd", lr=0.2, schedule="linear"),
                               OptimConfig(name="sgd", lr=0.1, schedule="constant"))
    optimizers.schedule(51, 100)
    assert optimizers["g"].param_groups[0]["lr"] == pytest.approx(0.1)
    assert optimizers["d"].param_groups[0]["lr"] == pytest.approx(0.1)
    assert set(optimizers) == {"g", "d"} and len(optimizers) == 2


def test_the_state_is_each_optimizers_own_by_name_and_resumes_exactly():
    adam = OptimConfig(name="adam", lr=0.01)
    g, d = two_networks()
    optimizers = optimizers_of(g, d, adam, adam)
    x = torch.randn(4, 2)
    optimizers.step("g", d(g(x)).mean())
    saved, weights = copy.deepcopy(optimizers.state_dict()), copy.deepcopy((g.state_dict(), d.state_dict()))
    assert saved.keys() == {"g", "d"}  # a checkpoint's "optimizers" entry: {name: torch's state_dict}
    assert saved["g"].keys() == optimizers["g"].state_dict().keys() and saved["g"]["state"]
    optimizers.step("g", d(g(x)).mean())

    g2, d2 = two_networks()
    g2.load_state_dict(weights[0])
    d2.load_state_dict(weights[1])
    resumed = optimizers_of(g2, d2, adam, adam)
    resumed.load_state_dict(saved)
    resumed.step("g", d2(g2(x)).mean())
    assert all(torch.equal(a, b) for a, b in zip(g.parameters(), g2.parameters()))
