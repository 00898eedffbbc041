"""`ssgen report`: plots and a Markdown summary of one or more runs, from their metrics.jsonl.

Figures measured under different protocols (sample counts, split, extractor ...) are never drawn
on one axis: each (metric, protocol) pair gets its own panel, and report.md says so.

Seeds are an axis, not separate runs: runs whose config.yaml files differ in `seed` (and run_dir)
alone are one recipe, drawn as one line, the mean over the seeds at each step that every seed
logged, with a band of ± one standard deviation (the sample std, n - 1), and n in the legend
("gan (n=3)"). A config that differs in anything else (method.beta, trainer.steps ...) never
merges, nor do two runs of one seed; a run without config.yaml stands alone. A group is named
by its runs' common name less the seed suffix (gan-s0, gan-s1: gan), else by its method. The
tables give each figure as mean ± std over the seeds, of each seed's own final and best record,
with n; report.md opens with the probe's peak against its final, the headline of a forgetting study.
`ssgen train --seeds 0,1,2` trains such runs, into <run_dir>-s0, -s1, -s2.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import textwrap
from collections import Counter
from dataclasses import dataclass
from statistics import mean, stdev
from pathlib import Path
from typing import Callable, Iterable

import yaml

from ssgen.checkpoint import CONFIG_FILE, checkpoint_step, list_checkpoints
from ssgen.errors import CheckpointError
from ssgen.eval.metrics import METRICS_FILE, binomial_standard_error, read_metrics


@dataclass(frozen=True)
class Family:
    """Metrics plotted together: FID/FD, probe accuracy (the forgetting figure), task accuracies."""
    name: str
    title: str
    selects: Callable[[str], bool]
    lower_is_better: bool


FAMILIES = (
    Family("fid", "FID / FD vs step (lower is better)", lambda k: k == "fid" or k.startswith("fd/"), True),
    Family("probe", "Linear probe top-1 vs step (discriminator forgetting)", lambda k: k.startswith("probe/"), False),
    Family("knn", "kNN top-1 vs step", lambda k: k.startswith("knn/"), False),
    Family("accuracy", "Classifier test top-1 vs step", lambda k: k.startswith("accuracy/"), False),
    # Every self-supervised task logs `<task>/acc_real` (and `_fake` on a GAN's G side).
    Family("tasks", "Self-supervised task accuracy vs step", lambda k: k.split("/")[-1].startswith("acc_"), False),
    # `ssgen finetune`: finetune/linear (stage 1) and finetune/full (stage 2), _random_init for the floor.
    Family("finetune", "Fine-tuning test top-1 (stage 1: linear probe, stage 2: whole network) vs checkpoint step",
           lambda k: k.startswith("finetune/"), False),
)
NOISE = 2.0  # standard errors of a difference within which two top-1 figures are not told apart
TITLE_WIDTH = 60  # characters a panel title's line holds in its 5-inch panel at 9 points


@dataclass
class Run:
    label: str
    path: Path
    config: dict
    # (metric key, protocol as canonical JSON) -> [(step, value)], in file order
    series: dict[tuple[str, str], list[tuple[int, float]]]
    steps_run: int = 0  # the last step trained: its newest checkpoint's, or its metrics' last step


def load_run_metrics(path: Path, label: str) -> Run:
    if not (path / METRICS_FILE).is_file():
        raise CheckpointError(f"{str(path)!r} is not a run directory with metrics (no {METRICS_FILE})")
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    records = read_metrics(path)
    for record in records:
        protocol = json.dumps(record.get("protocol", {}), sort_keys=True)
        for key, value in record["metrics"].items():
            if any(family.selects(key) for family in FAMILIES):
                series.setdefault((key, protocol), []).append((record["step"], value))
    config_file = path / CONFIG_FILE
    config = (yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
    # A stopped run's last checkpoint is past its last logged step (223 against a log at 200).
    last = [checkpoint_step(p) for p in list_checkpoints(path)[-1:]] + [r["step"] for r in records]
    return Run(label, path, config, series, max(last, default=0))


SeriesKey = tuple[str, str]  # (metric key, protocol as canonical JSON)


def spread(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return mean(values), stdev(values) if len(values) > 1 else 0.0


def test_size_of(key: str, protocol: dict) -> int | None:
    """The test images behind a top-1 figure, where its error is binomial: its protocol says so
    (`standard_error`), or, recorded before protocols said it, it is a probe's or kNN's figure."""
    size = protocol.get("test_size")
    binomial = "standard_error" in protocol or key.startswith(("probe/", "knn/"))
    return size if binomial and isinstance(size, int) and size > 0 else None


def within_noise(a: float, b: float, test_size: int) -> bool:
    """Whether two top-1 figures on `test_size` images differ by no more than NOISE standard errors
    of their difference (as if independent: on one test set, a cautious reading)."""
    spread_ab = math.hypot(binomial_standard_error(a, test_size), binomial_standard_error(b, test_size))
    return abs(a - b) <= NOISE * spread_ab


def clearly_best(curve: dict[int, float], step: int, test_size: int) -> bool:
    """Whether the figure at `step` beats every other step's by more than the noise."""
    return all(not within_noise(curve[step], value, test_size) for other, value in curve.items() if other != step)


