"""`ssgen report` from two small fake runs, and the measurement commands' --help."""

import json

import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from ssgen.eval.commands import COMMANDS
from ssgen.eval.metrics import append_metrics
from ssgen.eval.report import write_report

FD = {"metric": "FD(cifar10-fd-public)", "num_fake": 1000, "num_real": 1000, "split": "train",
      "dataset": "cifar10", "extractor": "cifar10-fd-public", "weights": "x"}
PROBE = {"metric": "linear probe top-1", "train_size": 500, "test_size": 500}


def fake_run(root, name, fd_protocol, forgetting):
    run = root / name
    (run / "samples").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"method": {"name": "ssgan"}, "data": {"name": "cifar10"},
                                                     "trainer": {"steps": 300}}))
    for step in (100, 200, 300):
        append_metrics(run, step, {"loss/d": 1.0, "rotation/acc_real": step / 400, "rotation/acc_fake": 0.5})
        append_metrics(run, step, {"fd/cifar10-fd-public": 100.0 - step / 10}, fd_protocol)
        append_metrics(run, step, {"probe/penultimate": 0.5 - forgetting * step / 1000}, PROBE)
        Image.new("RGB", (8, 8)).save(run / "samples" / f"samples-{step:08d}.png")
    return run


def test_report_writes_plots_table_and_samples(tmp_path):
    runs = [fake_run(tmp_path, "gan", FD, forgetting=1.0), fake_run(tmp_path, "ssgan", FD, forgetting=0.0)]
    report = write_report(runs, tmp_path / "out")
    for figure in ("fid.png", "probe.png", "tasks.png", "fid.protocol.json"):
        assert (tmp_path / "out" / figure).stat().st_size > 0
    assert (tmp_path / "out" / "samples" / "gan-samples-00000300.png").exists()
    text = report.read_text()
    assert "## Run gan" in text and "## Run ssgan" in text
    # gan forgets: final probe 0.2, best 0.4 at step 100
    assert "| probe/penultimate | 0.2 | 300 | 0.4 | 100 |" in text
    assert "| fd/cifar10-fd-public | 70 | 300 | 70 | 300 |" in text
    assert "loss/d" not in text and "Warning" not in text
    panels = json.loads((tmp_path / "out" / "fid.protocol.json").read_text())
    assert len(panels) == 1 and panels[0]["runs"] == ["gan", "ssgan"]


def test_different_protocols_are_never_drawn_on_one_axis(tmp_path):
    runs = [fake_run(tmp_path, "a", FD, 0.0), fake_run(tmp_path, "b", {**FD, "num_fake": 5000}, 0.0)]
    text = write_report(runs, tmp_path / "out").read_text()
    assert "Warning" in text and "num_fake" in text
    panels = json.loads((tmp_path / "out" / "fid.protocol.json").read_text())
    assert [p["runs"] for p in panels] == [["a"], ["b"]]


def test_report_of_a_directory_without_metrics_is_a_user_error(tmp_path):
    from ssgen.errors import SsgenError

    with pytest.raises(SsgenError, match="metrics.jsonl"):
        write_report([tmp_path], tmp_path / "out")


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_help(command):
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0 and "Usage" in result.output
    for option in command.params:
        if option.param_type_name == "option":
            assert option.help, f"--{option.name} has no help"
