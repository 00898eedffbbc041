"""The past-fakes forgetting monitor (ssgen/eval/past_fakes.py), its resume, its report figure and
tools/past_fakes_from_checkpoints.py, on tiny shapes runs."""

import importlib.util
from pathlib import Path

import pytest
import torch

from ssgen.checkpoint import list_checkpoints, read_checkpoint
from ssgen.config import load_config
from ssgen.eval import build_evaluators
from ssgen.eval.metrics import read_metrics
from ssgen.eval.past_fakes import PastFakesEvaluator
from ssgen.eval.report import write_report
from ssgen.rebuild import build_method

from small_runs import QUICK, ROTNET, TINY, quiet_train

# SS-GAN with an EMA G (the monitor must use the trained G), a tiny archive, one thread.
MONITOR = ["eval.past_fakes.every=2", "eval.past_fakes.num_images=6", "eval.past_fakes.batch_size=4",
           "eval.probe.every=0", "eval.fid.every=0", "eval.tasks.every=0", "trainer.deterministic=true"]
TOOL = Path(__file__).resolve().parents[1] / "tools" / "past_fakes_from_checkpoints.py"


def tiny_config(run_dir, *overrides):
    return load_config(QUICK, [f"run_dir={run_dir}", *TINY, *MONITOR, *overrides])


def past_fakes_records(run_dir):
    return [(r["step"], r["metrics"]) for r in read_metrics(run_dir)
            if any(k.startswith("past_fakes/") for k in r["metrics"])]


def ages(metrics, kind="rejected"):
    prefix = f"past_fakes/{kind}_age"
    return sorted(int(k[len(prefix):]) for k in metrics if k.startswith(prefix))


def test_archive_is_fixed_and_scoring_changes_no_state_or_rng_stream(tmp_path):
    cfg = tiny_config(tmp_path / "run", "eval.past_fakes.keep=2")
    method = build_method(cfg, torch.device("cpu"))
    monitor = PastFakesEvaluator(cfg.eval.past_fakes, cfg.seed)
    before, rng = {k: v.clone() for k, v in method.state_dict().items()}, torch.get_rng_state()
    metrics, _ = monitor(method, 0)
    assert ages(metrics) == ages(metrics, "logit") == [0]
    after = method.state_dict()  # G's batch-norm statistics, D's spectral-norm u vectors included
    assert [k for k in before if not torch.equal(before[k], after[k])] == []
    assert torch.equal(rng, torch.get_rng_state())
    first = monitor.archives[0].clone()
    assert first.dtype == torch.uint8 and first.shape == (6, 3, 32, 32)

    with torch.no_grad():  # a G that moved on leaves the archive as it was
        for p in method.G.parameters():
            p.add_(0.1)
    metrics, _ = monitor(method, 2)
    assert torch.equal(monitor.archives[0], first) and not torch.equal(monitor.archives[2], first)
    assert ages(metrics) == [0, 2]
    monitor(method, 4)
    assert list(monitor.archives) == [2, 4]  # keep=2 drops the oldest


def test_monitor_only_for_a_discriminator(tmp_path):
    cfg = load_config(ROTNET, [f"run_dir={tmp_path / 'run'}", *MONITOR])
    notes = []
    evaluators = build_evaluators(cfg, build_method(cfg, torch.device("cpu")), torch.device("cpu"), notes.append)
    assert not any(isinstance(evaluator, PastFakesEvaluator) for evaluator in evaluators)
    assert any("eval.past_fakes" in note for note in notes)


@pytest.mark.e2e
def test_metrics_have_the_expected_ages(tmp_path):
    run = quiet_train(tiny_config(tmp_path / "run", "trainer.steps=5", "eval.past_fakes.keep=2"))
    found = {step: ages(metrics) for step, metrics in past_fakes_records(run)}
    # Archives at 0, 2, 4 (keep 2); the last step, 5, is scored but not archived.
    assert found == {0: [0], 2: [0, 2], 4: [0, 2], 5: [0, 1, 3]}
    values = [v for _, metrics in past_fakes_records(run) for k, v in metrics.items() if "rejected" in k]
    assert values and all(0 <= v <= 1 and abs(v * 6 - round(v * 6)) < 1e-6 for v in values)  # k of the 6 fakes


