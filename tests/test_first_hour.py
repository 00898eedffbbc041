"""What a new user meets in the first hour (issue 11): one run per directory, resume from any
path, logs that read well in a file, a summary at the end, and clear words for wrong files."""

import shutil
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from ssgen.checkpoint import list_checkpoints
from ssgen.eval.metrics import read_metrics
from small_runs import QUICK, TINY, last_checkpoint, set_options

pytestmark = pytest.mark.e2e  # every test here trains or runs a command

RUN = [*TINY, "trainer.steps=4", "trainer.checkpoint_every=2", "trainer.log_every=1"]


def train_args(run_dir, *overrides):
    return ["train", "--config", QUICK, *set_options([*RUN, f"run_dir={run_dir}", *overrides])]




# ---------------------------------------------------------------- one run, one directory
def test_a_second_fresh_run_into_a_run_directory_is_refused_with_the_choices(ssgen, tmp_path):
    run = tmp_path / "run"
    assert ssgen(*train_args(run))[0] == 0
    before = (run / "metrics.jsonl").read_text()
    code, _, err = ssgen(*train_args(run))
    assert code == 2 and err.count("\n") == 1
    assert f"{run} already holds a run" in err and "step-00000004.pt" in err
    assert f"ssgen train --resume {run}" in err and "--set run_dir=" in err and "--overwrite" in err
    assert (run / "metrics.jsonl").read_text() == before  # nothing of the old run was touched


