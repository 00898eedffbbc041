"""Crash safety (issue #6): atomic checkpoints, kill -9 then --resume, corrupt-checkpoint fallback,
non-finite losses, unwritable or full disks, SIGTERM/Ctrl-C, and weights-only checkpoint loading.

Trainings here are tiny (width 8 nets, batch 8, one CPU thread, deterministic algorithms) so the
whole module runs in about half a minute on two cores.
"""

import builtins
import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssgen.config import load_config
from ssgen.errors import CheckpointError
from ssgen.methods.ssgan import SSGAN
from ssgen import checkpoint as ckpt
from ssgen.checkpoint import list_checkpoints, read_checkpoint
from ssgen.train.trainer import Stopped, train

from small_runs import QUICK, assert_error_line, final_weights, last_checkpoint, quiet_train, set_options
from small_runs import TINY as TINY_QUICK

TINY = [*TINY_QUICK, "trainer.deterministic=true", "trainer.log_every=1"]


def tiny_args(run_dir, *overrides):
    return [f"run_dir={run_dir}", *TINY, *overrides]


def tiny_config(run_dir, *overrides):
    return load_config(QUICK, tiny_args(run_dir, *overrides))


def train_cli_args(run_dir, *overrides):
    return ["train", "--config", QUICK, "--no-progress", *set_options(tiny_args(run_dir, *overrides))]


def assert_same_tensors(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


class LossHook:
    """Replace SS-GAN's G loss by `change(loss, step)`; the G loss is computed once per step."""

    def __init__(self, monkeypatch, change):
        self.step, original = 0, SSGAN.g_loss

        def g_loss(method, fake, *args):
            self.step += 1
            loss, logs = original(method, fake, *args)
            loss = change(loss, self.step)
            logs["loss/g"] = loss.detach()
            return loss, logs

        monkeypatch.setattr(SSGAN, "g_loss", g_loss)


# ---------------------------------------------------------------- atomic writes, last K kept
def test_checkpoint_write_is_temp_fsync_rename_and_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "step-00000001.pt"
    ckpt.atomic_save({"format": 1, "method": {"w": torch.ones(3)}}, path)
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("replace", Path(a).name)),
                                                      real_replace(a, b))[1])
    ckpt.atomic_save({"format": 1, "method": {"w": torch.full((3,), 2.0)}}, path)
    assert events[:2] == ["fsync", ("replace", f".step-00000001.pt.{os.getpid()}.tmp")]  # durable, then renamed
    assert torch.equal(read_checkpoint(path)["method"]["w"], torch.full((3,), 2.0))

    real_save = torch.save

    def save_half_then_fail(state, f):
        real_save(state, f)
        f.truncate(10)  # a write cut short
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(CheckpointError, match="cannot write checkpoint .*Input/output error"):
        ckpt.atomic_save({"format": 1, "method": {"w": torch.zeros(3)}}, path)
    assert torch.equal(read_checkpoint(path)["method"]["w"], torch.full((3,), 2.0))
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_only_the_last_k_checkpoints_are_kept(tmp_path):
    for step in range(1, 7):
        ckpt.save_checkpoint(tmp_path, step, {"format": 1, "step": step, "method": {}}, keep=3)
    assert [p.name for p in list_checkpoints(tmp_path)] == [f"step-0000000{s}.pt" for s in (4, 5, 6)]


# ---------------------------------------------------------------- kill -9, then --resume
def wait_for_step(run_dir: Path, proc: subprocess.Popen, step: int, timeout: float = 60.0) -> int:
    """Poll metrics.jsonl (one record per step) until it reaches `step`; the last step seen."""
    deadline = time.monotonic() + timeout
    metrics = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"training ended before step {step}: {proc.stderr.read()}"
        if metrics.exists():
            lines = metrics.read_text().splitlines()
            done = [json.loads(line)["step"] for line in lines[-2:] if line.endswith("}")]
            if done and max(done) >= step:
                return max(done)
        time.sleep(0.005)
    raise AssertionError(f"no step {step} within {timeout} s")


@pytest.mark.e2e
def test_sigkill_at_a_random_step_then_resume_ends_with_the_uninterrupted_weights(ssgen, tmp_path, monkeypatch, capsys):
    overrides = ["trainer.steps=30", "trainer.checkpoint_every=4"]
    reference = quiet_train(tiny_config(tmp_path / "uninterrupted", *overrides))

    kill_at = random.Random(6).randint(5, 26)  # seeded: the same "random" step on every run
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "ssgen", *train_cli_args(run_dir, *overrides)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seen = wait_for_step(run_dir, proc, kill_at)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    last_saved = last_checkpoint(run_dir)["step"]
    assert last_saved < 30  # killed mid-run

    code, _, err = ssgen("train", "--resume", run_dir, "--no-progress")
    assert code == 0, err
    assert f"from step {last_saved}" in err and seen - last_saved <= 4  # lost: the steps since the last checkpoint
    final = list_checkpoints(run_dir)[-1]
    assert read_checkpoint(final)["step"] == 30
    assert_same_tensors(read_checkpoint(final)["method"], final_weights(reference))
    # metrics.jsonl: what the killed run logged past its checkpoint was dropped, then logged again
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if any(key.startswith("loss/") for key in r["metrics"])]
    assert steps == list(range(1, 31))


