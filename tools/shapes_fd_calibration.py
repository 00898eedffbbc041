"""What FD(shapes) values mean: the shipped extractor's test accuracy, and the distance from the
train split's statistics to real images and to degraded copies of them.

    python tools/shapes_fd_calibration.py [-n 2000]

Reference: n train images. Compared: the test split (another sample of the same distribution:
the floor a perfect generator would reach at this n), the reference images mirrored, and the
reference images blurred or noised at several strengths (the same images, so only the
degradation separates them).
"""

from __future__ import annotations

import argparse

import torch
from torchvision.transforms.functional import gaussian_blur

from ssgen.data.shapes import SPLIT_SEEDS, make_shapes
from ssgen.eval.fid import RunningStats, frechet_distance, resolve_extractor
from ssgen.eval.shapes_extractor import NAME, RESOLUTION, load_classifier


def blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    kernel = 2 * round(3 * sigma) + 1
    return gaussian_blur(images.float(), [kernel, kernel], [sigma, sigma]).round().to(torch.uint8)


def noised(images: torch.Tensor, std: float, seed: int = 0) -> torch.Tensor:
    """Gaussian noise of `std` on the 0..1 scale."""
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed)) * std * 255
    return (images.float() + noise).round().clamp(0, 255).to(torch.uint8)


def statistics(net: torch.nn.Module, images: torch.Tensor):
    stats = RunningStats()
    with torch.no_grad():
        for chunk in images.split(500):
            stats.update(net(chunk)[0])
    return stats.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=2000, help="images on each side")
    args = parser.parse_args()
    torch.set_num_threads(1)

    train_images, _ = make_shapes(args.n, RESOLUTION, SPLIT_SEEDS["train"])
    test_images, test_labels = make_shapes(args.n, RESOLUTION, SPLIT_SEEDS["test"])
    with torch.no_grad():
        predictions = load_classifier()(test_images).argmax(1)
    print(f"classifier test accuracy: {(predictions == test_labels).float().mean().item():.4f} (n={args.n})")

    extractor = resolve_extractor(NAME)
    net = extractor.build(torch.device("cpu"))
    reference = statistics(net, train_images)
    half = args.n // 2
    compared = {
        "test split (real, unseen)": test_images,
        "train, mirrored": train_images.flip(3),
        "train, half of them blurred (sigma 1 px)": torch.cat([train_images[:half], blurred(train_images[half:], 1.0)]),
        **{f"train, blurred (sigma {sigma:g} px)": blurred(train_images, sigma) for sigma in (0.5, 1.0, 2.0)},
        **{f"train, noised (std {std:g})": noised(train_images, std) for std in (0.03, 0.1, 0.2)},
    }
    print(f"{extractor.label} against {args.n} train images:")
    for name, images in compared.items():
        print(f"  {name:42s} {frechet_distance(*statistics(net, images), *reference):10.3f}")


if __name__ == "__main__":
    main()
