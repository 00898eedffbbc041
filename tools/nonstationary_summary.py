"""The non-stationary classifier's headline figures from runs of tools/nonstationary_cpu.sh: per arm,
the held-out accuracy of the returning tasks (each task's mean over its period, averaged over the ten
tasks) cycle by cycle, and the 10-class probe's peak against its final value; mean ± std over seeds.

    python tools/nonstationary_summary.py runs/nonstationary   # holds plain-s0, ..., rotation-s2
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from ssgen.eval.report import period_means

TASK, PROBE = "accuracy/task_balanced", "probe/encoder"


def read_run(run: Path) -> tuple[dict[int, float], dict[int, float], dict]:
    """The task-accuracy and probe curves of a run, and the task accuracy's protocol."""
    curves: dict[str, dict[int, float]] = {TASK: {}, PROBE: {}}
    protocol: dict = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        for name, curve in curves.items():
            if name in record["metrics"]:
                curve[record["step"]] = record["metrics"][name]
        if TASK in record["metrics"]:
            protocol = record["protocol"]
    return curves[TASK], curves[PROBE], protocol


def spread(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{100 * statistics.mean(values):.1f} ± {100 * std:.1f}"


def main(root: Path) -> None:
    arms: dict[str, list[Path]] = {}
    for run in sorted(root.glob("*-s*/metrics.jsonl")):
        arms.setdefault(run.parent.name.rsplit("-s", 1)[0], []).append(run.parent)
    if not arms:
        sys.exit(f"{root}: no <arm>-s<seed>/metrics.jsonl below it (the layout tools/nonstationary_cpu.sh writes)")
    for arm, runs in arms.items():
        cycles: list[list[float]] = []
        peaks, finals = [], []
        for run in runs:
            task, probe, protocol = read_run(run)
            tasks = len(protocol["task_order"])
            periods = period_means(task.items(), protocol["task_every"], tasks)
            complete = sorted({c for c, _ in periods if all((c, t) in periods for t in range(tasks))})
            cycles.append([statistics.mean(periods[c, t] for t in range(tasks)) for c in complete])
            peaks.append(max(probe.values()))
            finals.append(probe[max(probe)])
        print(f"{arm} (n={len(runs)}): returning-task accuracy, mean of the tasks' periods: " + ", ".join(
            f"cycle {c + 1} {spread([run[c] for run in cycles])}%" for c in range(min(map(len, cycles)))))
        if min(map(len, cycles)) > 1:
            print(f"  cycle 2 - cycle 1: {spread([run[1] - run[0] for run in cycles])} points")
        print(f"  10-class probe: peak {spread(peaks)}%, final {spread(finals)}%, "
              f"peak - final {spread([p - f for p, f in zip(peaks, finals)])} points")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/nonstationary"))
