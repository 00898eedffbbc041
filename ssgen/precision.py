"""The arithmetic a run's networks compute in: fp32, or bf16 autocast. One rule for the trainer and
the evaluations, so that an evaluation can follow the precision its run was trained in; and the
batches an evaluation's frozen networks compute in on a CPU."""

from __future__ import annotations

import contextlib

import torch

from ssgen.errors import ConfigError

PRECISIONS = ("fp32", "bf16")
AUTO = "auto"


def bf16_matrix_units() -> str | None:
    """The name of this CPU's bf16 matrix units, or None where it has none. Intel's AMX multiplies
    bf16 tiles in hardware; there bf16 autocast ran the SS-GAN step 2.6x faster than fp32 and trained
    as well (docs/performance.md). AVX512-BF16 (AMD Zen 4, Intel Cooper Lake) has bf16 dot products
    in vector registers only: 1.2-2.2x on the 3-seed runs' steps, so auto leaves it in fp32
    (trainer.precision=bf16 takes it)."""
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)  # torch >= 2.3; older: treated as absent
    return "AMX" if amx is not None and amx() else None


def training_precision(precision: str, device: torch.device) -> str:
    """trainer.precision resolved: auto is bf16 autocast on a GPU and on a CPU with bf16 matrix
    units, fp32 on other CPUs."""
    if precision == AUTO:
        return "bf16" if device.type == "cuda" or bf16_matrix_units() else "fp32"
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r}: expected {AUTO}, {' or '.join(PRECISIONS)}")
    return precision


def describe_choice(setting: str, resolved: str, device: torch.device) -> str:
    """The log line that says what a run computes in and why, so that a CPU user sees the other
    setting and what it measured."""
    if setting != AUTO:
        return f"precision: {resolved} (trainer.precision={setting})"
    if device.type == "cuda":
        return "precision: bf16 autocast (auto, on a GPU; trainer.precision=fp32 for full precision)"
    if resolved == "bf16":  # auto chose it: the CPU has the units
        return (f"precision: bf16 autocast (auto: this CPU has {bf16_matrix_units()} bf16 matrix units; "
                "trainer.precision=fp32 turns it off)")
    return ("precision: fp32 (auto: this CPU has no bf16 matrix units; trainer.precision=bf16 runs bf16 "
            "autocast, which trained as well in docs/performance.md's 3-seed runs)")


def evaluation_precision(precision: str, trained: str, device: torch.device) -> str:
    """An evaluation's precision (eval.fid.precision, eval.probe.precision) resolved: auto is the
    run's training precision (`trained`, a trainer.precision), so that a bf16 run is measured as
    it was trained, at its speed, and an fp32 run exactly as before."""
    return training_precision(trained if precision == AUTO else precision, device)


def autocast(precision: str, device: torch.device):
    """The context a resolved precision runs in: bf16 autocast, or nothing for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def recorded(precision: str) -> dict:
    """What a protocol records of an evaluation's precision: {"precision": "bf16"} where it departs
    from fp32, and nothing for fp32, which every figure recorded before precisions were (and so
    without the key) was measured in: their curves go on on one panel."""
    return {} if precision == "fp32" else {"precision": precision}


# On a CPU, frozen networks (the FD extractor, the probe's features) run fastest on small batches,
# whose activations stay in the core's cache: 100 images at 32x32 made the CIFAR-10 FD extractor
# 1.16x (fp32) to 1.25x (bf16) and a width-32 discriminator's features 1.1-1.3x faster than 250-500
# (docs/performance.md). Their features do not depend on the batch (eval mode), so this is speed only.
CPU_BATCH = 100


def inference_batches(images: torch.Tensor, batch_size: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """`images` split into batches of `batch_size`, at most CPU_BATCH on a CPU, for a frozen network."""
    size = min(batch_size, CPU_BATCH) if device.type == "cpu" else batch_size
    return images.split(size) if len(images) else ()
