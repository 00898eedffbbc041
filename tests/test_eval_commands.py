"""`ssgen fid` and `ssgen probe` on a trained run: where their inputs come from."""


import pytest
from click.testing import CliRunner
from PIL import Image

from ssgen.cli import cli
from ssgen.config import load_config

from small_runs import QUICK, quiet_train
from small_runs import SMALL as SMALL_QUICK

pytestmark = pytest.mark.e2e  # every test here trains or runs a command

SMALL = [*SMALL_QUICK, "trainer.steps=2"]


@pytest.fixture
def run(tmp_path, private_cache, extractor_file):
    cfg = load_config(QUICK, [f"run_dir={tmp_path / 'run'}", *SMALL, f"eval.fid.extractor={extractor_file}"])
    return quiet_train(cfg)


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_fid_loads_a_torchscript_extractor_only_when_named_on_the_command_line(run, extractor_file):
    refused = invoke("fid", run, "-n", 32)
    assert isinstance(refused.exception, Exception) and "--extractor" in str(refused.exception)
    assert str(extractor_file) in str(refused.exception)
    named = invoke("fid", run, "-n", 32, "--extractor", extractor_file)
    assert named.exit_code == 0, named.output
    assert "FD(tiny-fd):" in named.output


def colour_folder(root, count):
    for name, colour in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (root / name).mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (32, 32), colour).save(root / name / f"{i}.png")
    return root


def test_probe_data_path_on_a_shapes_run_reads_that_folder(run, tmp_path):
    for split, count in (("train", 12), ("test", 6)):
        colour_folder(tmp_path / "own" / split, count)
    result = invoke("probe", run, "--data-path", tmp_path / "own", "--train-size", 20, "--test-size", 10)
    assert result.exit_code == 0, result.output
    assert "own" in result.output and "100.00% ± 0.00 top-1" in result.output  # solid colours: separable


def test_fid_says_when_the_extractor_knows_other_images_and_the_real_set_is_small(run, tmp_path):
    own = colour_folder(tmp_path / "own" / "train", 6).parent
    colour_folder(own / "test", 2)
    result = invoke("fid", run, "--extractor", "shapes", "--data-path", own, "-n", 200)
    assert result.exit_code == 0, result.output
    assert "FD(shapes)'s network was trained on the shapes data alone" in result.output
    assert "note: 12 real images against 200 samples" in result.output
    quiet = invoke("fid", run, "--extractor", "shapes", "-n", 32)  # the run's own shapes, as many real images
    assert quiet.exit_code == 0, quiet.output
    assert "warning" not in quiet.output and "note" not in quiet.output


def test_fid_no_ema_measures_g_itself_and_says_so(run, extractor_file):
    import json

    from ssgen.eval.metrics import read_metrics

    ema = invoke("fid", run, "-n", 32, "--extractor", extractor_file)
    raw = invoke("fid", run, "-n", 32, "--extractor", extractor_file, "--no-ema")
    assert ema.exit_code == 0 and raw.exit_code == 0, raw.output
    value = lambda result: float(result.output.split("FD(tiny-fd):")[1].split()[0])  # noqa: E731
    assert value(ema) != value(raw)  # two steps in, the EMA copy is still mostly G's initialisation
    protocols = [record["protocol"] for record in read_metrics(run) if "fd/tiny-fd" in record["metrics"]][-2:]
    assert "generator" not in protocols[0] and protocols[1]["generator"] == "G, no EMA"
    assert json.loads(raw.output.split("protocol: ")[1].splitlines()[0])["generator"] == "G, no EMA"


def test_fid_no_ema_on_a_run_without_one_is_a_clear_error(tmp_path, extractor_file):
    cfg = load_config(QUICK, [f"run_dir={tmp_path / 'plain'}", *SMALL, "method.ema_decay=0",
                              f"eval.fid.extractor={extractor_file}"])
    run = quiet_train(cfg)
    result = invoke("fid", run, "-n", 32, "--extractor", extractor_file, "--no-ema")
    assert result.exit_code != 0 and "no EMA generator" in str(result.exception or result.output)
