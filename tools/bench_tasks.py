"""What each self-supervised task costs: the train step of every task on a GAN's discriminator
beside the plain GAN's, and alone on an encoder beside RotNet's, augmentations included.

    python tools/bench_tasks.py                       # CPU budget sizes of tools/cifar10_cpu_tasks.sh
    python tools/bench_tasks.py --steps 10 --rounds 5 --threads 2

The sizes are those of the CPU-budget comparison (GAN: SNGAN ResNet width 32, n_dis 2, batch 32;
encoders: ResNet-18 width 16, batch 32; iBOT a small ViT), on 32x32 batches of the embedded shapes
data through the real batch stream (labels and dataset rows included, as exemplar needs). The
entries are timed in turns, several rounds, and each one's median is reported, so a machine busy
with other work slows all of them alike and the ratios stay readable.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from ssgen.config import load_config
from ssgen.data import BatchStream, build_dataset
from ssgen.rebuild import build_method
from ssgen.step import Progress

GAN = ["method.generator.width=32", "method.discriminator.width=32", "method.n_dis=2", "trainer.batch_size=32"]
ENCODER = ["method.encoder.width=16", "trainer.batch_size=32"]
VIT = ["method.encoder.name=vit", "method.encoder.width=128", "method.encoder.depth=6", "method.encoder.heads=4",
       "method.optim.name=adamw", "method.optim.lr=5e-4"]

# name, config, overrides; the first of each group is what the others are read against.
ENTRIES = [
    ("gan", "gan_cifar10", GAN),
    ("gan + rotation (ssgan)", "ssgan_cifar10", GAN),
    ("gan + jigsaw", "gan_cifar10", [*GAN, "method.tasks=[{name: jigsaw, permutations: 100, hidden: 256}]"]),
    ("gan + exemplar", "gan_cifar10", [*GAN, "method.tasks=[{name: exemplar, classes: 1000, hidden: 256}]"]),
    ("gan + simclr", "gan_cifar10", [*GAN, "method.tasks=[{name: simclr, hidden: 256, dim: 128}]"]),
    ("gan + moco", "gan_cifar10", [*GAN, "method.tasks=[{name: moco, hidden: 256, dim: 128, queue: 4096}]"]),
    ("gan + byol", "gan_cifar10", [*GAN, "method.tasks=[{name: byol, hidden: 256, dim: 128, predictor_hidden: 256}]"]),
    ("gan + dino", "gan_cifar10",
     [*GAN, "method.tasks=[{name: dino, prototypes: 1024, hidden: 256, bottleneck: 128}]"]),
    ("rotnet", "rotnet_cifar10", ENCODER),
    ("jigsaw", "jigsaw_cifar10", [*ENCODER, "method.tasks=[{name: jigsaw, permutations: 100, hidden: 512}]"]),
    ("exemplar", "exemplar_cifar10", [*ENCODER, "method.tasks=[{name: exemplar, classes: 4000, hidden: 512}]"]),
    ("simclr", "rotnet_cifar10", [*ENCODER, "method.tasks=[{name: simclr, hidden: 512, dim: 128}]"]),
    ("moco", "rotnet_cifar10", [*ENCODER, "method.tasks=[{name: moco, hidden: 512, dim: 128, queue: 4096}]"]),
    ("byol", "rotnet_cifar10", [*ENCODER, "method.tasks=[{name: byol, hidden: 512, dim: 128, predictor_hidden: 512}]"]),
    ("dino", "rotnet_cifar10",
     [*ENCODER, "method.tasks=[{name: dino, prototypes: 1024, hidden: 512, bottleneck: 128}]"]),
    ("ibot (vit)", "rotnet_cifar10", [*ENCODER, *VIT,
                                      "method.tasks=[{name: ibot, prototypes: 1024, hidden: 512, bottleneck: 128}]"]),
]


class Entry:
    def __init__(self, name: str, config: str, overrides: list[str], device: torch.device):
        # the embedded data stands in for CIFAR-10: same size, no files needed
        cfg = load_config(f"configs/{config}.yaml", [*overrides, "data.name=shapes", "data.train_size=2048"])
        torch.manual_seed(cfg.seed)
        self.name, self.cfg = name, cfg
        self.method = build_method(cfg, device)
        self.method.optimizers()
        self.batches = BatchStream(build_dataset(cfg.data, "train"), cfg.trainer.batch_size, device,
                                   flip=True, seed=cfg.seed)
        n_dis = getattr(cfg.method, "n_dis", 1)
        self.images = cfg.trainer.batch_size * n_dis  # real images a step reads
        self.step, self.times = 0, []

    def run(self, steps: int) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            self.step += 1
            self.method.train_step(self.batches, Progress(self.step, 10**6))
        return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5, help="timed steps per entry per round")
    parser.add_argument("--rounds", type=int, default=3, help="turns through all entries (median taken)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="*", help="entry names to time (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    chosen = [e for e in ENTRIES if not args.only or e[0] in args.only]
    entries = [Entry(name, config, overrides, device) for name, config, overrides in chosen]
    for entry in entries:
        entry.run(2)  # warm-up: first-call allocations, lazily built parts
    for _ in range(args.rounds):
        for entry in entries:
            entry.times.append(entry.run(args.steps))
    print(f"CPU, {args.threads} thread(s), torch {torch.__version__}; {args.steps} steps x {args.rounds} rounds "
          "per entry, medians; 32x32, batch 32")
    print(f"{'train step':26s} {'ms/step':>9s} {'images/s':>9s} {'x base':>7s}")
    base = None
    for entry in entries:
        seconds = statistics.median(entry.times)
        if entry.name in ("gan", "rotnet") or base is None:
            base = seconds
        print(f"{entry.name:26s} {1000 * seconds:9.1f} {entry.images / seconds:9.0f} {seconds / base:7.2f}")


if __name__ == "__main__":
    main()
