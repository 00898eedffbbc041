"""Train the classifier behind FD(shapes) and write its weights into the package.

    python tools/train_shapes_extractor.py            # -> ssgen/assets/shapes_classifier.pt

A small CNN (ssgen/eval/shapes_extractor.py) learns the ten glyph classes of the `shapes` train
split, with random horizontal flips because training runs flip their images too (a mirrored
glyph is still its class). Deterministic: fixed seeds, deterministic algorithms, one thread.
A few minutes on one CPU core. Test-split accuracy is printed at the end; the calibration of
the distances is tools/shapes_fd_calibration.py.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ssgen.data.shapes import DEFAULT_SIZES, SPLIT_SEEDS, make_shapes
from ssgen.eval.shapes_extractor import RESOLUTION, WEIGHTS, ShapesClassifier


@torch.no_grad()
def accuracy(net: ShapesClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    net.eval()
    predictions = torch.cat([net(chunk).argmax(1) for chunk in images.split(500)])
    return (predictions == labels).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()

    torch.set_num_threads(1)  # CPU kernels may sum in another order with more threads
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    train_images, train_labels = make_shapes(DEFAULT_SIZES["train"], RESOLUTION, SPLIT_SEEDS["train"])
    test_images, test_labels = make_shapes(DEFAULT_SIZES["test"], RESOLUTION, SPLIT_SEEDS["test"])

    net = ShapesClassifier()
    optimizer = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps = args.epochs * (len(train_images) // args.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps)
    order = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for epoch in range(args.epochs):
        net.train()
        permutation = torch.randperm(len(train_images), generator=order)
        for rows in permutation[: steps // args.epochs * args.batch_size].split(args.batch_size):
            images = train_images[rows]
            mirror = torch.rand(len(rows), generator=order) < 0.5
            images = torch.where(mirror[:, None, None, None], images.flip(3), images)
            loss = F.cross_entropy(net(images), train_labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"epoch {epoch + 1}/{args.epochs}: loss {loss.item():.4f}, "
              f"test accuracy {accuracy(net, test_images, test_labels):.4f}, {time.perf_counter() - start:.0f} s")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
