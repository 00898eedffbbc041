"""A run talks from its first second, also into a file: before step 1 it says what data it loads
and how long that took, and before each evaluation what it measures, on how many images and when
it should end; a long phase gives a line at least every 15 s."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ssgen.console import Heartbeat
from small_runs import QUICK, TINY, set_options

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.e2e
def test_a_run_logged_to_a_file_says_what_it_loads_and_evaluates_before_step_1(tmp_path, extractor_file):
    """`ssgen train > FILE 2>&1`, as a cluster job runs it. FD at the papers' 10,000 samples on a
    CPU also says, once, what a round of evaluations costs and which --set makes it cheaper."""
    overrides = [*TINY, f"run_dir={tmp_path / 'run'}", "trainer.steps=2", "trainer.log_every=1",
                 "trainer.device=cpu", "eval.fid.every=2", "eval.fid.num_samples=10000",
                 f"eval.fid.extractor={extractor_file}", "eval.probe.every=2",
                 "eval.probe.train_size=32", "eval.probe.test_size=16"]
    log = tmp_path / "train.log"
    with open(log, "w") as out:
        code = subprocess.call([sys.executable, "-m", "ssgen", "train", "--config", str(QUICK),
                                *set_options(overrides)], stdout=out, stderr=subprocess.STDOUT,
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT),
                                              "SSGEN_CACHE": str(tmp_path / "cache")})
    lines = log.read_text().splitlines()
    assert code == 0, "\n".join(lines)
    before = lines[:next(i for i, line in enumerate(lines) if line.startswith("step 1/2"))]
    said = "\n".join(before)
    assert before[0] == "data: loading shapes (train split) ..."
    assert "data: 64 train images, 32x32, 10 classes, in memory, " in said
    assert "data: loading the images of the evaluations (fid, probe) ..." in said
    assert "data: evaluations ready, " in said and "FD(tiny-fd) of 10,000 samples against 64 train images" in said
    note = next(line for line in before if line.startswith("note: on this CPU one round of evaluations"))
    assert "at step 0 and every 2 steps" in note and "--set eval.fid.num_samples=2000" in note
    assert "eval.probe" not in note  # its 32 and 16 images are cheap already
    starts = [line for line in before if line.startswith("step 0  evaluating")]
    assert [line.split("evaluating ")[1].split(" ")[0] for line in starts] == ["FD(tiny-fd)", "linear"]
    assert all("ETA " in line for line in starts)
    assert "step 0  evaluating linear probe (penultimate) on 32 train + 16 test images, ETA " in said
    for start, result in (("FD(tiny-fd) of", "step 0  FD(tiny-fd) "), ("linear probe", "step 0  probe/penultimate ")):
        first = next(i for i, line in enumerate(before) if start in line)
        assert any(line.startswith(result) and line.endswith("s)") for line in before[first + 1:]), said


def test_a_heartbeat_says_how_long_a_phase_has_run_and_what_is_left_until_it_ends():
    lines = []
    with Heartbeat("decoding", lines.append, every_s=0.05, eta=100):
        time.sleep(0.18)
    count = len(lines)
    time.sleep(0.12)
    assert len(lines) == count >= 2  # a line every 0.05 s while it ran, none after
    assert all(line.startswith("decoding: 0s so far, about 1m40s left") for line in lines)
