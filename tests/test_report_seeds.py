"""Seeds as an axis: `ssgen report` merges runs that differ in seed alone, and `ssgen train --seeds`."""

import json

import pytest
import yaml
from click.testing import CliRunner

from ssgen.cli import cli, parse_seeds
from ssgen.errors import ConfigError
from ssgen.eval.metrics import append_metrics
from ssgen.eval.report import group_runs, load_run_metrics, write_report

from small_runs import QUICK, TINY, set_options

PROBE = {"metric": "linear probe top-1", "train_size": 500, "test_size": 500}
RECIPE = {"method": {"name": "gan", "beta": 1.0}, "data": {"name": "shapes"}, "trainer": {"steps": 200}}


def fake_run(root, name, seed, probe, recipe=RECIPE):
    """A run directory as training leaves it: config.yaml and metrics.jsonl, probe/penultimate
    logged at steps 100, 200 ... with the given values."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "run_dir": str(run), **recipe}))
    for step, value in zip((100, 200, 300), probe):
        append_metrics(run, step, {"probe/penultimate": value}, PROBE)
    return run


def groups_of(*runs):
    return group_runs([load_run_metrics(run, run.name) for run in runs])


def test_two_seeds_become_one_group_with_their_mean_and_std(tmp_path):
    [group] = groups_of(fake_run(tmp_path, "gan-s0", 0, [0.25, 0.125]), fake_run(tmp_path, "gan-s1", 1, [0.75, 0.625]))
    assert group.label == "gan" and len(group.runs) == 2
    points, n = group.band(("probe/penultimate", json.dumps(PROBE, sort_keys=True)))
    assert n == 2
    assert points == [(100, 0.5, pytest.approx(0.5 ** 0.5 / 2)), (200, 0.375, pytest.approx(0.5 ** 0.5 / 2))]


@pytest.mark.parametrize("section, key, value", [("method", "beta", 5.0), ("trainer", "steps", 400)])
def test_configs_that_differ_in_another_key_never_merge(tmp_path, section, key, value):
    other = {**RECIPE, section: {**RECIPE[section], key: value}}
    groups = groups_of(fake_run(tmp_path, "a-s0", 0, [0.5]), fake_run(tmp_path, "a-s1", 1, [0.5], other))
    assert [len(g.runs) for g in groups] == [1, 1]
    assert [g.label for g in groups] == ["a-s0", "a-s1"]


def test_two_runs_of_one_seed_are_repeats_not_seeds(tmp_path):
    groups = groups_of(fake_run(tmp_path, "a", 0, [0.5]), fake_run(tmp_path, "b", 0, [0.5]),
                       fake_run(tmp_path, "c", 1, [0.5]))
    assert [[r.label for r in g.runs] for g in groups] == [["a", "c"], ["b"]]


def test_groups_without_a_common_name_take_the_method_and_are_told_apart(tmp_path):
    other = {**RECIPE, "method": {"name": "gan", "beta": 5.0}}
    groups = groups_of(fake_run(tmp_path, "x", 0, [0.5]), fake_run(tmp_path, "y", 1, [0.5]),
                       fake_run(tmp_path, "z", 0, [0.5], other), fake_run(tmp_path, "w", 1, [0.5], other))
    assert [g.label for g in groups] == ["gan #1", "gan #2"]


def test_report_tables_give_mean_std_and_n_of_final_and_peak(tmp_path):
    runs = [fake_run(tmp_path / "study", f"gan-s{seed}", seed, [peak, peak - 0.125])
            for seed, peak in enumerate([0.25, 0.5, 0.75])]
    text = write_report([tmp_path / "study"], tmp_path / "out").read_text()
    assert "## Runs gan (n=3)" in text and "3 seeds of one recipe" in text
    assert "| probe/penultimate | 0.375 ± 0.25 | 200 | 0.5 ± 0.25 | 100 | 3 |" in text
    # the forgetting headline: peak, final, their difference per seed
    assert "| gan | probe/penultimate | 0.5 ± 0.25 | 100 | 0.375 ± 0.25 | 200 | 0.125 ± 0 | 3 |" in text
    panels = json.loads((tmp_path / "out" / "probe.protocol.json").read_text())
    assert panels[0]["runs"] == [run.name for run in runs]
    assert (tmp_path / "out" / "probe.png").stat().st_size > 0


def test_a_seed_still_running_shortens_the_band_and_the_table_names_each_final_step(tmp_path):
    [group] = groups_of(fake_run(tmp_path, "gan-s0", 0, [0.5, 0.5, 0.25]), fake_run(tmp_path, "gan-s1", 1, [0.5, 0.25]))
    points, n = group.band(("probe/penultimate", json.dumps(PROBE, sort_keys=True)))
    assert [step for step, _, _ in points] == [100, 200]
    text = write_report([tmp_path / "gan-s0", tmp_path / "gan-s1"], tmp_path / "out").read_text()
    # gan-s0's 0.5 at steps 100 and 200 are a tie: no step of it is the best (issue 27)
    assert "| probe/penultimate | 0.25 ± 0 | 300, 200 | none clear (within noise) | - | 2 |" in text


def test_seeds_parse():
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds(" 3, 10 ") == [3, 10]


@pytest.mark.parametrize("text, named", [("0,x", "'x'"), ("", "''"), ("1,,2", "''"), ("-1", "'-1'"),
                                         ("1.5", "'1.5'"), ("0,1,0", "seed 0 is listed twice")])
def test_bad_seeds_are_named(text, named):
    with pytest.raises(ConfigError, match="--seeds") as error:
        parse_seeds(text)
    assert named in str(error.value)


@pytest.mark.e2e
def test_train_seeds_trains_each_seed_into_its_own_directory(tmp_path):
    base = tmp_path / "quick"
    args = ["train", "--config", str(QUICK), "--no-progress", "--seeds", "0,1", "--set", f"run_dir={base}",
            "--set", "trainer.steps=2", *set_options(TINY)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "seed 1 (2 of 2)" in result.output
    for seed in (0, 1):
        saved = yaml.safe_load((tmp_path / f"quick-s{seed}" / "config.yaml").read_text())
        assert saved["seed"] == seed and saved["run_dir"] == str(base) + f"-s{seed}"
    resumed = CliRunner().invoke(cli, ["train", "--resume", str(base), "--seeds", "0,1", "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
