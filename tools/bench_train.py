"""Time a GAN / SS-GAN training step: ssgen's path against a straightforward eager fp32 step.

    python tools/bench_train.py --config configs/ssgan_cifar10.yaml [--steps 50] [--set k=v ...]

The project's path is exactly what `ssgen train` runs (method.train_step under the trainer's
autocast, torch.compile when trainer.compile is set, device-resident batches). The reference
step is built from the same networks the plain way: separate D passes for real, fake and rotated
images, fp32, no compile. Both start from the same weights and batches; their first-step losses
are printed side by side as a check that the fast path computes the same thing.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
import torch.nn.functional as F

from ssgen.config import load_config
from ssgen.methods.gan import d_adversarial_loss, g_adversarial_loss
from ssgen.pretext.rotation import rotate4
from ssgen.checkpoint import build_method
from ssgen.parallel import resolve_device
from ssgen.train.trainer import autocast


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


def time_steps(step, method, batches, warmup: int, steps: int, device) -> float:
    """Seconds per step after warm-up; synchronises only at the ends of the timed span."""
    for _ in range(warmup):
        step(method, batches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(method, batches)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/ssgan_cifar10.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--steps", type=int, default=20, help="timed G steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed G steps first (compilation happens here)")
    parser.add_argument("--no-reference", action="store_true", help="time only ssgen's path")
    args = parser.parse_args()

    cfg = load_config(args.config, args.overrides)
    device = resolve_device(cfg.trainer.device)
    torch.manual_seed(cfg.seed)
    method = build_method(cfg, device)
    reference = copy.deepcopy(method)
    if cfg.trainer.compile:
        method.compile_networks()
    # Synthetic device-resident batches: the benchmark measures the step, not the dataset.
    pool = torch.rand(16, cfg.trainer.batch_size, 3, cfg.data.resolution, cfg.data.resolution,
                      device=device) * 2 - 1
    counter = iter(range(10**9))

    def batches():
        return pool[next(counter) % len(pool)]

    amp = autocast(cfg, device)

    def project_step(m, next_batch):
        with amp:
            return m.train_step(next_batch)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    images = cfg.trainer.batch_size * cfg.method.n_dis
    print(f"device: {name}; torch {torch.__version__}; config {args.config} {' '.join(args.overrides)}")
    print(f"method {cfg.method.name}, batch {cfg.trainer.batch_size}, n_dis {cfg.method.n_dis}, "
          f"resolution {cfg.data.resolution}, precision {cfg.trainer.precision}, compile {cfg.trainer.compile}")

    # Same weights, same batches, same noise: the first step's losses should agree.
    torch.manual_seed(1)
    counter = iter(range(10**9))
    ours = {k: float(v) for k, v in project_step(method, batches).items() if k in ("loss/d", "loss/g")}
    if not args.no_reference:
        torch.manual_seed(1)
        counter = iter(range(10**9))
        theirs = {k: float(v) for k, v in reference_step(reference, batches).items()}
        print("first-step losses  ssgen: " + ", ".join(f"{k}={v:.5f}" for k, v in ours.items())
              + "  reference: " + ", ".join(f"{k}={v:.5f}" for k, v in theirs.items()))

    seconds = time_steps(project_step, method, batches, args.warmup, args.steps, device)
    print(f"ssgen     : {1000 * seconds:8.2f} ms per G step, {images / seconds:9.0f} images/s")
    if not args.no_reference:
        ref_seconds = time_steps(reference_step, reference, batches, min(args.warmup, 2), args.steps, device)
        print(f"reference : {1000 * ref_seconds:8.2f} ms per G step, {images / ref_seconds:9.0f} images/s"
              " (eager fp32, separate D passes)")
        print(f"speed-up  : {ref_seconds / seconds:.2f}x")


if __name__ == "__main__":
    main()
