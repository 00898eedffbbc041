"""The run's metrics file: one JSON object per line, appended as training goes.

Each record: {"step": int, "time": unix seconds, "metrics": {name: float}, "protocol": {...}}.
`protocol` says how a figure was measured (sample counts, split, extractor), so that figures
measured differently are never compared silently.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
# How a top-1 figure's standard error is read, as its protocol records it: n test images, each
# right or wrong. On 90 images a 70% figure carries +-4.8 points.
STANDARD_ERROR = "binomial: sqrt(p (1 - p) / test_size)"


def binomial_standard_error(accuracy: float, test_size: int) -> float:
    """The standard error of a top-1 figure measured on `test_size` images."""
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / test_size)


def append_metrics(run_dir: str | Path, step: int, metrics: dict[str, float],
                   protocol: dict | None = None) -> None:
    record = {"step": int(step), "time": time.time(), "metrics": {k: float(v) for k, v in metrics.items()}}
    if protocol:
        record["protocol"] = protocol
    with open(Path(run_dir) / METRICS_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: str | Path) -> list[dict]:
    """All records of a run; a line cut short by a crash is skipped, not fatal."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