@pytest.mark.e2e
def test_monitor_changes_no_weight_or_loss(tmp_path):
    runs = {every: quiet_train(tiny_config(tmp_path / f"run{every}", "trainer.steps=4", "trainer.log_every=1",
                                           f"eval.past_fakes.every={every}"))
            for every in (0, 2)}
    off, on = (read_checkpoint(list_checkpoints(runs[every])[-1]) for every in (0, 2))
    assert off["method"].keys() == on["method"].keys()
    assert all(torch.equal(off["method"][k], on["method"][k]) for k in off["method"])
    assert torch.equal(off["rng"]["torch"], on["rng"]["torch"])

    def losses(run):
        return [(r["step"], {k: v for k, v in r["metrics"].items() if k.startswith("loss/")})
                for r in read_metrics(run) if "loss/d" in r["metrics"]]
    assert losses(runs[0]) == losses(runs[2]) and len(losses(runs[0])) == 4


@pytest.mark.e2e
def test_archive_is_bit_identical_through_a_resume(tmp_path):
    cfg = tiny_config(tmp_path / "run", "trainer.steps=4", "trainer.checkpoint_every=2", "trainer.keep_checkpoints=5")
    run = quiet_train(cfg)
    straight = read_checkpoint(list_checkpoints(run)[-1])
    straight_metrics = past_fakes_records(run)
    list_checkpoints(run)[-1].unlink()  # as if the run died after step 2's checkpoint
    quiet_train(cfg, resume=True)
    resumed = read_checkpoint(list_checkpoints(run)[-1])
    archives = straight["evaluators"]["past_fakes"]["archives"]
    assert list(archives) == [0, 2, 4]
    assert resumed["evaluators"]["past_fakes"]["archives"].keys() == archives.keys()
    assert all(torch.equal(resumed["evaluators"]["past_fakes"]["archives"][s], archives[s]) for s in archives)
    assert past_fakes_records(run) == straight_metrics  # step 4 scores the archives of 0 and 2 alike


def load_tool():
    spec = importlib.util.spec_from_file_location("past_fakes_from_checkpoints", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


@pytest.mark.e2e
def test_tool_matches_the_monitor_and_replaces_its_own_records(tmp_path):
    # The monitor at every checkpoint: the tool's figures at those steps must be the monitor's own.
    cfg = tiny_config(tmp_path / "run", "trainer.steps=4", "trainer.checkpoint_every=2", "trainer.keep_checkpoints=5")
    run = quiet_train(cfg)
    tool = load_tool()
    monitor = {step: metrics for step, metrics in past_fakes_records(run)}
    for _ in range(2):  # the second pass replaces the first's records
        records, measured = tool.measure_checkpoints(run, torch.device("cpu"), log=lambda m: None)
        tool.write_metrics(run, records, measured)
    ours = [r for r in read_metrics(run) if r.get("protocol", {}).get("source") == tool.SOURCE]
    assert [(r["step"], ages(r["metrics"])) for r in ours] == [(2, [0]), (4, [0, 2])]
    for record in ours:
        assert record["metrics"] == {k: monitor[record["step"]][k] for k in record["metrics"]}
    assert len(past_fakes_records(run)) == len(monitor) + 2  # the monitor's records untouched
    lines = tool.table(records)
    assert lines[-2].split()[0] == "2" and len(lines[-2].split()) == 3  # archive 2: scored at 2 and 4

    report = write_report([run], tmp_path / "report")
    assert (report.parent / "past_fakes.png").is_file() and "past_fakes.png" in report.read_text()