@dataclass
class Group:
    """Runs of one recipe, their configs differing in seed (and run_dir) alone; a lone run is a group of one."""
    label: str
    runs: list[Run]

    def curves(self, series: SeriesKey) -> list[dict[int, float]]:
        """{step: value} of each run that has the series; a later record of a step (a resumed run) wins."""
        return [dict(run.series[series]) for run in self.runs if series in run.series]

    def band(self, series: SeriesKey) -> tuple[list[tuple[int, float, float]], int]:
        """(step, mean, std) at the steps every run with the series logged, and how many runs those are."""
        curves = self.curves(series)
        steps = sorted(set.intersection(*map(set, curves))) if curves else []
        return [(step, *spread([curve[step] for curve in curves])) for step in steps], len(curves)

    def ends(self, series: SeriesKey, lower_is_better: bool) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """Each run's (step, value) at its last record, and at its best."""
        pick = min if lower_is_better else max
        curves = [sorted(curve.items()) for curve in self.curves(series)]
        return [curve[-1] for curve in curves], [pick(curve, key=lambda point: point[1]) for curve in curves]


def recipe(run: Run) -> str:
    """The run's config less its seed and run_dir; a run without one is a recipe of its own."""
    if not run.config:
        return str(run.path.resolve())
    return json.dumps({k: v for k, v in run.config.items() if k not in ("seed", "run_dir")}, sort_keys=True)


_SEED_SUFFIX = re.compile(r"[-_/](?:s|seed)[-_=]?\d+$")


