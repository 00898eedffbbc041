"""trainer.threads: the automatic choice on a shared CPU, the warnings, the pace watch, and the
thread count as a run-time setting on --resume (issue 27)."""

import pytest
import torch
import yaml

from ssgen import threads
from ssgen.cli import resume_config
from ssgen.config import load_config, to_dict
from ssgen.errors import ConfigError
from ssgen.threads import Pace, auto_threads, choose_threads
from small_runs import QUICK, TINY


@pytest.fixture
def two_cores(monkeypatch):
    """A 2-core machine whose other work is set by the test: {"busy": cores' worth}."""
    load = {"busy": 0.0}
    monkeypatch.setattr(threads, "physical_cores", lambda: 2)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda seconds=0: load["busy"])
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    return load


@pytest.mark.parametrize("busy, chosen", [(0.1, 2), (0.9, 1), (1.4, 1), (6.0, 1)])
def test_auto_takes_the_cores_other_work_leaves_at_least_one(two_cores, busy, chosen):
    two_cores["busy"] = busy
    count, why = auto_threads(deterministic=False)
    assert count == chosen and f"{busy:.1f} busy" in why


def test_auto_is_the_physical_cores_under_deterministic_and_is_shared_by_torchrun(two_cores, monkeypatch):
    two_cores["busy"] = 1.5  # ignored: a deterministic run computes alike whatever the load
    assert auto_threads(deterministic=True)[0] == 2
    two_cores["busy"] = 0.0
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert auto_threads(deterministic=False)[0] == 1


def test_choose_threads_says_what_it_chose_and_warns_above_the_cpus(two_cores):
    said, threads = [], torch.get_num_threads()
    assert choose_threads(0, False, said.append) == 2
    assert said[-1].startswith("CPU threads: 2 (2 physical cores") and "trainer.threads=N" in said[-1]
    assert choose_threads(64, False, said.append) == 64
    assert said[-1].startswith("warning: trainer.threads=64 is more than the 2 CPUs")
    said.clear()
    assert choose_threads(2, False, said.append) == 2
    assert said == []
    assert torch.get_num_threads() == threads  # chosen only: the run sets them (ssgen.torch_state)


def test_the_pace_warns_once_when_steps_fall_far_below_the_first():
    pace = Pace(2, "ssgen train --resume runs/quick")
    assert pace.check(12.0, 25) is None  # the first window: the reference
    assert pace.check(0.5, 50, clean=False) is None  # an evaluation ran in it: slow by its nature
    assert pace.check(6.0, 75) is None  # 2x: within what a busy moment does
    warning = pace.check(2.0, 100)
    assert warning.startswith("warning: 2 steps/s at step 100, 6x below the first steps' 12")
    assert "ssgen train --resume runs/quick --set trainer.threads=1" in warning
    assert pace.check(1.0, 125) is None  # once
    single = Pace(1, "ssgen train --resume r")  # one thread already: fewer cannot help
    single.check(12.0, 25)
    warning = single.check(2.0, 50)
    assert "other work is likely taking the CPU" in warning and "--set trainer.threads" not in warning


def test_threads_may_change_on_resume_without_force(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    saved = load_config(QUICK, [f"run_dir={run}"])
    (run / "config.yaml").write_text(yaml.safe_dump(to_dict(saved), sort_keys=False))
    assert resume_config(run, None, ["trainer.threads=1"], force=False).trainer.threads == 1
    with pytest.raises(ConfigError, match=r"\(trainer.steps: 560 -> 600\); pass --force"):
        resume_config(run, None, ["trainer.threads=1", "trainer.steps=600"], force=False)


@pytest.mark.e2e
def test_a_cpu_run_on_auto_threads_says_its_choice(ssgen, tmp_path):
    code, _, err = ssgen("train", "--config", QUICK, "--no-progress",
                         *[x for o in [*TINY, "trainer.steps=2", "trainer.threads=0", "trainer.device=cpu",
                                       f"run_dir={tmp_path / 'run'}"] for x in ("--set", o)])
    assert code == 0, err
    assert "CPU threads: " in err and "physical cores" in err