@pytest.mark.e2e
def test_killed_before_the_first_checkpoint_resume_starts_over(tmp_path):
    cfg = tiny_config(tmp_path / "run", "trainer.steps=4", "trainer.checkpoint_every=4")
    run = quiet_train(cfg)
    reference = final_weights(run)
    for path in list_checkpoints(run):
        path.unlink()  # as if killed before step 4's checkpoint: config.yaml, metrics, no checkpoint
    messages = []
    train(cfg, resume=True, bar=False, log=messages.append)
    assert any("starting from step 0" in m for m in messages), messages
    assert_same_tensors(final_weights(run), reference)


# ---------------------------------------------------------------- corrupt latest checkpoint
@pytest.mark.parametrize("damage", ["truncated", "zero-byte", "garbage"])
@pytest.mark.e2e
def test_corrupt_latest_checkpoint_is_reported_and_resume_falls_back(ssgen, tmp_path, monkeypatch, capsys, damage):
    run_dir = tmp_path / "run"
    overrides = ["trainer.steps=6", "trainer.checkpoint_every=3"]
    code, _, err = ssgen(*train_cli_args(run_dir, *overrides))
    assert code == 0, err
    latest = list_checkpoints(run_dir)[-1]
    uninterrupted = read_checkpoint(latest)["method"]
    data = latest.read_bytes()
    latest.write_bytes({"truncated": data[: len(data) // 2], "zero-byte": b"",
                        "garbage": random.Random(0).randbytes(len(data))}[damage])

    code, _, err = ssgen("train", "--resume", run_dir, "--no-progress")
    assert code == 0, err
    assert f"warning: checkpoint '{latest}' is unreadable" in err and "falling back" in err
    assert "from step 3 (step-00000003.pt)" in err
    assert_same_tensors(read_checkpoint(latest)["method"], uninterrupted)  # rewritten by the resumed run


# ---------------------------------------------------------------- non-finite losses
@pytest.mark.e2e
def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(ssgen, tmp_path, monkeypatch, capsys):
    LossHook(monkeypatch, lambda loss, step: loss * float("nan") if step == 6 else loss)
    run_dir = tmp_path / "run"
    code, _, err = ssgen(*train_cli_args(run_dir, "trainer.steps=8",
                                                              "trainer.checkpoint_every=4"))
    assert_error_line(code, err, "non-finite loss at step 6", "loss/g=nan",
                      f"last good checkpoint {run_dir / 'checkpoints' / 'step-00000004.pt'}",
                      "trainer.nonfinite=skip")
    assert [p.name for p in list_checkpoints(run_dir)] == ["step-00000004.pt"]
    state = final_weights(run_dir)
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.e2e
def test_nonfinite_loss_is_skipped_and_counted_with_nonfinite_skip(tmp_path, monkeypatch):
    LossHook(monkeypatch, lambda loss, step: loss * float("inf") if step in (2, 5) else loss)
    run = quiet_train(tiny_config(tmp_path / "run", "trainer.steps=6", "trainer.checkpoint_every=6",
                                  "trainer.nonfinite=skip"))
    state = final_weights(run)
    assert int(state["skipped_steps"]) == 2
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in records if "perf/skipped_steps" in r["metrics"]][-1]["metrics"]["perf/skipped_steps"] == 2


# ---------------------------------------------------------------- unwritable run directory, full disk
@pytest.mark.e2e
def test_run_dir_that_cannot_be_created_fails_before_training(ssgen, tmp_path, monkeypatch, capsys):
    (tmp_path / "a_file").write_text("not a folder")  # root ignores chmod; a path under a file always fails
    run_dir = tmp_path / "a_file" / "run"
    code, _, err = ssgen(*train_cli_args(run_dir))
    assert_error_line(code, err, f"run directory '{run_dir}' is not writable")
    assert err.count("\n") == 1


@pytest.mark.e2e
def test_full_disk_at_start_fails_before_training(ssgen, tmp_path, monkeypatch, capsys):
    real_open = builtins.open

    def full_disk_open(file, mode="r", *args, **kwargs):
        if "w" in mode and Path(file).name == ".write-probe":
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk_open)
    started = []
    monkeypatch.setattr(SSGAN, "train_step", lambda *a: started.append(1))
    code, _, err = ssgen(*train_cli_args(tmp_path / "run"))
    assert_error_line(code, err, "is not writable: No space left on device")
    assert not started and not (tmp_path / "run" / "config.yaml").exists()