def test_a_run_directory_in_use_by_another_process_is_refused_and_freed_when_it_ends(ssgen, tmp_path):
    """Two launches racing past the one-run check would interleave their files: the training
    process holds a lock on its directory (here: another process's, imitated by this one)."""
    import fcntl

    run = tmp_path / "run"
    run.mkdir()
    with open(run / ".lock", "a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = ssgen(*train_args(run))
        assert code == 2 and f"{run} is in use" in err and "--set run_dir=" in err
        assert not (run / "config.yaml").exists()
    assert ssgen(*train_args(run))[0] == 0  # the lock went with the process that held it
    assert ssgen("train", "--resume", run, "--set", "trainer.steps=6", "--force")[0] == 0  # and each run frees its own


def test_overwrite_starts_afresh_with_nothing_of_the_old_run_left(ssgen, tmp_path):
    run = tmp_path / "run"
    assert ssgen(*train_args(run, "trainer.steps=6"))[0] == 0
    code, _, err = ssgen(*train_args(run), "--overwrite")
    assert code == 0, err
    assert [r["step"] for r in read_metrics(run) if "loss/d" in r["metrics"]] == [1, 2, 3, 4]
    assert [p.name for p in list_checkpoints(run)] == ["step-00000002.pt", "step-00000004.pt"]
    events = EventAccumulator(str(run / "tb")).Reload()
    assert [e.step for e in events.Scalars("loss/d")] == [1, 2, 3, 4]


def test_train_without_a_config_lists_the_shipped_configs(ssgen):
    code, _, err = ssgen("train")
    assert code == 2 and err.count("\n") == 1
    assert "ssgen train needs --config FILE" in err and "quick.yaml" in err and "rotnet_shapes.yaml" in err


# ---------------------------------------------------------------- resume from wherever the run is
@pytest.mark.parametrize("how", ["absolute path", "other working directory", "moved directory"])
def test_resume_from_any_path(ssgen, tmp_path, monkeypatch, how):
    monkeypatch.chdir(tmp_path)
    assert ssgen(*train_args("runs/quick", "trainer.steps=6"))[0] == 0
    list_checkpoints(tmp_path / "runs/quick")[-1].unlink()  # as if killed after step 4
    target = tmp_path / "runs/quick"
    if how == "other working directory":
        (tmp_path / "elsewhere").mkdir()
        monkeypatch.chdir(tmp_path / "elsewhere")
        target = "../runs/quick"
    elif how == "moved directory":
        shutil.move(tmp_path / "runs/quick", tmp_path / "archive")
        target = tmp_path / "archive"
    code, _, err = ssgen("train", "--resume", target, "--no-progress")
    assert code == 0, err
    assert "resuming" in err and "from step 4" in err
    assert last_checkpoint(target)["step"] == 6


def test_resuming_a_finished_run_says_so_and_how_to_extend_it(ssgen, tmp_path):
    run = tmp_path / "run"
    assert ssgen(*train_args(run))[0] == 0
    events = sorted((run / "tb").iterdir())
    code, _, err = ssgen("train", "--resume", run)
    assert code == 0, err
    assert "is finished: 4 of 4 steps" in err and "--set trainer.steps=N --force" in err
    assert sorted((run / "tb").iterdir()) == events  # no empty event file
    code, _, err = ssgen("train", "--resume", run, "--set", "trainer.steps=6", "--force", "--no-progress")
    assert code == 0, err
    assert last_checkpoint(run)["step"] == 6


def test_tensorboard_after_resume_holds_each_step_once(ssgen, tmp_path):
    """Killed before its first checkpoint, and again after one: TensorBoard drops what the killed
    runs logged after their checkpoints, as metrics.jsonl does."""
    run = tmp_path / "run"
    assert ssgen(*train_args(run, "trainer.steps=3", "trainer.checkpoint_every=100"))[0] == 0
    for checkpoint in list_checkpoints(run):
        checkpoint.unlink()  # killed before any checkpoint: steps 1-3 logged, nothing saved
    assert ssgen("train", "--resume", run, "--no-progress", "--set", "trainer.steps=4",
                 "--set", "trainer.checkpoint_every=2", "--force")[0] == 0
    list_checkpoints(run)[-1].unlink()  # killed after step 2's checkpoint
    assert ssgen("train", "--resume", run, "--no-progress")[0] == 0
    steps = [e.step for e in EventAccumulator(str(run / "tb")).Reload().Scalars("loss/d")]
    assert steps == [1, 2, 3, 4]
    assert [r["step"] for r in read_metrics(run) if "loss/d" in r["metrics"]] == [1, 2, 3, 4]


# ---------------------------------------------------------------- logs and messages
def test_plain_lines_in_a_file_one_per_log_interval_then_a_summary(ssgen, tmp_path, extractor_file, private_cache):
    assert not sys.stderr.isatty()  # as in CI or a cluster job: stderr is captured
    code, _, err = ssgen(*train_args(tmp_path / "run", "trainer.steps=8", "trainer.log_every=2",
                                     "eval.probe.every=4", "eval.probe.train_size=32", "eval.probe.test_size=16",
                                     "eval.fid.every=4", "eval.fid.num_samples=16",
                                     f"eval.fid.extractor={extractor_file}"))
    assert code == 0, err
    lines = err.splitlines()
    assert "\r" not in err
    progress = [line for line in lines if line.startswith("step ") and "/8" in line]
    assert [line.split()[1] for line in progress] == ["2/8", "4/8", "6/8", "8/8"]
    assert all("steps/s" in line and "ETA" in line and "loss/d" in line for line in progress)
    evaluations = [line for line in lines if line.startswith(("step 4 ", "step 8 ")) and " evaluating " not in line]
    assert len(evaluations) == 4 and any("FD(tiny-fd)" in line for line in evaluations)
    assert any("probe/penultimate" in line and "% top-1" in line for line in evaluations)
    summary = lines[-1]
    assert summary.startswith("done: 8 steps") and "FD(tiny-fd)" in summary and "->" in summary
    assert "step-00000008.pt" in summary


def test_fid_and_probe_commands_report_progress(ssgen, tmp_path, extractor_file, private_cache):
    run = tmp_path / "run"
    assert ssgen(*train_args(run, "data.test_size=64"))[0] == 0
    code, out, err = ssgen("fid", run, "-n", 40, "--extractor", extractor_file)
    assert code == 0, err
    assert "FD(tiny-fd) real images 40/40" in err and "FD(tiny-fd) samples 40/40" in err
    code, out, err = ssgen("probe", run, "--train-size", 64, "--test-size", 32)
    assert code == 0, err
    assert "train features 64/64" in err and "test features 32/32" in err and "fitting the classifier" in err


def test_a_file_that_is_not_a_checkpoint_is_called_that(ssgen, tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("# not a checkpoint\n")
    code, _, err = ssgen("sample", notes)
    assert code == 2 and err.count("\n") == 1
    assert "is not a checkpoint at all (not a file written by torch.save)" in err
    assert "operand" not in err and "pickle" not in err.lower()


def test_report_over_a_folder_of_runs_labels_each_by_its_path(ssgen, tmp_path):
    for name in ("seed0", "seed1"):
        assert ssgen(*train_args(tmp_path / "runs" / "cpu" / name, f"seed={name[-1]}"))[0] == 0
    code, out, err = ssgen("report", tmp_path / "runs", "--out", tmp_path / "report")
    assert code == 0, err
    text = (tmp_path / "report" / "report.md").read_text()
    # Two seeds of one recipe are one group, named by their folder, each run listed by its path.
    assert "## Runs cpu (n=2)" in text and "cpu/seed0` (seed 0)" in text and "cpu/seed1` (seed 1)" in text
    code, _, err = ssgen("report", tmp_path / "report", "--out", tmp_path / "r2")
    assert code == 2 and "holds no runs" in err


# ---------------------------------------------------------------- a user's own folder
def shapes_as_folder(root, per_class: int, flat: bool = False):
    """Shapes images written as PNGs: one subfolder per class, or all in one flat folder."""
    from PIL import Image

    from ssgen.config import load_config
    from ssgen.data import build_dataset

    data = load_config(None, [f"data.train_size={10 * per_class}"]).data
    images, labels = build_dataset(data, "train").get(slice(None))
    for i, (image, label) in enumerate(zip(images, labels)):
        path = root / (f"{i}.png" if flat else f"class{int(label)}/{i}.png")
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(path)
    return root


def test_quick_on_a_folder_of_class_subfolders_without_a_split_holds_out_a_test_split(ssgen, tmp_path):
    photos = shapes_as_folder(tmp_path / "photos", per_class=8)
    run = tmp_path / "run"
    code, _, err = ssgen(*train_args(run, "data.name=folder", f"data.path={photos}", "data.train_size=0",
                                     "data.test_size=0", "eval.probe.every=4", "eval.probe.train_size=20",
                                     "eval.probe.test_size=10"))
    assert code == 0, err
    assert err.count("holding out 10% (10 of 80 images, class-balanced, seed 0)") == 1
    held_out = (run / "holdout.txt").read_text().split()
    assert len(held_out) == 10 and len({name.split("/")[0] for name in held_out}) == 10
    assert any("probe/penultimate" in r["metrics"] for r in read_metrics(run))


def test_quick_on_a_flat_folder_trains_with_the_probe_off_and_says_why(ssgen, tmp_path):
    photos = shapes_as_folder(tmp_path / "photos", per_class=4, flat=True)
    code, _, err = ssgen(*train_args(tmp_path / "run", "data.name=folder", f"data.path={photos}",
                                     "data.train_size=0", "data.test_size=0", "eval.probe.every=4"))
    assert code == 0, err
    assert err.count("probe off:") == 1 and f"{photos} has no class subfolders" in err
    assert not any("probe/" in k for r in read_metrics(tmp_path / "run") for k in r["metrics"])