def group_label(runs: list[Run]) -> str:
    if len(runs) == 1:
        return runs[0].label
    stems = {_SEED_SUFFIX.sub("", run.label) for run in runs}
    return stems.pop() if len(stems) == 1 else runs[0].config.get("method", {}).get("name", runs[0].label)


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs that differ in seed alone, grouped, in the order of each group's first run. Runs of one
    seed repeat it rather than add one: the k-th run of each seed of a recipe joins its k-th group.
    Labels that two groups would share are numbered (gan #1, gan #2)."""
    recipes: dict[tuple[str, int], list[Run]] = {}
    repeats: Counter = Counter()
    for run in runs:
        seed = (recipe(run), json.dumps(run.config.get("seed")))
        repeats[seed] += 1
        recipes.setdefault((seed[0], repeats[seed]), []).append(run)
    labels = [group_label(members) for members in recipes.values()]
    counts, seen = Counter(labels), Counter()
    groups = []
    for label, members in zip(labels, recipes.values()):
        seen[label] += 1
        groups.append(Group(label if counts[label] == 1 else f"{label} #{seen[label]}", members))
    return groups


def with_n(label: str, n: int) -> str:
    return f"{label} (n={n})" if n > 1 else label


def run_labels(paths: list[Path]) -> list[str]:
    """Directory names, with the parent's name added where two runs share one."""
    names = [p.resolve().name for p in paths]
    return [f"{p.resolve().parent.name}/{n}" if names.count(n) > 1 else n for p, n in zip(paths, names)]


def describe(protocol: dict, fields: list[str] | None = None) -> str:
    return ", ".join(f"{k}={protocol[k]}" for k in (fields or sorted(protocol)) if k in protocol) or "-"


def panels(runs: list[Run], family: Family) -> list[tuple[str, str]]:
    """The (key, protocol) pairs of a family that any run has, sorted by key."""
    return sorted({group for run in runs for group in run.series if family.selects(group[0])})


def differing_fields(protocols: list[str]) -> list[str]:
    dicts = [json.loads(p) for p in protocols]
    keys = sorted({k for d in dicts for k in d})
    return [k for k in keys if len({json.dumps(d.get(k)) for d in dicts}) > 1]


def panel_title(key: str, protocol: str, groups: list[tuple[str, str]]) -> str:
    """The key, and where it was measured under several protocols, how this panel's differs."""
    same_key = [p for k, p in groups if k == key]
    if len(same_key) == 1:
        return key
    # Wrapped to the panel's width: a protocol's fields (a fine-tuning's init path ...) run long, and
    # a title wider than its panel runs into its neighbours'.
    return textwrap.fill(f"{key}  [protocol: {describe(json.loads(protocol), differing_fields(same_key))}]",
                         TITLE_WIDTH)


def mixed_protocol_warnings(groups: list[tuple[str, str]]) -> list[str]:
    warnings = []
    for key in sorted({k for k, _ in groups}):
        protocols = [p for k, p in groups if k == key]
        if len(protocols) > 1:
            warnings.append(f"{key} was measured under {len(protocols)} protocols (differing in "
                            f"{', '.join(differing_fields(protocols))}): drawn in separate panels")
    return warnings


def plot_band(ax, group: Group, series: SeriesKey, index: int, suffix: str = "") -> None:
    """The group's mean over its seeds in colour C<index>, and a ± std band where it has several."""
    import numpy as np

    points, n = group.band(series)
    if points:
        steps, means, stds = map(np.array, zip(*points))
        ax.plot(steps, means, color=f"C{index}", marker="o" if len(points) < 30 else None,
                markersize=3, label=with_n(group.label, n) + suffix)
        if n > 1:
            ax.fill_between(steps, means - stds, means + stds, color=f"C{index}", alpha=0.2, linewidth=0)


def family_figure(groups: list[Group], family: Family):
    """The family's figure, a panel per (metric, protocol), what each panel holds, and those pairs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [run for group in groups for run in group.runs]
    series = panels(runs, family)
    columns = min(3, len(series))
    rows = -(-len(series) // columns)
    # Constrained layout makes room for titles of several lines and the figure's title above them.
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False, layout="constrained")
    saved = []
    for ax, (key, protocol) in zip(axes.flat, series):
        title = panel_title(key, protocol, series)
        for index, group in enumerate(groups):  # a group keeps its colour in every panel
            plot_band(ax, group, (key, protocol), index)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        saved.append({"key": key, "protocol": json.loads(protocol),
                      "runs": [r.label for r in runs if (key, protocol) in r.series]})
    for ax in list(axes.flat)[len(series):]:
        ax.set_visible(False)
    fig.suptitle(family.title)
    return fig, saved, series


def plot_family(groups: list[Group], family: Family, out: Path) -> list[str]:
    """Write <family>.png (+ .protocol.json beside it), a line per group with its seeds' ± std band;
    returns warnings about mixed protocols."""
    import matplotlib.pyplot as plt

    fig, saved, series = family_figure(groups, family)
    fig.savefig(out / f"{family.name}.png", dpi=100)
    plt.close(fig)
    (out / f"{family.name}.protocol.json").write_text(json.dumps(saved, indent=1))
    return mixed_protocol_warnings(series)


_PAST_FAKES = re.compile(r"past_fakes/rejected_age(\d+)$")


def plot_past_fakes(runs: list[Run], out: Path) -> bool:
    """past_fakes.png: a panel per run, the share of old fakes its D still rejects vs step, a line
    per age (steps since G made them; age 0: fresh fakes). False where no run measured them."""
    curves: dict[str, dict[int, list[tuple[int, float]]]] = {}  # run -> age -> [(step, share)]
    for run in runs:
        for record in read_metrics(run.path):
            for key, value in record["metrics"].items():
                if match := _PAST_FAKES.match(key):
                    curves.setdefault(run.label, {}).setdefault(int(match.group(1)), []).append((record["step"], value))
    if not curves:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(curves))
    rows = -(-len(curves) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    for ax, (label, by_age) in zip(axes.flat, curves.items()):
        for index, (age, points) in enumerate(sorted(by_age.items())):
            ax.plot(*zip(*sorted(points)), color=plt.cm.viridis(index / max(1, len(by_age) - 1)), marker="o",
                    markersize=3, label=f"age {age}")
        ax.set(title=label, xlabel="step", ylabel="share rejected (logit < 0)", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    for ax in list(axes.flat)[len(curves):]:
        ax.set_visible(False)
    fig.suptitle("Past fakes D still rejects vs step (label-free forgetting)")
    fig.tight_layout()
    fig.savefig(out / "past_fakes.png", dpi=100)
    plt.close(fig)
    return True


TASK_KEY = "accuracy/task_balanced"  # a classifier under a one-vs-all label schedule (eval/accuracy.py)


def task_series(group: Group) -> SeriesKey | None:
    """The current task's held-out balanced accuracy, under the protocol that names the schedule."""
    return next((series for run in group.runs for series in run.series if series[0] == TASK_KEY), None)


def period_means(points: Iterable[tuple[int, float]], every: int, tasks: int) -> dict[tuple[int, int], float]:
    """{(cycle, task): the mean of the evaluations after the task's steps in that cycle}; step 0,
    before any training, belongs to none."""
    periods: dict[tuple[int, int], list[float]] = {}
    for step, value in points:
        if step > 0:
            periods.setdefault(divmod((step - 1) // every, tasks), []).append(value)
    return {period: mean(values) for period, values in periods.items()}


def plot_nonstationary(groups: list[Group], out: Path) -> list[str]:
    """nonstationary.png (SS-GAN's Figure 2): the current task's balanced accuracy vs step and the
    10-class probe beside it, a line per group with its seeds' band, a grey line at each task switch
    and a dashed one at each cycle's end; and a table per group of each task's mean held-out accuracy
    over its period, cycle by cycle (mean ± std over seeds): how a task fares when it returns. Report
    lines; none where no run had a label schedule."""
    scheduled = [(index, group, series) for index, group in enumerate(groups) if (series := task_series(group))]
    if not scheduled:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (task_ax, probe_ax) = plt.subplots(1, 2, figsize=(12, 3.6), sharex=True)
    lines = ["## Non-stationary classifier: the current task and the 10-class probe", "",
             "![nonstationary](nonstationary.png)", ""]
    for index, group, series in scheduled:  # a group keeps its colour from the other figures
        plot_band(task_ax, group, series, index)
        for probe in sorted({s for run in group.runs for s in run.series if s[0].startswith("probe/")}):
            plot_band(probe_ax, group, probe, index, f" {probe[0]}")
        protocol = json.loads(series[1])
        every, order = protocol["task_every"], protocol["task_order"]
        runs = [period_means(curve.items(), every, len(order)) for curve in group.curves(series)]
        cycles = sorted({cycle for periods in runs for cycle, _ in periods})
        lines += [f"{with_n(group.label, len(runs))}: mean held-out balanced accuracy of each task over its "
                  f"period of {every} steps", "",
                  "| task (class) | " + " | ".join(f"cycle {c + 1}" for c in cycles) + " |",
                  "|---|" + "---|" * len(cycles)]
        for task, label in enumerate(order):
            cells = [[periods[cycle, task] for periods in runs if (cycle, task) in periods] for cycle in cycles]
            lines.append(f"| {task + 1} ({label}) | " + " | ".join(
                "-" if not cell else f"{cell[0]:.3f}" if len(runs) == 1 else "{:.3f} ± {:.3f}".format(*spread(cell))
                for cell in cells) + " |")
        lines.append("")
    protocol = json.loads(scheduled[0][2][1])
    every, cycle = protocol["task_every"], protocol["task_every"] * len(protocol["task_order"])
    last = max(step for _, group, series in scheduled for curve in group.curves(series) for step in curve)
    for ax, title in ((task_ax, "current task's balanced accuracy (held out)"),
                      (probe_ax, "linear probe top-1, all classes")):
        for switch in range(every, last, every):
            ends = switch % cycle == 0
            ax.axvline(switch, color="0.5" if ends else "0.85", linestyle="--" if ends else "-",
                       linewidth=0.8, zorder=0)
        ax.set(title=title, xlabel="step")
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=7)
    fig.suptitle(f"Non-stationary classifier: a new one-vs-all task every {every} steps")
    fig.tight_layout()
    fig.savefig(out / "nonstationary.png", dpi=100)
    plt.close(fig)
    return lines


_GRID = re.compile(r"(.+)-(\d+)\.png$")


def copy_latest_samples(run: Run, out: Path) -> list[Path]:
    """The newest grid of each kind (samples, reconstructions ...) of a run, copied into out/samples."""
    latest: dict[str, tuple[int, Path]] = {}
    for path in (run.path / "samples").glob("*.png"):
        if match := _GRID.match(path.name):
            name, step = match.group(1), int(match.group(2))
            if step >= latest.get(name, (-1, path))[0]:
                latest[name] = (step, path)
    copies = []
    for name, (step, path) in sorted(latest.items()):
        target = out / "samples" / f"{run.label.replace('/', '_')}-{name}-{step:08d}.png"
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, target)
        copies.append(target)
    return copies


def mean_std(values: list[float]) -> str:
    average, std = spread(values)
    return f"{average:.4g} ± {std:.2g}" if len(values) > 1 else f"{average:.4g}"


def value_and_steps(points: list[tuple[int, float]]) -> str:
    """'mean ± std | step' cells of the runs' (step, value): the step, or each run's where they differ."""
    steps, values = zip(*points)
    return f"{mean_std(values)} | {steps[0] if len(set(steps)) == 1 else ', '.join(map(str, steps))}"


def with_standard_error(point: tuple[int, float], test_size: int) -> str:
    """A 'value ± standard error | step' cell of one run's top-1 figure."""
    step, value = point
    return f"{value:.4g} ± {binomial_standard_error(value, test_size):.2g} | {step}"


STANDARD_ERROR_NOTE = (f"A single run's top-1 figure is given ± its binomial standard error, sqrt(p (1 - p) / n) over "
                       f"the protocol's n = test_size test images (a group's ±: the std over its seeds). A step is "
                       f"called best only where its figure beats every other step's by more than {NOISE:g} standard "
                       "errors of their difference; otherwise: none clear.")


def summary_table(group: Group) -> list[str]:
    """Each metric's final and best record, mean ± std over the group's seeds, n: the seeds that logged it.
    A top-1 figure of one run carries its standard error, and no step is called best within the noise."""
    lines = ["| metric | final | at step | best | at step | n | protocol |", "|---|---|---|---|---|---|---|"]
    with_errors = False
    for family in FAMILIES:
        for key, protocol in panels(group.runs, family):
            finals, bests = group.ends((key, protocol), family.lower_is_better)
            test_size = test_size_of(key, json.loads(protocol))
            final, best = value_and_steps(finals), value_and_steps(bests)
            if test_size:
                with_errors = True
                if len(finals) == 1:
                    final, best = with_standard_error(finals[0], test_size), with_standard_error(bests[0], test_size)
                curves = group.curves((key, protocol))
                if not all(clearly_best(curve, step, test_size) for curve, (step, _) in zip(curves, bests)):
                    best = "none clear (within noise) | -"
            lines.append(f"| {key} | {final} | {best} | {len(finals)} | {describe(json.loads(protocol))} |")
    return lines + (["", STANDARD_ERROR_NOTE] if with_errors else [])


def drop_cell(drops: list[float], peaks: list[tuple[int, float]], finals: list[tuple[int, float]],
              test_size: int | None) -> str:
    """peak - final: mean ± std over seeds; one run's with the standard error of the difference, and
    marked where it is within the noise (no forgetting shown)."""
    if not test_size or len(drops) > 1:
        return mean_std(drops)
    (_, peak), (_, final) = peaks[0], finals[0]
    error = math.hypot(binomial_standard_error(peak, test_size), binomial_standard_error(final, test_size))
    return f"{drops[0]:.4g} ± {error:.2g}" + (" (within noise)" if within_noise(peak, final, test_size) else "")


def forgetting_table(groups: list[Group]) -> list[str]:
    """The probe's peak against its final, a row per group and layer; none without probes."""
    probe = next(family for family in FAMILIES if family.name == "probe")
    lines = []
    for group in groups:
        for key, protocol in panels(group.runs, probe):
            finals, peaks = group.ends((key, protocol), lower_is_better=False)
            drops = [peak - final for (_, peak), (_, final) in zip(peaks, finals)]
            test_size = test_size_of(key, json.loads(protocol))
            cells = [with_standard_error(points[0], test_size) if test_size and len(points) == 1
                     else value_and_steps(points) for points in (peaks, finals)]
            lines.append(f"| {group.label} | {key} | {cells[0]} | {cells[1]} | "
                         f"{drop_cell(drops, peaks, finals, test_size)} | {len(finals)} | "
                         f"{describe(json.loads(protocol))} |")
    header = ["| runs | probe | peak | at step | final | at step | peak - final | n | protocol |",
              "|---|---|---|---|---|---|---|---|---|"]
    return header + lines if lines else []


def steps_trained(group: Group) -> str:
    """The steps the runs trained, against the config's where they stopped short of it (223 of 560)."""
    configured = group.runs[0].config.get("trainer", {}).get("steps")
    trained = sorted({run.steps_run for run in group.runs})
    text = ", ".join(map(str, trained))
    return f"{text} steps" if trained == [configured] else f"{text} of {configured} steps"


def finetuned_from(run: Run) -> list[str]:
    """The checkpoints (or random init) that `ssgen finetune` records in a run's metrics came from."""
    sources = {json.loads(protocol).get("init", "?") for key, protocol in run.series if key.startswith("finetune/")}
    return sorted(sources)


def group_header(group: Group) -> str:
    cfg = group.runs[0].config
    method, data = cfg.get("method", {}), cfg.get("data", {})
    facts = [f"method `{method.get('name', '?')}`", f"data `{data.get('name', '?')}`", steps_trained(group)]
    if not cfg:  # an `ssgen finetune --out` folder holds metrics alone
        sources = finetuned_from(group.runs[0])
        facts = [f"`ssgen finetune` of {', '.join(f'`{s}`' for s in sources)}"] if sources else ["no config.yaml"]
    if len(group.runs) == 1:
        return f"`{group.runs[0].path}`: " + ", ".join(facts)
    where = ", ".join(f"`{run.path}` (seed {run.config.get('seed', '?')})" for run in group.runs)
    return f"{len(group.runs)} seeds of one recipe, {where}: " + ", ".join(facts)


def find_runs(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Run directories and their labels. A path with metrics is a run; any other folder stands
    for every run below it (as `tensorboard --logdir runs` does), each labelled by its path
    relative to that folder."""
    found, labels = [], []
    for path in paths:
        if (path / METRICS_FILE).is_file() or not path.is_dir():
            found.append(path)
            labels.append(None)
            continue
        below = sorted(p.parent for p in path.rglob(METRICS_FILE))
        if not below:
            raise CheckpointError(f"{str(path)!r} holds no runs (no {METRICS_FILE} in it or below it)")
        found += below
        labels += [p.relative_to(path).as_posix() for p in below]
    named = run_labels(found)
    return found, [label or name for label, name in zip(labels, named)]


def write_report(run_dirs: list[str | Path], out: str | Path) -> Path:
    """Plots, the latest sample grids and report.md for the runs (or every run below a folder);
    returns report.md's path."""
    paths, labels = find_runs([Path(p) for p in run_dirs])
    runs = [load_run_metrics(p, label) for p, label in zip(paths, labels)]
    groups = group_runs(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# ssgen report", ""]
    if forgetting := forgetting_table(groups):
        lines += ["## Linear probe: peak against final (mean ± std over seeds)", ""] + forgetting + [""]
    warnings, figures = [], []
    for family in FAMILIES:
        if panels(runs, family):
            warnings += plot_family(groups, family, out)
            figures.append(family)
    if warnings:
        lines += ["**Warning:** some figures were measured under different protocols and are not comparable; "
                  "they are drawn in separate panels:", ""] + [f"- {w}" for w in warnings] + [""]
    for family in figures:
        lines += [f"## {family.title}", "", f"![{family.name}]({family.name}.png)",
                  "", f"Protocols: `{family.name}.protocol.json`", ""]
    if plot_past_fakes(runs, out):
        lines += ["## Past fakes D still rejects vs step (label-free forgetting)", "",
                  "![past_fakes](past_fakes.png)", ""]
    lines += plot_nonstationary(groups, out)
    for group in groups:
        title = f"## Runs {with_n(group.label, len(group.runs))}" if len(group.runs) > 1 else f"## Run {group.label}"
        lines += [title, "", group_header(group), ""]
        recorded = any(run.series for run in group.runs)
        lines += summary_table(group) if recorded else ["No FID/FD, probe, task or fine-tuning accuracy recorded."]
        samples = [p for run in group.runs for p in copy_latest_samples(run, out)]
        lines += [""] + [f"![{p.stem}]({p.relative_to(out)})" for p in samples] + [""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
