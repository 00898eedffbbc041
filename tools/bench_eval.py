"""Seconds for the measurements on this machine: FD of N samples against cached reference
statistics, and a linear probe on N train + N test images, each as a whole and split into its
stages (FD: sampling, the extractor's features, the running statistics, the distance's
eigendecompositions; the probe: the frozen features, the classifier's fit), so that it shows
where the time goes.

The model is a random-init SNGAN ResNet; its generator's and discriminator's widths (default 64,
small, so that the measurement's own cost shows; the CIFAR-10 reference is 256 / 128) set how
much of the time goes to sampling and to probe features; or, with --run, a trained run's
checkpoint. Images are random uint8, or with --data a folder or zip of real images (its train
split for the reference and the probe's fit, its test split for the probe's test): their content
does not change the features' cost, but it does the probe's fit (L-BFGS runs to convergence).

With --precisions fp32,bf16 the whole FD and probe calls (eval.fid.precision, eval.probe.precision)
take turns for --rounds rounds, so that a changing load weighs on each alike; the values come
with them, and the load average with each time.

    python tools/bench_eval.py --extractor ../shared/fd/cifar10-fd-public.pt -n 10000 [--threads 1]
    python tools/bench_eval.py --extractor ../shared/fd/cifar10-fd-public.pt -n 10000 --threads 1 \
        --run runs/x/checkpoints/step-00004000.pt --data .cache/cifar10/train.zip --precisions fp32,bf16
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time

import torch

from ssgen.config import DataConfig, config_from_dict
from ssgen.data import build_dataset
from ssgen.eval.fid import FrechetDistance, RunningStats, fake_batches, frechet_distance, resolve_extractor
from ssgen.eval.probe import ProbeData, extract_features, frozen_features, linear_probe, probe_accuracy
from ssgen.parallel import memory_format, resolve_device
from ssgen.rebuild import build_method, load_run


class RandomImages:
    """The ImageSet interface over seeded random uint8 images with 10 classes."""

    def __init__(self, n: int, resolution: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (n, 3, resolution, resolution), generator=g, dtype=torch.uint8)
        self.labels = torch.randint(0, 10, (n,), generator=g)
        self.classes, self.name, self.split = [str(i) for i in range(10)], "random", "train"
        self.resolution = resolution
        self.seed = seed

    def __len__(self):
        return len(self.images)

    def get(self, indices):
        return self.images[indices], self.labels[indices]

    def fingerprint(self):
        return hashlib.sha256(f"random-{len(self)}-{self.resolution}-{self.seed}".encode()).hexdigest()


def timed(fn):
    return timed_both(fn)[::2]


def timed_both(fn):
    """(wall seconds, result, this process's CPU seconds) of fn(). At --threads 1 on a shared CPU the
    CPU seconds are the time it computed, which waiting for a core does not inflate."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start, cpu = time.perf_counter(), time.process_time()
    result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extractor", required=True, help="TorchScript extractor file or inception-v3-compat")
    parser.add_argument("--weights", default="", help="Inception weights file (offline)")
    parser.add_argument("-n", type=int, default=10000, help="samples for FD; train and test images for the probe")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--g-width", type=int, default=64, help="generator width (reference: 256)")
    parser.add_argument("--d-width", type=int, default=64, help="discriminator width (reference: 128)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--run", help="a trained run's checkpoint (or run directory) instead of a random-init SNGAN")
    parser.add_argument("--data", help="real images (folder or .zip, with a test split) instead of random ones")
    parser.add_argument("--precisions", default="fp32",
                        help="comma-separated fp32, bf16: the whole FD and probe calls in each, taking turns")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of --precisions")
    parser.add_argument("--formats", type=int, default=0, metavar="ROUNDS",
                        help="only compare the memory formats: sampling and D features of n images in "
                             "contiguous and channels_last weights, alternating for ROUNDS rounds")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}")
    cfg = config_from_dict({"method": {"name": "gan", "generator": {"width": args.g_width},
                                       "discriminator": {"width": args.d_width}},
                            "eval": {"probe": {"train_size": args.n, "test_size": args.n}}})
    torch.manual_seed(0)
    if args.run:
        run = load_run(args.run, device, warn=print)
        method, cfg.data = run.method, run.cfg.data
        print(f"{run.checkpoint} (step {run.step}, trained in {run.cfg.trainer.precision}), batch {args.batch_size}")
    else:
        method = build_method(cfg, device)
        print(f"random-init SNGAN, G width {args.g_width}, D width {args.d_width}, batch {args.batch_size}")
    if args.formats:
        return compare_memory_formats(method, args.n, args.batch_size, args.formats, device)
    chosen = cfg.trainer.memory_format
    print(f"networks in {memory_format(chosen, device)} (trainer.memory_format: {chosen})")
    extractor = resolve_extractor(args.extractor, args.weights)
    if args.data:
        real, test = (build_dataset(DataConfig(name="folder", path=args.data), split) for split in ("train", "test"))
    else:
        real, test = RandomImages(args.n, cfg.data.resolution, seed=1), RandomImages(args.n, cfg.data.resolution, 2)
    precisions = args.precisions.split(",")
    if precisions != ["fp32"]:
        return compare_precisions(method, real, test, extractor, precisions, args, cfg.eval.probe, device)

    with tempfile.TemporaryDirectory() as cache:
        os.environ["SSGEN_CACHE"] = cache  # a private cache: the reference is built once, then read
        seconds, _ = timed(FrechetDistance(real, extractor, device, args.n, batch_size=args.batch_size).reference)
        print(f"reference statistics of {args.n} real images (built once, then cached): {seconds:.1f} s")
        distance = FrechetDistance(real, extractor, device, args.n, batch_size=args.batch_size)
        seconds, value = timed(lambda: distance(method))
        print(f"{extractor.label} of {args.n} samples vs cached reference: {seconds:.1f} s (value {value:.2f})")

        fd_stages(distance, method, args.n, args.batch_size)

    data = ProbeData.from_sets(real, test, args.n, args.n)
    seconds, accuracy = timed(lambda: linear_probe(method, data, cfg.eval.probe, device))
    print(f"linear probe on {args.n}+{args.n} images (layer {', '.join(accuracy)}): {seconds:.1f} s")
    probe_stages(method, data, cfg.eval.probe, device)