@pytest.mark.e2e
def test_full_disk_at_checkpoint_time_keeps_the_previous_checkpoint(ssgen, tmp_path, monkeypatch, capsys):
    real_save, saves = torch.save, []

    def save_until_the_disk_fills(state, f, *args, **kwargs):
        saves.append(1)
        if len(saves) >= 2:  # the second checkpoint finds the disk full halfway through
            f.write(b"PK\x03\x04 partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(state, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    run_dir = tmp_path / "run"
    code, _, err = ssgen(*train_cli_args(run_dir, "trainer.steps=8",
                                                              "trainer.checkpoint_every=4"))
    assert_error_line(code, err, "cannot write checkpoint", "step-00000008.pt", "No space left on device")
    assert err.count("error:") == 1
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-00000004.pt"]
    assert read_checkpoint(run_dir / "checkpoints" / "step-00000004.pt")["step"] == 4


# ---------------------------------------------------------------- SIGTERM / Ctrl-C
@pytest.mark.e2e
def test_sigterm_writes_a_final_checkpoint_and_exits_with_143(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "ssgen",
                             *train_cli_args(run_dir, "trainer.steps=100000", "trainer.checkpoint_every=100000")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_step(run_dir, proc, 3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err  # a scheduler tells a preemption from an end
    assert "Traceback" not in err
    (final,) = list_checkpoints(run_dir)
    step = read_checkpoint(final)["step"]
    assert step >= 3 and f"stopped at step {step}; checkpoint {final}" in err
    assert f"ssgen train --resume {run_dir}" in err and f"run directory: {run_dir}" in out


@pytest.mark.e2e
def test_ctrl_c_writes_a_final_checkpoint_and_resume_continues(tmp_path, monkeypatch):
    def interrupt_at_step_3(loss, step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # handled between steps, like a Ctrl-C
        return loss

    LossHook(monkeypatch, interrupt_at_step_3)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where pytest itself runs in the background
    cfg = tiny_config(tmp_path / "run", "trainer.steps=6", "trainer.checkpoint_every=100")
    messages = []
    with pytest.raises(Stopped) as stopped:
        train(cfg, bar=False, log=messages.append)
    run = stopped.value.run_dir
    assert stopped.value.exit_status == 130
    assert [read_checkpoint(p)["step"] for p in list_checkpoints(run)] == [3]
    assert any("stopped at step 3" in m for m in messages)
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored
    quiet_train(cfg, resume=True)
    assert last_checkpoint(run)["step"] == 6


@pytest.mark.e2e
def test_a_second_ctrl_c_aborts_at_once(ssgen, tmp_path, monkeypatch, capsys):
    def interrupt_twice_at_step_3(loss, step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # the user means it
        return loss

    LossHook(monkeypatch, interrupt_twice_at_step_3)
    before = signal.getsignal(signal.SIGINT)
    run_dir = tmp_path / "run"
    code, _, err = ssgen(*train_cli_args(run_dir, "trainer.steps=6",
                                                              "trainer.checkpoint_every=2"))
    assert code == 130 and err.strip().splitlines()[-1] == "aborted" and "Traceback" not in err
    (checkpoint,) = list_checkpoints(run_dir)
    assert read_checkpoint(checkpoint)["step"] == 2
    # What is lost and how to go on, in a line before "aborted"
    (said,) = [line for line in err.splitlines() if line.startswith("aborted at")]
    assert said == (f"aborted at step 3: step 3 lost; continue from the last checkpoint, step 2 ({checkpoint}) "
                    f"with: ssgen train --resume {run_dir}")
    assert signal.getsignal(signal.SIGINT) is before


# ---------------------------------------------------------------- weights-only loading
class RunsCode:
    """Unpickling this object would call exec(): what a malicious checkpoint could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


@pytest.mark.e2e
def test_a_checkpoint_holding_a_pickled_object_is_refused_and_never_runs(ssgen, tmp_path, monkeypatch, capsys):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"format": 1, "step": 1, "method": {"w": torch.ones(1)}, "x": RunsCode(marker)}, evil)

    with pytest.raises(CheckpointError, match="unreadable"):
        read_checkpoint(evil)
    code, _, err = ssgen("sample", evil, "--out", tmp_path / "s.png")
    assert_error_line(code, err, f"checkpoint '{evil}' is unreadable")
    assert err.count("\n") == 1

    # As the newest checkpoint of a run, it is skipped like any unreadable one.
    run = quiet_train(tiny_config(tmp_path / "run", "trainer.steps=2", "trainer.checkpoint_every=2"))
    evil.rename(run / "checkpoints" / "step-00000003.pt")
    messages = []
    path, state = ckpt.latest_readable(run, warn=messages.append)
    assert path.name == "step-00000002.pt" and "step-00000003.pt' is unreadable" in messages[0]
    assert not marker.exists()


@pytest.mark.e2e
def test_trainer_checkpoints_hold_only_tensors_and_plain_containers(tmp_path):
    run = quiet_train(tiny_config(tmp_path / "run", "trainer.steps=1"))

    def plain(value):
        if isinstance(value, dict):
            return all(isinstance(k, (str, int)) and plain(v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return all(plain(v) for v in value)
        return value is None or isinstance(value, (torch.Tensor, str, int, float, bool))

    assert plain(torch.load(list_checkpoints(run)[-1], weights_only=True))

