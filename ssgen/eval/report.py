"""`ssgen report`: plots and a Markdown summary of one or more runs, from their metrics.jsonl.

Figures measured under different protocols (sample counts, split, extractor ...) are never drawn
on one axis: each (metric, protocol) pair gets its own panel, and report.md says so.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import yaml

from ssgen.checkpoint import CONFIG_FILE
from ssgen.errors import CheckpointError
from ssgen.eval.metrics import METRICS_FILE, read_metrics


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
)


@dataclass
class Run:
    label: str
    path: Path
    config: dict
    # (metric key, protocol as canonical JSON) -> [(step, value)], in file order
    series: dict[tuple[str, str], list[tuple[int, float]]]


def load_run_metrics(path: Path, label: str) -> Run:
    if not (path / METRICS_FILE).is_file():
        raise CheckpointError(f"{str(path)!r} is not a run directory with metrics (no {METRICS_FILE})")
    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for record in read_metrics(path):
        protocol = json.dumps(record.get("protocol", {}), sort_keys=True)
        for key, value in record["metrics"].items():
            if any(family.selects(key) for family in FAMILIES):
                series.setdefault((key, protocol), []).append((record["step"], value))
    config_file = path / CONFIG_FILE
    config = (yaml.safe_load(config_file.read_text()) or {}) if config_file.is_file() else {}
    return Run(label, path, config, series)


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
    return f"{key}  [protocol: {describe(json.loads(protocol), differing_fields(same_key))}]"


def mixed_protocol_warnings(groups: list[tuple[str, str]]) -> list[str]:
    warnings = []
    for key in sorted({k for k, _ in groups}):
        protocols = [p for k, p in groups if k == key]
        if len(protocols) > 1:
            warnings.append(f"{key} was measured under {len(protocols)} protocols (differing in "
                            f"{', '.join(differing_fields(protocols))}): drawn in separate panels")
    return warnings


def plot_family(runs: list[Run], family: Family, out: Path) -> list[str]:
    """Write <family>.png (+ .protocol.json beside it); returns warnings about mixed protocols."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = panels(runs, family)
    columns = min(3, len(groups))
    rows = -(-len(groups) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5 * columns, 3.6 * rows), squeeze=False)
    saved = []
    for ax, (key, protocol) in zip(axes.flat, groups):
        title = panel_title(key, protocol, groups)
        for index, run in enumerate(runs):  # a run keeps its colour in every panel
            points = run.series.get((key, protocol))
            if points:
                ax.plot(*zip(*points), color=f"C{index}", marker="o" if len(points) < 30 else None,
                        markersize=3, label=run.label)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        saved.append({"key": key, "protocol": json.loads(protocol),
                      "runs": [r.label for r in runs if (key, protocol) in r.series]})
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    fig.suptitle(family.title)
    fig.tight_layout()
    fig.savefig(out / f"{family.name}.png", dpi=100)
    plt.close(fig)
    (out / f"{family.name}.protocol.json").write_text(json.dumps(saved, indent=1))
    return mixed_protocol_warnings(groups)


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


def task_curve(run: Run) -> tuple[list[tuple[int, float]], dict] | None:
    """The current task's held-out balanced accuracy and its protocol (which names the schedule)."""
    return next(((points, json.loads(protocol)) for (key, protocol), points in run.series.items() if key == TASK_KEY), None)


