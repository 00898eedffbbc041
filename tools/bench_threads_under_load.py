"""trainer.threads on a shared CPU: the quick demo's steps/s under one competing job, at each
thread setting, the settings taking turns.

    python tools/bench_threads_under_load.py [--config configs/quick.yaml] [--steps 50] \\
        [--threads auto,1,2] [--rounds 1] [--competitor-threads 2] [--quiet-too]

Each setting is `ssgen train` itself (a subprocess: a fresh torch, its own thread pool), on the
config with every evaluation and grid off and --steps steps, in a temporary run directory; its
speed is the median of the trainer's own perf/steps_per_s windows (so start-up is left out), and
its wall time with start-up is given beside it. `auto` is trainer.threads=0, whose choice the
run's log names. The competing job is another process started before the first setting and kept
running to the end: a torch matrix-multiply loop on --competitor-threads threads (default: the
physical cores, what a second job at torch's default takes), the kind of job a shared machine
runs beside yours. --quiet-too adds a round of every setting with no competitor, first, for the
contrast (a machine that other work already loads is not quiet, and says so: the load average is
printed before each round). Settings alternate within a round, so that a load that drifts weighs
on all alike; with several rounds the median over rounds is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ssgen.threads import physical_cores  # noqa: E402

COMPETITOR = """
import torch
torch.set_num_threads({threads})
a = torch.randn(768, 768)
while True:
    a = torch.tanh(a @ a)
"""


def parse_settings(text: str) -> list[str]:
    settings = [item.strip() for item in text.split(",") if item.strip()]
    for item in settings:
        if item != "auto" and not (item.isdigit() and int(item) > 0):
            sys.exit(f"--threads {text!r}: {item!r} is neither auto nor a positive thread count")
    return settings


def train_once(config: str, steps: int, setting: str, overrides: list[str]) -> dict:
    """One `ssgen train` at this thread setting: its median steps/s, wall time and chosen threads."""
    with tempfile.TemporaryDirectory() as run_dir:
        threads = 0 if setting == "auto" else setting
        sets = [f"run_dir={run_dir}", f"trainer.steps={steps}", f"trainer.threads={threads}",
                "trainer.device=cpu", f"trainer.log_every={max(1, steps // 5)}", f"trainer.sample_every={steps + 1}",
                f"trainer.checkpoint_every={steps + 1}", "eval.fid.every=0", "eval.probe.every=0",
                "eval.tasks.every=0", "eval.knn.every=0", *overrides]
        command = [sys.executable, "-m", "ssgen", "train", "--config", config, "--no-progress",
                   *[part for item in sets for part in ("--set", item)]]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        started = time.perf_counter()
        result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - started
        if result.returncode != 0:
            sys.exit(f"ssgen train at threads={setting} failed:\n{result.stderr[-2000:]}")
        records = map(json.loads, open(Path(run_dir) / "metrics.jsonl"))
        rates = [record["metrics"]["perf/steps_per_s"] for record in records
                 if "perf/steps_per_s" in record["metrics"]]
    chosen = next((line.split("(")[0].split(":")[1].strip() for line in result.stderr.splitlines()
                   if line.startswith("CPU threads:")), setting)
    return {"steps_per_s": statistics.median(rates), "wall_s": wall, "threads": chosen}


def one_round(args, settings: list[str], label: str) -> dict[str, dict]:
    print(f"{label}: load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    results = {}
    for setting in settings:
        results[setting] = train_once(args.config, args.steps, setting, args.overrides)
        r = results[setting]
        print(f"  threads={setting:<5} ran {r['threads']:>2} threads: {r['steps_per_s']:7.2f} steps/s "
              f"(median of the trainer's windows), {r['wall_s']:6.1f} s wall with start-up", flush=True)
    return results


def summary(rounds: list[dict[str, dict]], settings: list[str], label: str) -> None:
    base = settings[0]
    print(f"{label}, median over {len(rounds)} round(s):")
    for setting in settings:
        rate = statistics.median(r[setting]["steps_per_s"] for r in rounds)
        ratio = statistics.median(r[setting]["steps_per_s"] / r[base]["steps_per_s"] for r in rounds)
        print(f"  threads={setting:<5} {rate:7.2f} steps/s  {ratio:5.2f}x of threads={base}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "quick.yaml"))
    parser.add_argument("--steps", type=int, default=50, help="Training steps per setting.")
    parser.add_argument("--threads", default="auto,1,2", help="Settings to compare: auto and/or counts.")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--competitor-threads", type=int, default=physical_cores())
    parser.add_argument("--quiet-too", action="store_true", help="First a round with no competing job.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    settings = parse_settings(args.threads)
    print(f"{args.config}, {args.steps} steps per setting; {physical_cores()} physical cores, "
          f"{os.cpu_count()} CPUs")
    if args.quiet_too:
        summary([one_round(args, settings, "no competing job")], settings, "no competing job")
    competitor = subprocess.Popen([sys.executable, "-c", COMPETITOR.format(threads=args.competitor_threads)])
    try:
        time.sleep(2)  # the competitor at full speed before the first setting
        label = f"one competing job ({args.competitor_threads} threads of matrix products)"
        rounds = [one_round(args, settings, f"{label}, round {i + 1}") for i in range(args.rounds)]
    finally:
        competitor.terminate()
        competitor.wait()
    summary(rounds, settings, label)


if __name__ == "__main__":
    main()
