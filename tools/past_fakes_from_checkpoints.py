"""The past-fakes forgetting measurement (ssgen/eval/past_fakes.py) after the fact, from a run's kept
checkpoints s1 < s2 < ...: the archive of step s is the fakes of checkpoint s's G from the monitor's
fixed latents of step s, and each later checkpoint's D scores it (its own fresh fakes are age 0).

The figures go into the run's metrics.jsonl under the monitor's names, with the protocol's source
set to this tool; run again, it replaces its own records rather than adding more. A run that is
training (its directory locked) is measured and its table printed, but its metrics file left alone.

Usage: python tools/past_fakes_from_checkpoints.py RUN_DIR [--device cpu]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ssgen.checkpoint import list_checkpoints
from ssgen.errors import SsgenError
from ssgen.eval.metrics import METRICS_FILE, append_metrics
from ssgen.eval.past_fakes import fakes, measure, protocol
from ssgen.files import atomic_write
from ssgen.methods.gan import GAN
from ssgen.rebuild import load_run
from ssgen.train.run_dir import lock_run_dir

SOURCE = "tools/past_fakes_from_checkpoints.py"


def measure_checkpoints(run_dir: Path, device: torch.device, log=print) -> tuple[list[tuple[int, dict]], dict]:
    """[(scoring step, metrics)] over the checkpoints, oldest first, and the protocol."""
    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        raise SystemExit(f"{run_dir} holds no checkpoints (checkpoints/step-*.pt)")
    archives: dict[int, torch.Tensor] = {}
    records = []
    for index, path in enumerate(checkpoints, start=1):
        run = load_run(path, device, warn=log)
        if not isinstance(run.method, GAN):
            raise SystemExit(f"{run_dir} is a {run.cfg.method.name} run: no GAN discriminator to score fakes with")
        cfg = run.cfg.eval.past_fakes
        archives[run.step] = fakes(run.method, cfg, run.cfg.seed, run.step)
        metrics = measure(run.method.D, {run.step - made: images for made, images in archives.items()},
                          cfg.batch_size)
        records.append((run.step, metrics))
        log(f"[{index}/{len(checkpoints)}] {path.name}: archived {len(archives[run.step])} fakes, "
            f"scored {len(archives)} archive(s); fresh fakes rejected "
            f"{100 * metrics['past_fakes/rejected_age0']:.1f}%")
    return records, {**protocol(cfg), "every": "checkpoints", "source": SOURCE}


def table(records: list[tuple[int, dict]]) -> list[str]:
    """Rows: the archive's step; columns: the scoring D's step; cells: the share D rejects."""
    steps = [step for step, _ in records]
    lines = ["rejected share of the fakes of step ROW by the D of step COLUMN",
             f"{'archive':>9}" + "".join(f"{step:>9}" for step in steps)]
    for made in steps:
        cells = [metrics.get(f"past_fakes/rejected_age{scoring - made}") for scoring, metrics in records]
        lines.append(f"{made:>9}" + "".join(f"{'':>9}" if c is None else f"{100 * c:>8.1f}%" for c in cells))
    return lines


def write_metrics(run_dir: Path, records: list[tuple[int, dict]], measured: dict) -> None:
    """This tool's earlier records replaced by these, under the run's lock."""
    lock = lock_run_dir(run_dir)
    try:
        path = run_dir / METRICS_FILE
        lines = path.read_text().splitlines(keepends=True) if path.exists() else []
        atomic_write(path, "".join(line for line in lines if not ours(line)))
        for step, metrics in records:
            append_metrics(run_dir, step, metrics, measured)
    finally:
        lock.close()


def ours(line: str) -> bool:
    try:
        return json.loads(line).get("protocol", {}).get("source") == SOURCE
    except (ValueError, AttributeError):
        return False


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    records, measured = measure_checkpoints(args.run_dir, torch.device(args.device))
    print("\n".join(table(records)))
    try:
        write_metrics(args.run_dir, records, measured)
        print(f"wrote {len(records)} records to {args.run_dir / METRICS_FILE}")
    except SsgenError as err:
        print(f"{METRICS_FILE} left as it is: {err}")