def plot_nonstationary(runs: list[Run], out: Path) -> list[str]:
    """nonstationary.png (SS-GAN's Figure 2): the current task's balanced accuracy vs step and the
    10-class probe beside it, a grey line at each task switch and a dashed one at each cycle's end;
    and a table per run of each task's mean held-out accuracy over its period, cycle by cycle: how a
    task fares when it returns. Report lines; none where no run had a label schedule."""
    curves = [(index, run, *curve) for index, run in enumerate(runs) if (curve := task_curve(run))]
    if not curves:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (task_ax, probe_ax) = plt.subplots(1, 2, figsize=(12, 3.6), sharex=True)
    lines = ["## Non-stationary classifier: the current task and the 10-class probe", "",
             "![nonstationary](nonstationary.png)", ""]
    for index, run, points, protocol in curves:  # a run keeps its colour from the other figures
        task_ax.plot(*zip(*points), color=f"C{index}", label=run.label)
        for (key, _), probe in sorted(run.series.items()):
            if key.startswith("probe/"):
                probe_ax.plot(*zip(*probe), color=f"C{index}", marker="o", markersize=3, label=f"{run.label} {key}")
        every, order = protocol["task_every"], protocol["task_order"]
        periods: dict[tuple[int, int], list[float]] = {}  # (cycle, task) -> the evaluations after its steps
        for step, value in points:
            if step > 0:  # step 0 precedes all training
                periods.setdefault(divmod((step - 1) // every, len(order)), []).append(value)
        cycles = sorted({cycle for cycle, _ in periods})
        lines += [f"Run {run.label}: mean held-out balanced accuracy of each task over its period of {every} steps",
                  "", "| task (class) | " + " | ".join(f"cycle {c + 1}" for c in cycles) + " |",
                  "|---|" + "---|" * len(cycles)]
        for task, label in enumerate(order):
            means = [periods.get((cycle, task)) for cycle in cycles]
            lines.append(f"| {task + 1} ({label}) | " + " | ".join(f"{sum(m) / len(m):.3f}" if m else "-" for m in means) + " |")
        lines.append("")
    every, tasks = curves[0][3]["task_every"], len(curves[0][3]["task_order"])
    last = max(step for _, _, points, _ in curves for step, _ in points)
    for ax, title in ((task_ax, "current task's balanced accuracy (held out)"), (probe_ax, "linear probe top-1, all classes")):
        for switch in range(every, last, every):
            ax.axvline(switch, color="0.5" if switch % (every * tasks) == 0 else "0.85",
                       linestyle="--" if switch % (every * tasks) == 0 else "-", linewidth=0.8, zorder=0)
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


def summary_table(run: Run) -> list[str]:
    lines = ["| metric | final | at step | best | at step | protocol |", "|---|---|---|---|---|---|"]
    for family in FAMILIES:
        for (key, protocol), points in sorted(run.series.items()):
            if not family.selects(key):
                continue
            final_step, final = points[-1]
            pick = min if family.lower_is_better else max
            best_step, best = pick(points, key=lambda p: p[1])
            lines.append(f"| {key} | {final:.4g} | {final_step} | {best:.4g} | {best_step} | "
                         f"{describe(json.loads(protocol))} |")
    return lines


def run_header(run: Run) -> str:
    cfg = run.config
    method, data = cfg.get("method", {}), cfg.get("data", {})
    facts = [f"method `{method.get('name', '?')}`", f"data `{data.get('name', '?')}`",
             f"{cfg.get('trainer', {}).get('steps', '?')} steps"] if cfg else ["no config.yaml"]
    return f"`{run.path}`: " + ", ".join(facts)


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
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# ssgen report", ""]
    warnings, figures = [], []
    for family in FAMILIES:
        if panels(runs, family):
            warnings += plot_family(runs, family, out)
            figures.append(family)
    if warnings:
        lines += ["**Warning:** some figures were measured under different protocols and are not comparable; "
                  "they are drawn in separate panels:", ""] + [f"- {w}" for w in warnings] + [""]
    for family in figures:
        lines += [f"## {family.title}", "", f"![{family.name}]({family.name}.png)",
                  "", f"Protocols: `{family.name}.protocol.json`", ""]
    if plot_past_fakes(runs, out):
        lines += ["## Past fakes D still rejects vs step (label-free forgetting)", "", "![past_fakes](past_fakes.png)", ""]
    lines += plot_nonstationary(runs, out)
    for run in runs:
        lines += [f"## Run {run.label}", "", run_header(run), ""]
        lines += summary_table(run) if run.series else ["No FID/FD, probe or task accuracy recorded."]
        lines += [""] + [f"![{p.stem}]({p.relative_to(out)})" for p in copy_latest_samples(run, out)] + [""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
