"""What the quick demo shows: the step-0 floor, held-out rotation accuracy, FD(shapes) with no
flag, and evaluations that watch the training without changing it."""

import pytest
import torch

from ssgen.config import load_config
from ssgen.eval.fid import configured_extractor
from ssgen.eval.metrics import read_metrics
from small_runs import QUICK, TINY, final_weights, set_options

RUN = [*TINY, "trainer.steps=4", "trainer.checkpoint_every=2", "trainer.log_every=1"]
EVALS = ["eval.fid.every=2", "eval.fid.num_samples=16", "eval.probe.every=2", "eval.probe.train_size=32",
         "eval.probe.test_size=16", "eval.tasks.every=2", "eval.tasks.test_size=16"]


def train(ssgen, run_dir, *overrides, config=QUICK):
    code, out, err = ssgen("train", "--config", config, *set_options([*RUN, f"run_dir={run_dir}", *overrides]))
    assert code == 0, err
    return err


@pytest.fixture(autouse=True)
def cache_of_its_own(private_cache):
    """Every test here measures FD with statistics it computed itself."""


@pytest.mark.e2e
def test_evaluations_watch_the_training_without_changing_it(ssgen, tmp_path):
    """FD (its extractor is built with random init before its weights load), the probe and the
    held-out tasks draw no random number of the training stream and change no weight."""
    train(ssgen, tmp_path / "watched", *EVALS)
    train(ssgen, tmp_path / "alone")
    watched, alone = final_weights(tmp_path / "watched"), final_weights(tmp_path / "alone")
    assert watched.keys() == alone.keys()
    for name, tensor in alone.items():
        assert torch.equal(watched[name], tensor), name


@pytest.mark.e2e
def test_a_fresh_run_is_evaluated_at_step_0_the_floor_and_a_resume_is_not_again(ssgen, tmp_path):
    run = tmp_path / "run"
    err = train(ssgen, run, *EVALS)
    assert "step 0  FD(shapes)" in err and "step 0  rotation/acc_test" in err and "step 0  probe/penultimate" in err
    steps = [record["step"] for record in read_metrics(run) if "probe/penultimate" in record["metrics"]]
    assert steps == [0, 2, 4]
    code, _, err = ssgen("train", "--resume", run, "--set", "trainer.steps=6", "--force")
    assert code == 0, err
    assert "step 0 " not in err
    steps = [record["step"] for record in read_metrics(run) if "probe/penultimate" in record["metrics"]]
    assert steps == [0, 2, 4, 6]


@pytest.mark.e2e
def test_rotation_is_scored_on_every_held_out_image_in_all_four_rotations(ssgen, tmp_path):
    train(ssgen, tmp_path / "run", *EVALS)
    records = [r for r in read_metrics(tmp_path / "run") if "rotation/acc_test" in r["metrics"]]
    assert [r["step"] for r in records] == [0, 2, 4]
    for record in records:
        # 16 images x 4 rotations: accuracy is a multiple of 1/64
        accuracy = record["metrics"]["rotation/acc_test"]
        assert 0 <= accuracy <= 1 and abs(accuracy * 64 - round(accuracy * 64)) < 1e-6
        assert record["protocol"]["test_size"] == 16 and record["protocol"]["split"] == "test"


@pytest.mark.e2e
def test_held_out_tasks_on_a_method_without_scorable_tasks_is_a_note(ssgen, tmp_path):
    err = train(ssgen, tmp_path / "run", "eval.tasks.every=2", config=QUICK.parent / "gan_shapes.yaml")
    assert "no held-out task figures" in err


def test_the_fd_extractor_follows_the_data_unless_named():
    assert configured_extractor(load_config(QUICK)) == "shapes"
    assert configured_extractor(load_config(QUICK, ["data.name=cifar10"])) == "inception-v3-compat"
    assert configured_extractor(load_config(QUICK, ["eval.fid.extractor=x.pt"])) == "x.pt"


@pytest.mark.e2e
def test_ssgen_fid_on_a_shapes_run_needs_no_flag(ssgen, tmp_path):
    train(ssgen, tmp_path / "run")
    code, out, err = ssgen("fid", tmp_path / "run", "-n", "32")
    assert code == 0, err
    assert out.startswith("FD(shapes): ")
    assert float(out.split()[1]) > 0