def compare_precisions(method, real, test, extractor, precisions: list[str], args, probe_cfg, device) -> None:
    """The whole FD call against cached reference statistics and the whole probe call in each
    precision, taking turns for args.rounds rounds: seconds, the load average, and the values."""
    data = ProbeData.from_sets(real, test, args.n, args.n)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SSGEN_CACHE"] = cache
        distances = {p: FrechetDistance(real, extractor, device, args.n, batch_size=args.batch_size, precision=p)
                     for p in precisions}
        for precision, distance in distances.items():
            seconds, _, cpu = timed_both(distance.reference)
            print(f"{precision}: reference statistics of {args.n} real images (once, then cached): {seconds:.1f} s, "
                  f"CPU {cpu:.1f} s", flush=True)
        for round_ in range(args.rounds):
            for precision, distance in distances.items():
                load = os.getloadavg()[0]
                seconds, value, cpu = timed_both(lambda distance=distance: distance(method))
                print(f"round {round_ + 1}, {precision}: {extractor.label}-{args.n} vs cached reference "
                      f"{seconds:.1f} s, "
                      f"CPU {cpu:.1f} s (load {load:.1f}-{os.getloadavg()[0]:.1f}), value {value:.3f}", flush=True)
                load = os.getloadavg()[0]
                seconds, results, cpu = timed_both(lambda precision=precision: linear_probe(
                    method, data, probe_cfg, device, precision=precision))
                found = ", ".join(f"{layer} {100 * r.accuracy:.2f}% ± {100 * r.standard_error:.2f} ({r.iterations} it)"
                                  for layer, r in results.items())
                print(f"round {round_ + 1}, {precision}: probe {args.n}/{args.n} {seconds:.1f} s, CPU {cpu:.1f} s "
                      f"(load {load:.1f}-{os.getloadavg()[0]:.1f}), {found}", flush=True)


def fd_stages(distance: FrechetDistance, method, n: int, batch_size: int) -> None:
    """The FD call's stages one after another, as FrechetDistance runs them interleaved."""
    seconds, fakes = timed(lambda: list(fake_batches(method, n, batch_size, distance.seed)))
    print(f"  sampling {n} images (G forward, to uint8): {seconds:.1f} s")
    net = distance.net()
    seconds, features = timed(lambda: [net(images.to(distance.device))[0] for images in fakes])
    print(f"  extractor features: {seconds:.1f} s")
    stats = RunningStats()
    seconds, (mu, sigma) = timed(lambda: [stats.update(f) for f in features] and stats.finish())
    print(f"  running mean and covariance (float64): {seconds:.2f} s")
    seconds, _ = timed(lambda: frechet_distance(mu, sigma, *distance.reference()))
    print(f"  distance (two eigendecompositions, {len(mu)}-d): {seconds:.2f} s")


def compare_memory_formats(method, n: int, batch_size: int, rounds: int, device) -> None:
    """Median seconds of sampling n images and of D's features of n images in each memory format,
    the formats taking turns so that a changing load weighs on both alike."""
    images = torch.randint(0, 256, (n, 3, method.data.resolution, method.data.resolution), dtype=torch.uint8)
    formats = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    times = {(name, what): [] for name in formats for what in ("sampling", "features")}
    for _ in range(rounds):
        for name, layout in formats.items():
            method.to(memory_format=layout)
            times[name, "sampling"].append(timed(lambda: list(fake_batches(method, n, batch_size, 0)))[0])
            times[name, "features"].append(timed(lambda: extract_features(
                method, images, method.check_features(None), batch_size, device))[0])
    for (name, what), values in times.items():
        print(f"  {what} of {n} images, {name}: {statistics.median(values):.1f} s (median of {rounds})")


def probe_stages(method, data: ProbeData, cfg, device) -> None:
    layers = method.check_features(cfg.layers)
    seconds, (train, test) = timed(lambda: frozen_features(method, data, layers, cfg.batch_size, device))
    print(f"  frozen features of the train and test images: {seconds:.1f} s")
    seconds, _ = timed(lambda: [probe_accuracy(train[layer], data.train_labels, test[layer], data.test_labels,
                                               data.num_classes, cfg.max_iter, cfg.l2) for layer in layers])
    print(f"  classifier fit ({cfg.max_iter} L-BFGS iterations) and test: {seconds:.1f} s")


if __name__ == "__main__":
    main()
