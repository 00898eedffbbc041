"""Optimizers and learning-rate schedules by name (ssgen/optim.py)."""

import math

import pytest
import torch

from ssgen.config import OptimConfig, load_config
from ssgen.errors import ConfigError
from ssgen.optim import LARS, build_optimizer, lr_factor, parameter_groups, set_learning_rates


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))


@pytest.mark.parametrize("name, kind", [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                                        ("sgd", torch.optim.SGD), ("lars", LARS)])
def test_each_optimizer_builds_by_name_and_lowers_a_loss(name, kind):
    net = model()
    optimizer = build_optimizer(net.parameters(), OptimConfig(name=name, lr=0.05, weight_decay=1e-4))
    assert isinstance(optimizer, kind)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()  # learnable
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


def test_biases_and_norm_weights_get_no_weight_decay():
    net = model()
    groups = parameter_groups(net.parameters(), OptimConfig(weight_decay=5e-4))
    decayed, plain = groups
    assert decayed["weight_decay"] == 5e-4 and {p.ndim for p in decayed["params"]} == {2}
    assert plain["weight_decay"] == 0.0 and {p.ndim for p in plain["params"]} == {1}
    assert len(decayed["params"]) + len(plain["params"]) == len(list(net.parameters()))
    # Without weight decay (or when asked to decay them too) one group: nothing to tell apart.
    assert len(parameter_groups(net.parameters(), OptimConfig())) == 1
    assert len(parameter_groups(net.parameters(), OptimConfig(weight_decay=1e-4, decay_norms_and_biases=True))) == 1


def test_lars_step_is_the_trust_ratio_scaled_sgd_step():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0]]))   # a weight matrix, ||w|| = 5
    bias = torch.nn.Parameter(torch.tensor([1.0]))
    w.grad, bias.grad = torch.tensor([[0.6, 0.8]]), torch.tensor([0.5])  # ||g|| = 1
    groups = parameter_groups([w, bias], OptimConfig(name="lars", weight_decay=0.1))
    optimizer = LARS(groups, lr=0.5, momentum=0.9, trust=0.01)
    optimizer.step()
    ratio = 0.01 * 5.0 / (1.0 + 0.1 * 5.0)             # trust * ||w|| / (||g|| + wd * ||w||)
    weights = torch.tensor([[3.0, 4.0]])
    expected = weights - 0.5 * ratio * (torch.tensor([[0.6, 0.8]]) + 0.1 * weights)
    torch.testing.assert_close(w.detach(), expected)
    torch.testing.assert_close(bias.detach(), torch.tensor([1.0 - 0.5 * 0.5]))  # plain SGD, no decay


@pytest.mark.parametrize("schedule, at_half", [("linear", 0.5), ("cosine", 0.5), ("constant", 1.0)])
def test_schedules_start_at_one_and_fall_as_named(schedule, at_half):
    cfg = OptimConfig(schedule=schedule)
    assert lr_factor(cfg, 1, 100) == 1.0
    assert lr_factor(cfg, 51, 100) == pytest.approx(at_half)
    assert lr_factor(cfg, 100, 100) == pytest.approx({"linear": 0.01, "cosine": 0.5 * (1 + math.cos(0.99 * math.pi)),
                                                      "constant": 1.0}[schedule])


def test_warmup_rises_linearly_then_the_schedule_takes_over():
    cfg = OptimConfig(schedule="cosine", warmup_steps=10)
    assert [lr_factor(cfg, s, 110) for s in (1, 5, 10)] == [0.1, 0.5, 1.0]
    assert lr_factor(cfg, 11, 110) == 1.0 and lr_factor(cfg, 61, 110) == pytest.approx(0.5)


def test_learning_rates_follow_the_base_lr_of_each_group_through_a_checkpoint():
    cfg = OptimConfig(name="sgd", lr=0.2, weight_decay=1e-4, schedule="linear")
    optimizer = build_optimizer(model().parameters(), cfg)
    set_learning_rates(optimizer, cfg, 51, 100)
    assert [g["lr"] for g in optimizer.param_groups] == [pytest.approx(0.1)] * 2
    restored = build_optimizer(model().parameters(), cfg)
    restored.load_state_dict(optimizer.state_dict())  # the base lr travels with the state
    set_learning_rates(restored, cfg, 76, 100)
    assert [g["lr"] for g in restored.param_groups] == [pytest.approx(0.05)] * 2


def test_unknown_optimizer_or_schedule_names_the_valid_ones():
    with pytest.raises(ConfigError,
                       match=r"method.d_optim.name: unknown optimizer 'rmsprop'; valid: adam, adamw, lars, sgd"):
        load_config(None, ["method.d_optim.name=rmsprop"])
    with pytest.raises(ConfigError,
                       match=r"method.g_optim.schedule: unknown schedule 'step'; valid: constant, cosine, linear"):
        load_config(None, ["method.g_optim.schedule=step"])
