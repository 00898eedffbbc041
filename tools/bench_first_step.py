"""Time to the first train step of `ssgen train`, on a cold cache and then on the warm one.

Each round runs the command twice with one fresh SSGEN_CACHE (decoded images and FD reference
statistics): first cold, then warm. A run is stopped once its first step's line is logged
(trainer.log_every=1), so no training is left running. Prints the seconds to each phase's line
and the load average around the run (the machine may be shared).

    python tools/bench_first_step.py --data ../main/.cache/cifar10/train.zip --rounds 2
    python tools/bench_first_step.py --tree /tmp/base ...   # another checkout (before a change)
    python tools/bench_first_step.py ... --set eval.fid.every=0 --set eval.probe.every=0
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The log lines that end a phase, in the order they come, and the first step's line, which ends the run.
MILESTONES = {
    "start-up": re.compile(r"^data: loading .*\(train split\)"),  # Python, torch and ssgen imported, config read
    "train set": re.compile(r"^data: [\d,]+ train images, "),
    "evaluations' images": re.compile(r"^data: evaluations ready"),
    # run()'s first line on a CPU: built, restored, before step 0's evaluation
    "loop starts": re.compile(r"^CPU threads: "),
}
# Each evaluator's result line at step 0 (not its "evaluating" line, nor a heartbeat's "so far"): the last one
# ends the step-0 evaluation.
STEP0_RESULT = re.compile(r"^step 0  (?!evaluating)(?!.* so far)")
FIRST_STEP = re.compile(r"^step\s+1/\d+")


def one_run(tree: Path, cache: Path, run_dir: Path, config: str, data: str, overrides: list[str]) -> dict[str, float]:
    """Seconds from the command's start to each milestone's line and to the first step's."""
    sets = ["data.name=folder", f"data.path={data}", f"run_dir={run_dir}", "trainer.log_every=1",
            *overrides]
    command = [sys.executable, "-m", "ssgen", "train", "--config", config, "--no-progress", "--overwrite"]
    for option in sets:
        command += ["--set", option]
    env = dict(os.environ, PYTHONPATH=str(tree), SSGEN_CACHE=str(cache))
    started = time.perf_counter()
    seen: dict[str, float] = {}
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, bufsize=1)
    try:
        for line in process.stdout:
            now = time.perf_counter() - started
            print(f"    {now:7.1f}s  {line.rstrip()}", flush=True)
            for name, pattern in MILESTONES.items():
                if name not in seen and pattern.search(line):
                    seen[name] = now
            if STEP0_RESULT.search(line):
                seen["step 0 evaluated"] = now
            if FIRST_STEP.search(line):
                seen["first step"] = now
                break
    finally:
        process.kill()
        process.wait()
    if "first step" not in seen:
        raise SystemExit(f"the run ended (exit {process.returncode}) before its first step; its log is above")
    return seen


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tree", default=".", help="the ssgen checkout to run (PYTHONPATH and working directory)")
    parser.add_argument("--config", default="configs/ssgan_cifar10.yaml")
    parser.add_argument("--data", required=True, help="data.path: the train split's folder or zip")
    parser.add_argument("--rounds", type=int, default=2, help="cold-then-warm pairs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="more --set options")
    args = parser.parse_args()
    tree, data = Path(args.tree).resolve(), str(Path(args.data).resolve())
    rows = []
    for round_ in range(args.rounds):
        scratch = Path(tempfile.mkdtemp(prefix="ssgen-first-step-"))
        try:
            for state in ("cold", "warm"):
                before = load()
                print(f"round {round_ + 1}, {state} cache, load average {before}", flush=True)
                seen = one_run(tree, scratch / "cache", scratch / "run", args.config, data, args.overrides)
                rows.append((round_ + 1, state, seen, before, load()))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n{tree} ({args.config}, {' '.join(args.overrides) or 'no further --set'})")
    for round_, state, seen, before, after in rows:
        phases = "  ".join(f"{name} {seconds:.1f}s" for name, seconds in seen.items())
        print(f"round {round_} {state}: {phases}  (load {before} -> {after})")


if __name__ == "__main__":
    main()
