"""Time a GAN / SS-GAN training step: ssgen's paths against a straightforward eager fp32 step and,
given its checkout, Mimicry's own SS-GAN train_steps, in one process, the sides alternating.

    python tools/bench_train.py --config configs/ssgan_cifar10.yaml --paths eager,step \\
        [--peer .cache/mimicry] [--rounds 3 --steps 5] [--threads 1] [--set k=v ...]

Paths of ssgen (comma-separated): eager, modules (torch.compile per network), step (each whole
train step compiled, ssgen/compiled.py); a `-cl` suffix runs that path in channels_last memory
format, `-bf16` under bf16 autocast (e.g. step-cl-bf16), `-plain` with the networks' resampling
convolutions computed the plain way (resample, then convolve: ssgen/nets/blocks.py); without them,
contiguous weights, the config's precision and the fused resampling convolutions. Each is what
`ssgen train` runs with those trainer settings, on device-resident batches. The reference step is
built from the same networks the plain way: plain resampling, separate D passes for real, fake and
rotated images, fp32, no compile. `--peer DIR` adds Mimicry (a checkout of
kwotsin/mimicry; its package is imported from DIR without its __init__, which pulls in TensorFlow
for metrics that its train steps do not use): SSGANGenerator32 / SSGANDiscriminator32 at the
config's widths, Adam with the config's rates, n_dis D train_steps then one G train_step per G
step, as Mimicry's Trainer calls them, with its MetricLog.

All sides start from their own initialisation and see the same synthetic batches. Each round
times every side for --steps G steps, in turn, so that a machine whose load changes (other jobs)
weighs on all sides alike; the median over rounds is reported, and each side's speed relative to
the first (Mimicry's when it is timed, else the reference's) as the median over rounds of the
ratio within a round, which a load that changes between rounds moves less than the ratio of
medians. Compilation happens in the untimed warm-up.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import statistics
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

from ssgen.config import COMPILE_MODES, load_config
from ssgen.methods.gan import d_adversarial_loss, g_adversarial_loss
from ssgen.nets.blocks import plain_resampling
from ssgen import precision
from ssgen.parallel import resolve_device
from ssgen.pretext.rotation import rotate4
from ssgen.rebuild import build_method


def reference_step(method, next_batch) -> dict[str, torch.Tensor]:
    """n_dis D steps and one G step, written the straightforward way."""
    cfg, G, D = method.cfg, method.G, method.D
    rotating = hasattr(method, "rotation_head")
    opt = method.optimizers()

    def rotation_loss(x):
        rotated, labels = rotate4(x[: round(len(x) * cfg.rotation_fraction)])
        return F.cross_entropy(method.rotation_head(D(rotated)), labels)

    for _ in range(cfg.n_dis):
        real = next_batch()
        fake = G(method.noise(len(real))).detach()
        d_loss = d_adversarial_loss(D.critic(D(real)).squeeze(1), D.critic(D(fake)).squeeze(1), cfg.loss)
        if rotating:
            d_loss = d_loss + cfg.beta * rotation_loss(real)
        opt["d"].zero_grad()
        d_loss.backward()
        opt["d"].step()
    fake = G(method.noise(len(real)))
    g_loss = g_adversarial_loss(D.critic(D(fake)).squeeze(1), cfg.loss)
    if rotating:
        g_loss = g_loss + cfg.alpha * rotation_loss(fake)
    opt["g"].zero_grad()
    g_loss.backward()
    opt["g"].step()
    return {"loss/d": d_loss.detach(), "loss/g": g_loss.detach()}


def import_mimicry(root: Path):
    """Mimicry's SS-GAN networks and MetricLog from a checkout, skipping the package __init__s
    that import its TensorFlow-based metrics."""
    package = root / "torch_mimicry"
    if not (package / "nets" / "ssgan" / "ssgan_32.py").is_file():
        sys.exit(f"--peer {root}: no torch_mimicry/nets/ssgan/ssgan_32.py there (a checkout of kwotsin/mimicry?)")
    for name in ("torch_mimicry", "torch_mimicry.nets", "torch_mimicry.training"):
        stub = types.ModuleType(name)
        stub.__path__ = [str(package.joinpath(*name.split(".")[1:]))]
        sys.modules[name] = stub
    ssgan = importlib.import_module("torch_mimicry.nets.ssgan.ssgan_32")
    metric_log = importlib.import_module("torch_mimicry.training.metric_log")
    return ssgan, metric_log.MetricLog


def mimicry_side(root: Path, cfg, device):
    """A step function running Mimicry's SS-GAN train_steps as its Trainer does."""
    ssgan, MetricLog = import_mimicry(root)
    m = cfg.method
    netG = ssgan.SSGANGenerator32(nz=m.generator.z_dim, ngf=m.generator.width, ss_loss_scale=m.alpha).to(device)
    netD = ssgan.SSGANDiscriminator32(ndf=m.discriminator.width, ss_loss_scale=m.beta).to(device)
    optG = torch.optim.Adam(netG.parameters(), m.g_optim.lr, betas=tuple(m.g_optim.betas))
    optD = torch.optim.Adam(netD.parameters(), m.d_optim.lr, betas=tuple(m.d_optim.betas))
    sizes = {"G": sum(p.numel() for p in netG.parameters()), "D": sum(p.numel() for p in netD.parameters())}

    def step(next_batch):
        log = MetricLog()
        for _ in range(m.n_dis):
            real = (next_batch(), None)
            netD.train_step(real, netG, optD, log, device=device)
        netG.train_step(real, netD, optG, log, device=device)
        return log

    return step, sizes


