"""The trainer end to end on CPU: run directory layout, resume, config checks."""


import pytest
import torch
import yaml
from click.testing import CliRunner

from ssgen.cli import cli
from ssgen.config import load_config
from ssgen.eval.metrics import read_metrics
from ssgen.checkpoint import list_checkpoints, read_checkpoint
from ssgen.train.trainer import train

from small_runs import QUICK, SMALL, last_checkpoint, set_options, quiet_train

pytestmark = pytest.mark.e2e  # every test here trains or runs a command


def small_config(tmp_path, *overrides):
    return load_config(QUICK, [f"run_dir={tmp_path / 'run'}", *SMALL, *overrides])


def test_quick_config_end_to_end_leaves_a_complete_run_dir(tmp_path):
    cfg = load_config(QUICK, [f"run_dir={tmp_path / 'run'}", "trainer.steps=4", "trainer.log_every=2",
                              "trainer.sample_every=2", "trainer.checkpoint_every=2",
                              "eval.probe.every=4", "eval.probe.train_size=200", "eval.probe.test_size=100",
                              "eval.fid.every=0", "data.train_size=512", "data.test_size=100"])
    run = quiet_train(cfg)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["trainer"]["steps"] == 4 and saved["method"]["name"] == "ssgan"
    assert [p.name for p in list_checkpoints(run)] == ["step-00000002.pt", "step-00000004.pt"]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "samples" / "samples-00000004.png").exists()
    metrics = read_metrics(run)
    keys = set().union(*(r["metrics"] for r in metrics))
    assert {"loss/d", "loss/g", "rotation/acc_real", "rotation/acc_fake", "probe/penultimate"} <= keys

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(run / "tb")).Reload()
    assert "loss/d" in events.Tags()["scalars"] and "images/samples" in events.Tags()["images"]


def test_resume_continues_at_the_right_step_with_identical_state(tmp_path):
    cfg = small_config(tmp_path, "trainer.steps=6", "trainer.checkpoint_every=3", "trainer.keep_checkpoints=5")
    run = quiet_train(cfg)
    uninterrupted = last_checkpoint(run)
    list_checkpoints(run)[-1].unlink()  # as if the run died after step 3's checkpoint

    messages = []
    train(cfg, resume=True, bar=False, log=messages.append)
    assert any("from step 3" in m for m in messages)
    resumed = last_checkpoint(run)
    assert resumed["step"] == 6
    for key, value in uninterrupted["method"].items():
        assert torch.equal(value, resumed["method"][key]), key
    adam_a = uninterrupted["optimizers"]["d"]["state"]
    adam_b = resumed["optimizers"]["d"]["state"]
    assert all(torch.equal(adam_a[i]["exp_avg"], adam_b[i]["exp_avg"]) for i in adam_a)
    assert torch.equal(uninterrupted["rng"]["torch"], resumed["rng"]["torch"])


def test_resume_refuses_a_changed_config_unless_forced(tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", "--config", str(QUICK), "--no-progress", "--set", f"run_dir={run_dir}",
            *set_options(SMALL), "--set", "trainer.steps=2"]
    runner = CliRunner()
    assert runner.invoke(cli, args).exit_code == 0
    changed = runner.invoke(cli, ["train", "--resume", str(run_dir), "--set", "trainer.steps=4", "--no-progress"])
    assert changed.exit_code != 0
    assert "trainer.steps: 2 -> 4" in str(changed.exception)
    forced = runner.invoke(cli, ["train", "--resume", str(run_dir), "--set", "trainer.steps=4", "--force",
                                 "--no-progress"])
    assert forced.exit_code == 0, forced.output
    assert last_checkpoint(run_dir)["step"] == 4


def test_sample_command_writes_a_grid(tmp_path):
    run = quiet_train(small_config(tmp_path, "trainer.steps=1"))
    out = tmp_path / "grid.png"
    result = CliRunner().invoke(cli, ["sample", str(run), "-n", "9", "--out", str(out)])
    assert result.exit_code == 0, result.output
    from PIL import Image
    assert Image.open(out).size == (3 * 33 + 1, 3 * 33 + 1)


def test_gan_baseline_trains_through_the_same_loop(tmp_path):
    cfg = load_config(None, [f"run_dir={tmp_path / 'gan'}", "method.name=gan", *SMALL, "trainer.steps=2"])
    run = quiet_train(cfg)
    keys = set().union(*(r["metrics"] for r in read_metrics(run)))
    assert "loss/g" in keys and not any(k.startswith("rotation/") for k in keys)


def test_fd_in_training_keeps_the_best_checkpoint(tmp_path, private_cache, extractor_file):
    """FD through a user-named TorchScript extractor; the first evaluation comes before any step
    checkpoint, so best.pt must create the checkpoints folder itself."""
    run = quiet_train(small_config(tmp_path, "trainer.steps=4", "trainer.checkpoint_every=4", "eval.fid.every=2",
                                   "eval.fid.num_samples=32", f"eval.fid.extractor={extractor_file}"))
    fd = [r for r in read_metrics(run) if "fd/tiny-fd" in r["metrics"]]
    assert [r["step"] for r in fd] == [0, 2, 4] and fd[0]["protocol"]["metric"] == "FD(tiny-fd)"
    best = read_checkpoint(run / "checkpoints" / "best.pt")
    assert best["best"]["key"] == "fd/tiny-fd" and best["step"] in (2, 4)
