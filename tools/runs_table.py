"""One Markdown table across runs: a row per run, a column per (metric, step), from metrics.jsonl.
The tables of docs/results.md are printed by it.

Usage: python tools/runs_table.py FOLDER METRIC [METRIC ...] [--steps 0,250,500] [--percent probe/,knn/]
  FOLDER   a folder of run directories (each with metrics.jsonl); rows in the folder's order
  METRIC   a metric key, e.g. fd/cifar10-fd-public probe/penultimate
  --steps  the steps to show (default: every step at which any run logged the first metric)
  --percent  metric prefixes shown as percentages (default: probe/,knn/,accuracy/,finetune/)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ssgen.eval.metrics import METRICS_FILE, read_metrics


def values(run: Path, metric: str) -> dict[int, float]:
    """{step: value} of one metric; a later record of a step (a resumed run) wins."""
    return {record["step"]: record["metrics"][metric] for record in read_metrics(run) if metric in record["metrics"]}


def table(folder: Path, metrics: list[str], steps: list[int] | None, percent: tuple[str, ...]) -> list[str]:
    runs = sorted(p.parent for p in folder.glob(f"*/{METRICS_FILE}"))
    if not runs:
        raise SystemExit(f"{folder} holds no run directories (no */{METRICS_FILE})")
    series = {run: {metric: values(run, metric) for metric in metrics} for run in runs}
    if steps is None:
        steps = sorted({step for run in runs for step in series[run][metrics[0]]})
    header = [f"{metric} @{step}" for metric in metrics for step in steps]
    lines = ["| run | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for run in runs:
        cells = []
        for metric in metrics:
            as_percent = metric.startswith(percent)
            for step in steps:
                value = series[run][metric].get(step)
                cells.append("-" if value is None else f"{100 * value:.1f}%" if as_percent else f"{value:.2f}")
        lines.append(f"| {run.name} | " + " | ".join(cells) + " |")
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("metrics", nargs="+")
    parser.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--percent", default="probe/,knn/,accuracy/,finetune/",
                        type=lambda s: tuple(x for x in s.split(",") if x))
    args = parser.parse_args()
    print("\n".join(table(args.folder, args.metrics, args.steps, args.percent)))