PATH_OPTIONS = {"cl": "channels_last memory format (trainer.memory_format=channels_last)",
                "bf16": "bf16 autocast (trainer.precision=bf16)",
                "plain": "the plain resampling convolutions (resample, then convolve)"}


def ssgen_side(method, path: str, amp):
    """ssgen's step on `path`: eager, modules or step, then any of -cl, -bf16, -plain (PATH_OPTIONS);
    without -cl the weights stay contiguous, without -bf16 the config's precision holds."""
    kind, *options = path.split("-")
    if kind not in COMPILE_MODES or not set(options) <= set(PATH_OPTIONS):
        sys.exit(f"--paths: unknown path {path!r}; expected one of {', '.join(COMPILE_MODES)}, each optionally "
                 f"followed by " + ", ".join(f"-{o} ({what})" for o, what in PATH_OPTIONS.items()))
    # Both ways explicitly: build_method gives the config's trainer.memory_format.
    method.to(memory_format=torch.channels_last if "cl" in options else torch.contiguous_format)
    if "bf16" in options:
        amp = torch.autocast(next(method.parameters()).device.type, dtype=torch.bfloat16)
    if "plain" in options:
        plain_resampling(method)
    method.optimizers()
    if kind == "modules":
        method.compile_networks()
    elif kind == "step":
        method.compile_steps()

    def step(next_batch):
        with amp:
            return method.train_step(next_batch)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/ssgan_cifar10.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--paths", default="eager", help="ssgen paths to time, comma-separated (see above)")
    parser.add_argument("--peer", type=Path, help="a checkout of kwotsin/mimicry: time its SS-GAN train_steps too")
    parser.add_argument("--no-reference", action="store_true", help="leave out the straightforward eager step")
    parser.add_argument("--steps", type=int, default=5, help="timed G steps per side per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the sides alternate within each")
    parser.add_argument("--warmup", type=int, default=2, help="untimed G steps per side first (compilation)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    device = resolve_device(cfg.trainer.device)
    if args.peer and cfg.method.name != "ssgan":
        sys.exit(f"--peer times Mimicry's SS-GAN; the config's method is {cfg.method.name!r}")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}; config {args.config} {' '.join(args.overrides)}")
    print(f"method {cfg.method.name}, batch {cfg.trainer.batch_size}, n_dis {cfg.method.n_dis}, G width "
          f"{cfg.method.generator.width}, D width {cfg.method.discriminator.width}, resolution {cfg.data.resolution}, "
          f"precision {cfg.trainer.precision}")

    torch.manual_seed(cfg.seed)
    base = build_method(cfg, device)
    base.to(memory_format=torch.contiguous_format)  # the reference's (Mimicry's are contiguous too)
    sides: dict[str, object] = {}
    if args.peer:
        sides["mimicry"], sizes = mimicry_side(args.peer, cfg, device)
        ours = {"G": sum(p.numel() for p in base.G.parameters()),
                "D": sum(p.numel() for p in [*base.D.parameters(), *base.tasks.parameters()])}
        print(f"parameters  mimicry: G {sizes['G']:,} D {sizes['D']:,}   ssgen: G {ours['G']:,} D {ours['D']:,}")
    if not args.no_reference:
        reference = plain_resampling(copy.deepcopy(base))
        sides["reference"] = lambda next_batch: reference_step(reference, next_batch)
    amp = precision.autocast(precision.training_precision(cfg.trainer.precision, device), device)
    for path in args.paths.split(","):
        sides[f"ssgen {path}"] = ssgen_side(copy.deepcopy(base), path, amp)

    # Synthetic device-resident batches: the benchmark measures the step, not the dataset.
    pool = torch.rand(16, cfg.trainer.batch_size, 3, cfg.data.resolution, cfg.data.resolution,
                      device=device) * 2 - 1
    counter = iter(range(10**12))

    def batches():
        return pool[next(counter) % len(pool)]

    def run(step, count):
        for _ in range(count):
            step(batches)
        if device.type == "cuda":
            torch.cuda.synchronize()

    for label, step in sides.items():
        start = time.perf_counter()
        run(step, args.warmup)
        print(f"warm-up {label}: {time.perf_counter() - start:.1f} s for {args.warmup} G steps", flush=True)

    times: dict[str, list[float]] = {label: [] for label in sides}
    for round_ in range(args.rounds):
        for label, step in sides.items():
            start = time.perf_counter()
            run(step, args.steps)
            times[label].append((time.perf_counter() - start) / args.steps)
        print(f"round {round_ + 1}: " + ", ".join(f"{k} {1000 * v[-1]:.0f} ms" for k, v in times.items()), flush=True)

    images = cfg.trainer.batch_size * cfg.method.n_dis
    baseline = next(iter(times))
    print(f"\nms per G step (median of {args.rounds} rounds of {args.steps}), and speed relative to {baseline} "
          "(median of the rounds' ratios, their range in brackets):")
    for label, values in times.items():
        seconds = statistics.median(values)
        ratios = [b / v for b, v in zip(times[baseline], values)]
        print(f"  {label:<18} {1000 * seconds:9.1f} ms  {images / seconds:7.1f} real images/s  "
              f"{statistics.median(ratios):5.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]")


if __name__ == "__main__":
    main()
