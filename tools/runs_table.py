"""One Markdown table across runs: a row per run, a column per (metric, step), from metrics.jsonl.
The tables of docs/results.md are printed by it.

Usage: python tools/runs_table.py FOLDER METRIC [METRIC ...] [--steps 0,250,500] [--percent probe/,knn/] [--group]
  FOLDER   a folder of run directories (each with metrics.jsonl); rows in the folder's order
  --group  a row per arm, not per run: runs named ARM-s<seed> pooled, each cell mean ± std (n)
  --paired BASE,OTHER  with --group, also a row per arm pair: run X-OTHER-s<seed> minus its twin
           X-BASE-s<seed> (same seed: same initial weights and batches), mean ± std (n) of the differences
  METRIC   a metric key, e.g. fd/cifar10-fd-public probe/penultimate
  --steps  the steps to show (default: every step at which any run logged the first metric)
  --percent  metric prefixes shown as percentages (default: probe/,knn/,accuracy/,finetune/)
"""

from __future__ import annotations

import argparse
import re
import statistics
from pathlib import Path

from ssgen.eval.metrics import METRICS_FILE, read_metrics


def values(run: Path, metric: str) -> dict[int, float]:
    """{step: value} of one metric; a later record of a step (a resumed run) wins."""
    return {record["step"]: record["metrics"][metric] for record in read_metrics(run) if metric in record["metrics"]}


def arm(run: Path) -> str:
    """The arm a run belongs to: its name without the seed suffix (gan-bf16-s2 -> gan-bf16)."""
    return re.sub(r"-s\d+$", "", run.name)


def cell(found: list[float], as_percent: bool, pooled: bool) -> str:
    """One value, or with --group the mean ± std of the seeds' values and their count."""
    if not found:
        return "-"
    scale, unit, digits = (100, "%", 1) if as_percent else (1, "", 2)
    mean = scale * statistics.fmean(found)
    if not pooled:
        return f"{mean:.{digits}f}{unit}"
    spread = scale * statistics.stdev(found) if len(found) > 1 else 0.0
    return f"{mean:.{digits}f} ± {spread:.{digits}f}{unit} ({len(found)})"


def twins(runs: list[Path], base: str, other: str) -> dict[str, list[tuple[Path, Path]]]:
    """{"gan-bf16 - fp32": [(gan-fp32-s0, gan-bf16-s0), ...]}: each BASE run with its OTHER twin."""
    by_name = {run.name: run for run in runs}
    pairs: dict[str, list[tuple[Path, Path]]] = {}
    for run in runs:
        twin = by_name.get(run.name.replace(f"-{base}-", f"-{other}-")) if f"-{base}-" in run.name else None
        if twin is not None:
            pairs.setdefault(f"{arm(twin)} - {base}", []).append((run, twin))
    return pairs


def table(folder: Path, metrics: list[str], steps: list[int] | None, percent: tuple[str, ...],
          group: bool = False, paired: tuple[str, str] | None = None) -> list[str]:
    runs = sorted(p.parent for p in folder.glob(f"*/{METRICS_FILE}"))
    if not runs:
        raise SystemExit(f"{folder} holds no run directories (no */{METRICS_FILE})")
    series = {run: {metric: values(run, metric) for metric in metrics} for run in runs}
    if steps is None:
        steps = sorted({step for run in runs for step in series[run][metrics[0]]})
    rows: dict[str, list[Path]] = {}
    for run in runs:
        rows.setdefault(arm(run) if group else run.name, []).append(run)
    header = [f"{metric} @{step}" for metric in metrics for step in steps]
    lines = [f"| {'arm' if group else 'run'} | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]

    def row(name: str, found, pooled: bool) -> None:
        """One table row; `found(metric, step)`: the values its cell summarises."""
        cells = [cell(found(metric, step), metric.startswith(percent), pooled) for metric in metrics for step in steps]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    for name, members in rows.items():
        row(name, lambda metric, step, members=members: [series[run][metric][step] for run in members
                                                         if step in series[run][metric]], group)
    for name, pairs in (twins(runs, *paired) if paired else {}).items():
        row(name, lambda metric, step, pairs=pairs: [series[other][metric][step] - series[base][metric][step]
                                                     for base, other in pairs if step in series[base][metric]
                                                     and step in series[other][metric]], True)
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("metrics", nargs="+")
    parser.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")])
    parser.add_argument("--percent", default="probe/,knn/,accuracy/,finetune/",
                        type=lambda s: tuple(x for x in s.split(",") if x))
    parser.add_argument("--group", action="store_true", help="a row per arm (runs ARM-s<seed>): mean ± std (n)")
    parser.add_argument("--paired", type=lambda s: tuple(s.split(",")), metavar="BASE,OTHER",
                        help="with --group: rows of OTHER minus BASE, twin runs of one seed (e.g. fp32,bf16)")
    args = parser.parse_args()
    if args.paired and (len(args.paired) != 2 or not args.group):
        parser.error(f"--paired {','.join(args.paired)!r}: expected two labels, BASE,OTHER, with --group")
    print("\n".join(table(args.folder, args.metrics, args.steps, args.percent, args.group, args.paired)))
