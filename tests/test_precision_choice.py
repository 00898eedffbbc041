"""trainer.precision: auto picks bf16 autocast on a CPU only where bf16 matrix units are detected,
fp32 elsewhere; an explicit setting is taken as given; the choice is written to the run's
config.yaml and its evaluations' protocols, said in the log, and kept by a resume on another
machine."""

import pytest
import torch
import yaml

from ssgen import precision
from ssgen.cli import resume_config
from ssgen.config import load_config
from ssgen.errors import ConfigError
from ssgen.eval.metrics import read_metrics
from ssgen.train.trainer import train
from tests.small_runs import QUICK, TINY

CPU = torch.device("cpu")
RUN = [*TINY, "trainer.steps=2", "trainer.checkpoint_every=2", "trainer.device=cpu",
       "eval.probe.every=2", "eval.probe.train_size=32", "eval.probe.test_size=16"]


@pytest.fixture
def units(monkeypatch):
    """Set what detection finds: units("AMX") or units(None)."""
    def found(name):
        monkeypatch.setattr(precision, "bf16_matrix_units", lambda: name)
    return found


def test_detection_reads_torchs_amx_probe(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert precision.bf16_matrix_units() == "AMX"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert precision.bf16_matrix_units() is None
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")  # an older torch: no probe, no units
    assert precision.bf16_matrix_units() is None


def test_auto_is_bf16_only_where_units_are_detected(units):
    units("AMX")
    assert precision.training_precision("auto", CPU) == "bf16"
    assert precision.training_precision("fp32", CPU) == "fp32"  # on request, even with the units
    units(None)
    assert precision.training_precision("auto", CPU) == "fp32"
    assert precision.training_precision("bf16", CPU) == "bf16"
    assert precision.training_precision("auto", torch.device("cuda")) == "bf16"
    with pytest.raises(ConfigError, match="'fp16'.*expected auto, fp32 or bf16"):
        precision.training_precision("fp16", CPU)


@pytest.mark.e2e
@pytest.mark.parametrize("found, setting, expected", [("AMX", "auto", "bf16"), (None, "auto", "fp32"),
                                                      ("AMX", "fp32", "fp32")])
def test_the_choice_is_recorded_and_said(tmp_path, units, found, setting, expected):
    units(found)
    lines = []
    cfg = load_config(QUICK, [f"run_dir={tmp_path / 'run'}", *RUN, f"trainer.precision={setting}"])
    run = train(cfg, bar=False, log=lines.append)
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["precision"] == expected
    probes = [r for r in read_metrics(run) if "probe/penultimate" in r["metrics"]]
    assert len(probes) == 2
    for record in probes:  # evaluations follow the training precision; fp32 records nothing, as before
        assert record["protocol"].get("precision", "fp32") == expected
    said = [line for line in lines if line.startswith("precision: ")]
    assert len(said) == 1 and said[0].startswith(f"precision: {expected}")
    if setting == "auto" and found is None:  # the CPU user is told of the other setting
        assert "trainer.precision=bf16" in said[0]


@pytest.mark.e2e
def test_a_resume_elsewhere_goes_on_in_the_precision_it_started_in(tmp_path, units):
    units("AMX")
    overrides = [f"run_dir={tmp_path / 'run'}", *RUN]
    run = train(load_config(QUICK, overrides), bar=False, log=lambda line: None)
    units(None)  # resumed on a CPU without the units: auto there would be fp32
    assert resume_config(run, str(QUICK), tuple(overrides), force=False).trainer.precision == "bf16"
    with pytest.raises(ConfigError, match="trainer.precision"):  # a change of recipe, as any other
        resume_config(run, str(QUICK), (*overrides, "trainer.precision=fp32"), force=False)
