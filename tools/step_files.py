"""Which of ssgen's files one SS-GAN D step runs code from, D's and G's networks left out: the
files a reader follows to read the step. Traces the Python calls of one `d_step` (after a
warm-up step, so lazy builds such as the optimizers' are not counted).

    python tools/step_files.py [--method ssgan] [--step d]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import ssgen
from ssgen.config import load_config
from ssgen.methods import METHODS
from ssgen.step import Batch, DataInfo, Progress

PACKAGE = Path(ssgen.__file__).resolve().parent
NETWORKS = PACKAGE / "nets"


def files_run(call) -> list[str]:
    """ssgen's files, outside nets/, whose Python code runs during call()."""
    seen: set[str] = set()

    def trace(frame, event, arg):
        path = Path(frame.f_code.co_filename)
        if event == "call" and path.is_relative_to(PACKAGE) and not path.is_relative_to(NETWORKS):
            seen.add(str(path.relative_to(PACKAGE.parent)))
        return None

    sys.setprofile(trace)
    try:
        call()
    finally:
        sys.setprofile(None)
    return sorted(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="ssgan")
    parser.add_argument("--step", default="d", help="the declared step to trace (a GAN's d or g)")
    args = parser.parse_args()
    cfg = load_config(None, [f"method.name={args.method}", "method.generator.width=8",
                             "method.discriminator.width=8", "trainer.batch_size=8"])
    torch.manual_seed(0)
    method = METHODS.get(cfg.method.name, "method.name")(cfg.method, DataInfo(resolution=32))
    batch = Batch.unlabelled(torch.rand(8, 3, 32, 32) * 2 - 1)
    step = getattr(method, f"{args.step}_step")
    step(batch, Progress(0, 10))
    files = files_run(lambda: step(batch, Progress(1, 10)))
    print(f"one {args.method} {args.step} step runs code from {len(files)} files of ssgen (nets/ left out):")
    for name in files:
        print(f"  {name}")


if __name__ == "__main__":
    main()
