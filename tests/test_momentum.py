"""The one momentum copy (G's EMA, every teacher / target / key encoder): formula, schedule, checkpoint."""

import math

import pytest
import torch

from ssgen.nets.momentum import MomentumCopy
from ssgen.step import Progress


def net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))


def test_update_is_m_copy_plus_one_minus_m_live_and_copies_buffers():
    live = net()
    follower = MomentumCopy(live, momentum=0.9)
    before = [p.clone() for p in follower.copy.parameters()]
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    live(torch.randn(8, 3))  # moves the batch norm's running statistics
    follower.update(live)
    for old, new, current in zip(before, follower.copy.parameters(), live.parameters()):
        torch.testing.assert_close(new, 0.9 * old + 0.1 * current)
    for mine, theirs in zip(follower.copy.buffers(), live.buffers()):
        assert torch.equal(mine, theirs)
    assert not any(p.requires_grad for p in follower.parameters())


def test_cosine_schedule_runs_from_the_base_momentum_to_one():
    follower = MomentumCopy(net(), momentum=0.99, schedule="cosine")
    assert follower.momentum_at(Progress(1, 100)) == pytest.approx(0.99)
    assert follower.momentum_at(Progress(51, 100)) == pytest.approx(0.995)
    assert follower.momentum_at(Progress(100, 100)) == pytest.approx(1 - 0.01 * (math.cos(math.pi * 0.99) + 1) / 2)
    assert MomentumCopy(net(), momentum=0.9).momentum_at(Progress(99, 100)) == 0.9


def test_the_copy_is_checkpointed_with_its_owner():
    owner = torch.nn.Module()
    owner.live = net()
    owner.ema = MomentumCopy(owner.live, 0.5)
    with torch.no_grad():
        owner.live[0].weight.add_(2.0)
    owner.ema.update(owner.live)
    state = owner.state_dict()
    assert "ema.copy.0.weight" in state
    fresh = torch.nn.Module()
    fresh.live = net()
    fresh.ema = MomentumCopy(fresh.live, 0.5)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.ema.copy[0].weight, owner.ema.copy[0].weight)


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="momentum schedule 'step'"):
        MomentumCopy(net(), 0.9, schedule="step")
