"""examples/library.py, the README's library example, runs as a user runs it: on its own, and
with a trained run directory, whose D it probes and whose G it samples."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ssgen
from small_runs import QUICK, TINY

ROOT = Path(__file__).resolve().parents[1]


def run_example(*args):
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "library.py"), *map(str, args)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.e2e
def test_the_library_example_trains_its_own_encoder_and_probes_a_trained_run(ssgen_cli, tmp_path):
    run = tmp_path / "run"
    code, _, err = ssgen_cli("train", "--config", QUICK, *[x for o in [*TINY, "trainer.steps=2", f"run_dir={run}"]
                                                           for x in ("--set", o)])
    assert code == 0, err
    lines = run_example(run).splitlines()
    assert lines[0].startswith("rotation accuracy ") and "% top-1 on 256 test images" in lines[0]
    assert lines[1].startswith("ssgan at step 2: its D's features ") and lines[1].endswith("% top-1; 16 samples")


def test_the_public_api_is_what_the_package_lists_and_documents():
    for name in ssgen.__all__:
        public = getattr(ssgen, name)
        assert not callable(public) or public.__doc__, name  # each public function says what it does
    with pytest.raises(AttributeError, match="no attribute 'build_dataset'"):
        ssgen.build_dataset  # noqa: B018  (the attribute lookup is what must fail)


@pytest.fixture
def ssgen_cli(ssgen):
    return ssgen
