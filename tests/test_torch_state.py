"""torch's process-wide settings scoped to a run (ssgen/torch_state.py): set for the run, and as
they were after it, however it ended."""

import pytest
import torch

from ssgen.config import load_config
from ssgen.errors import ConfigError
from ssgen.torch_state import run_settings
from ssgen.train import trainer
from ssgen.train.trainer import train

from small_runs import QUICK, TINY  # TINY trains on 1 thread

OUTSIDE_THREADS = 3  # what no run here uses


def settings_now():
    return torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.get_rng_state()


@pytest.fixture
def outside():
    """The test's own settings around the run (3 threads, deterministic off, the RNG seeded with
    1234), as (threads, deterministic, RNG state); the process's own are put back after the test."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    rng = torch.get_rng_state()
    torch.set_num_threads(OUTSIDE_THREADS)
    torch.use_deterministic_algorithms(False)
    torch.manual_seed(1234)
    yield settings_now()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic)
    torch.set_rng_state(rng)


def assert_as(settings, expected):
    assert settings[:2] == expected[:2]
    assert torch.equal(settings[2], expected[2]), "the global RNG state"


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_run_settings_hold_inside_the_block_and_are_put_back_after_an_error(outside, error):
    seeded = torch.manual_seed(5).get_state()
    torch.set_rng_state(outside[2])
    with pytest.raises(error):
        with run_settings(1, True, seed=5):
            assert_as(settings_now(), (1, True, seeded))
            torch.rand(3)  # the run draws
            raise error
    assert_as(settings_now(), outside)
    with run_settings(None, False, seed=5):  # no thread count asked for: they stay as they are
        assert torch.get_num_threads() == OUTSIDE_THREADS
    assert_as(settings_now(), outside)


def fail_while_building(*args):
    raise ConfigError("a method that cannot be built")


@pytest.mark.parametrize("ending", ["finished", "error in a step", "ctrl-c", "error while building"])
def test_a_training_run_leaves_the_process_as_it_found_it(outside, tmp_path, monkeypatch, ending):
    during = []
    checked_values = trainer.Trainer.checked_values

    def watched(self, logs):  # the first step's check, inside the run
        during.append(settings_now()[:2])
        if ending == "error in a step":
            raise RuntimeError("a step that fails")
        if ending == "ctrl-c":
            raise KeyboardInterrupt  # a second Ctrl-C: the abort that writes no checkpoint
        return checked_values(self, logs)

    monkeypatch.setattr(trainer.Trainer, "checked_values", watched)
    if ending == "error while building":  # after the run's settings are made, before its first step
        monkeypatch.setattr(trainer, "build_method", fail_while_building)
    cfg = load_config(QUICK, [f"run_dir={tmp_path / 'run'}", *TINY, "trainer.steps=2", "trainer.deterministic=true"])
    if ending == "finished":
        train(cfg, bar=False, log=lambda message: None)
    else:
        with pytest.raises((RuntimeError, KeyboardInterrupt, ConfigError)):
            train(cfg, bar=False, log=lambda message: None)
    # The run's own settings held while it trained (1 thread, deterministic), and no longer.
    assert during[:1] == ([] if ending == "error while building" else [(1, True)])
    assert_as(settings_now(), outside)
