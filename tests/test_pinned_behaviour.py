"""Behaviour pinned across refactors: short seeded runs of GAN, SS-GAN, RotNet, SimCLR, one
autoencoder and two semi-supervised methods give the losses and weights recorded in
pinned_behaviour.json, bit for bit.

The figures were recorded from the tree before the code was reshaped (docs/design.md), so a
change that moves code without meaning to change what it computes must leave them as they are.
Bits depend on torch's kernels: on the torch version and CPU capability that recorded them the
comparison is exact; elsewhere losses and weight sums must agree to 1e-4 (relative).

Record again, only where a change means to alter what is computed:
    python tests/test_pinned_behaviour.py --record
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
CONFIGS = HERE.parent / "configs"
RECORD = HERE / "pinned_behaviour.json"

# Small networks and data, evaluations off, one thread: seconds per run.
COMMON = ["trainer.steps=3", "trainer.log_every=1", "trainer.threads=1", "trainer.num_grid_images=4",
          "trainer.sample_every=1000", "data.train_size=64", "data.test_size=16", "trainer.batch_size=8",
          "eval.fid.every=0", "eval.probe.every=0", "eval.tasks.every=0"]
ENCODER = ["method.encoder.width=8"]
RUNS = {
    "gan": ("gan_shapes.yaml", ["method.generator.width=8", "method.discriminator.width=8",
                                "method.generator.z_dim=8", "method.n_dis=2"]),
    "ssgan": ("quick.yaml", ["method.generator.width=8", "method.discriminator.width=8",
                             "method.generator.z_dim=8", "method.n_dis=2"]),
    "rotnet": ("rotnet_shapes.yaml", ENCODER),
    "simclr": ("simclr_shapes.yaml", ENCODER),
    "denoising": ("denoising_shapes.yaml", [*ENCODER, "method.decoder.width=8"]),
    "s4l": ("s4l_shapes.yaml", [*ENCODER, "eval.accuracy.every=0", "data.labels=0.25"]),
    "pseudo_label": ("pseudo_label_shapes.yaml", [*ENCODER, "eval.accuracy.every=0", "data.labels=0.25"]),
}


# Metric names changed on purpose since the recording (the values are pinned as before):
# S4L's task metrics say `_real` as an encoder's do, for tasks posed on the dataset's images.
RENAMED = {"s4l": {"rotation/acc_train": "rotation/acc_real"}}


def platform() -> str:
    return f"torch {torch.__version__.split('+')[0]}, {torch.backends.cpu.get_cpu_capability()}"


def tensors(state, prefix=""):
    """(name, tensor) of every tensor in a nested state dict, in a fixed order."""
    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, dict):
        for key in sorted(state, key=str):
            yield from tensors(state[key], f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(state, (list, tuple)):
        for i, item in enumerate(state):
            yield from tensors(item, f"{prefix}[{i}]")


def figures(run_dir: Path) -> dict:
    """The run's logged losses and metrics at every step (speed left out), and its final weights
    and optimizer states: a hash of their bytes and the sum of their absolute values."""
    steps = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [{k: v for k, v in row["metrics"].items() if not k.startswith("perf/")} for row in steps
              if "step" in row and any(k.startswith("loss/") for k in row.get("metrics", {}))]
    checkpoint = torch.load(sorted((run_dir / "checkpoints").glob("*.pt"))[-1], weights_only=False)
    state = {"method": checkpoint["method"], "optimizers": checkpoint["optimizers"]}
    digest, total = hashlib.sha256(), 0.0
    for name, tensor in tensors(state):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes()
                      if tensor.numel() else b"")
        if tensor.is_floating_point():
            total += tensor.detach().double().abs().sum().item()
    return {"losses": losses, "weights_sha256": digest.hexdigest(), "weights_abs_sum": total}


def train(name: str, run_dir: Path, ssgen) -> dict:
    config, overrides = RUNS[name]
    sets = [arg for item in [*COMMON, *overrides, f"run_dir={run_dir}"] for arg in ("--set", item)]
    code, out, err = ssgen("train", "--config", CONFIGS / config, *sets, "--no-progress")
    assert code == 0, err
    return figures(run_dir)


@pytest.mark.e2e
@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_seeded_run_gives_the_recorded_losses_and_weights(name, tmp_path, ssgen):
    recorded = json.loads(RECORD.read_text())
    expected, got = recorded["runs"][name], train(name, tmp_path / name, ssgen)
    renamed = RENAMED.get(name, {})
    expected["losses"] = [{renamed.get(key, key): value for key, value in row.items()} for row in expected["losses"]]
    assert len(got["losses"]) == len(expected["losses"]) == 3
    if recorded["platform"] == platform():
        assert got["losses"] == expected["losses"]
        assert got["weights_sha256"] == expected["weights_sha256"]
    else:
        for row, want in zip(got["losses"], expected["losses"]):
            assert row.keys() == want.keys()
            for key in want:
                assert math.isclose(row[key], want[key], rel_tol=1e-4, abs_tol=1e-6), (key, row[key], want[key])
    assert math.isclose(got["weights_abs_sum"], expected["weights_abs_sum"], rel_tol=1e-4)


def record() -> None:
    """Train every pinned run and write its figures to pinned_behaviour.json."""
    import tempfile
    from ssgen.cli import main

    def ssgen(*args):
        sys.argv = ["ssgen", *map(str, args)]
        try:
            main()
        except SystemExit as exit_:
            return exit_.code, "", ""
        return 0, "", ""

    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: train(name, Path(tmp) / name, ssgen) for name in sorted(RUNS)}
    RECORD.write_text(json.dumps({"platform": platform(), "runs": runs}, indent=1) + "\n")
    print(f"recorded {len(runs)} runs on {platform()} in {RECORD}")


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    record()
