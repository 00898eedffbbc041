"""The one training loop, for every method: device, precision, lr decay, logging, samples,
evaluations, checkpoints and resume. It knows how training runs, never what is learned."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import time
from pathlib import Path

import torch
import yaml
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid
from tqdm import tqdm

from ssgen.config import Config, to_dict
from ssgen.data import BatchStream, build_dataset
from ssgen.errors import CheckpointError, ConfigError, SsgenError
from ssgen.eval import build_evaluators
from ssgen.eval.metrics import METRICS_FILE, append_metrics
from ssgen.images import to_uint8
from ssgen.methods import METHODS
from ssgen import parallel as distributed
from ssgen.parallel import resolve_device
from ssgen.train.checkpoint import (BEST, CHECKPOINT_DIR, FORMAT, atomic_save, build_method,
                                    checkpoint_dir, latest_readable, list_checkpoints,
                                    load_method_state, save_checkpoint)

CONFIG_FILE = "config.yaml"


class NonFiniteLoss(SsgenError):
    pass


def autocast(cfg: Config, device: torch.device):
    bf16 = cfg.trainer.precision == "bf16" or (cfg.trainer.precision == "auto" and device.type == "cuda")
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def check_writable(run_dir: Path) -> None:
    """Fail before any compute if the run directory cannot take files."""
    probe = run_dir / ".write-probe"
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"\0" * 65536)  # a full disk fails here rather than at the first checkpoint
            f.flush()
        probe.unlink()
    except OSError as err:
        raise SsgenError(f"run directory {str(run_dir)!r} is not writable: {err.strerror or err}") from None


def replace_file(path: Path, text: str) -> None:
    """Write via a temporary file and a rename: a kill -9 leaves the old text or the new."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_config(cfg: Config, run_dir: Path) -> None:
    # Rewritten at every resume: a torn config.yaml would make the run impossible to resume.
    replace_file(run_dir / CONFIG_FILE, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def drop_metrics_after(run_dir: Path, step: int) -> None:
    """On resume, forget what a killed run logged after its last checkpoint (the resumed run logs
    those steps again), and a last line a kill cut short, which the next append would run into."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            continue
    replace_file(path, "".join(kept))


def rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class StopRequest:
    """SIGTERM / Ctrl-C: finish the current step, write a checkpoint, exit cleanly."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C: the user means it
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def save_grids(writer: SummaryWriter, run_dir: Path, grids: dict[str, torch.Tensor], step: int) -> None:
    from PIL import Image

    (run_dir / "samples").mkdir(exist_ok=True)
    for name, images in grids.items():
        grid = make_grid(to_uint8(images.cpu()), nrow=int(math.sqrt(len(images))) or 1, padding=1)
        writer.add_image(f"images/{name}", grid, step)
        Image.fromarray(grid.permute(1, 2, 0).numpy()).save(run_dir / "samples" / f"{name}-{step:08d}.png")


def train(cfg: Config, resume: bool = False, log=print, progress: bool = True) -> Path:
    """Train `cfg.method` on `cfg.data` for `cfg.trainer.steps` steps; returns the run directory."""
    tc = cfg.trainer
    run_dir = Path(cfg.run_dir)
    device = resolve_device(tc.device)
    place = distributed.setup(device.type)
    if place.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", place.local_rank)
    if tc.batch_size % place.world_size:
        raise ConfigError(f"trainer.batch_size={tc.batch_size} (the global batch) does not split evenly "
                          f"over {place.world_size} processes")
    if not place.is_main:  # one voice: the main process's
        log = lambda message: None  # noqa: E731
    METHODS.get(cfg.method.name, "method.name").check_config(cfg)  # before the run directory is made
    if place.is_main:
        check_writable(run_dir)
    if tc.threads:
        torch.set_num_threads(tc.threads)
    torch.use_deterministic_algorithms(tc.deterministic)
    torch.manual_seed(cfg.seed)

    train_set = build_dataset(cfg.data, "train")
    method = build_method(cfg, device)
    method.skip_nonfinite = tc.nonfinite == "skip"
    if tc.compile:
        method.compile_networks()
    batches = BatchStream(train_set, tc.batch_size, device, flip=cfg.data.flip, seed=cfg.seed,
                          device_resident=cfg.data.device_resident,
                          rank=place.rank, world_size=place.world_size, workers=cfg.data.workers)
    optimizers = method.optimizers()
    base_lrs = {name: [group["lr"] for group in opt.param_groups] for name, opt in optimizers.items()}
    # Every process evaluates its share of the images (ssgen.eval gathers the features), so all
    # evaluate at the same steps; every file write happens in the main process only.
    evaluators = build_evaluators(cfg, method, device, log)
    fixed_noise = method.fixed_noise(tc.num_grid_images, torch.Generator().manual_seed(cfg.seed))
    grid_real = batches()[: tc.num_grid_images]  # before any restore, so it is the same on resume

    step, best, last_checkpoint = 0, {}, None
    found = latest_readable(run_dir, warn=log) if resume else None
    if resume and found is None:
        if list_checkpoints(run_dir):  # never silently start over on top of a run's checkpoints
            raise CheckpointError(f"nothing to resume in {str(run_dir)!r}: none of its checkpoints is "
                                  f"readable; delete {CHECKPOINT_DIR}/step-*.pt to start over from step 0")
        # Stopped before its first checkpoint: nothing is lost by starting over.
        log(f"no checkpoint in {run_dir} yet; starting from step 0")
    if found is not None:
        path, state = found
        load_method_state(method, state, repr(str(path)))
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        batches.load_state_dict(state["batches"])
        set_rng_state(state["rng"], device)
        step, best, last_checkpoint = int(state["step"]), state.get("best", {}), path
        log(f"resuming {run_dir} from step {step} ({path.name})")
    if place.is_main:
        write_config(cfg, run_dir)
        if resume:
            drop_metrics_after(run_dir, step)

    def checkpoint_state() -> dict:
        return {"format": FORMAT, "step": step, "config": to_dict(cfg), "method": method.state_dict(),
                "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
                "rng": rng_state(device), "batches": batches.state_dict(), "best": best}

    # purge_step hides events a crashed run wrote after its last checkpoint.
    writer = SummaryWriter(str(run_dir / "tb"), purge_step=step + 1 if step else None) if place.is_main else None
    # A host sync every step costs nothing on the CPU but stalls a GPU's queue: check less often there.
    check_every = 1 if device.type == "cpu" else tc.log_every
    amp = autocast(cfg, device)
    bar = tqdm(total=tc.steps, initial=step, disable=not (progress and place.is_main), dynamic_ncols=True,
               unit="step")
    timer, timed_steps = time.perf_counter(), 0
    try:
        with StopRequest() as stop:
            while step < tc.steps:
                step += 1
                if tc.lr_decay == "linear":  # from the base lr down to 0 at the last step
                    factor = 1.0 - (step - 1) / tc.steps
                    for name, opt in optimizers.items():
                        for group, lr in zip(opt.param_groups, base_lrs[name]):
                            group["lr"] = lr * factor
                with amp:
                    logs = method.train_step(batches)
                timed_steps += 1
                bar.update(1)
                last = step == tc.steps
                stopping = stop.requested  # read once: a signal arriving later waits for the next step
                if place.world_size > 1:  # all stop at one step, or the others would wait forever
                    stopping = distributed.any_rank(stopping)

                saving = step % tc.checkpoint_every == 0 or last or stopping
                evaluating = any(step % evaluator.every == 0 for evaluator in evaluators) or (last and bool(evaluators))
                logging = step % tc.log_every == 0 or last
                # Always check before a checkpoint is written, so that no checkpoint holds NaN weights.
                if step % check_every == 0 or logging or saving or evaluating:
                    # Averaged over the processes (global-batch figures): all of them decide alike.
                    values = distributed.average_values(logs)
                    bad = {k: v for k, v in values.items() if k.startswith("loss/") and not math.isfinite(v)}
                    if bad and tc.nonfinite == "stop":
                        where = f", last good checkpoint {last_checkpoint}" if last_checkpoint else ""
                        raise NonFiniteLoss(
                            f"non-finite loss at step {step}: "
                            + ", ".join(f"{k}={v}" for k, v in bad.items())
                            + f"{where}; lower the learning rate, or set trainer.nonfinite=skip")
                if place.is_main and logging:
                    elapsed = time.perf_counter() - timer
                    values["perf/steps_per_s"] = timed_steps / max(elapsed, 1e-9)
                    values["perf/skipped_steps"] = float(method.skipped_steps)
                    timer, timed_steps = time.perf_counter(), 0
                    for key, value in values.items():
                        writer.add_scalar(key, value, step)
                    append_metrics(run_dir, step, values)
                    bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in values.items()
                                     if k.startswith("loss/")}, refresh=False)
                if place.is_main and (step % tc.sample_every == 0 or last):
                    save_grids(writer, run_dir, method.image_grids(grid_real, fixed_noise), step)
                if evaluating:
                    distributed.broadcast_buffers(method)  # every process evaluates rank 0's model
                for evaluator in evaluators:
                    if step % evaluator.every == 0 or last:
                        metrics, protocol = evaluator(method, step)  # in every process (collectives)
                        if not place.is_main:
                            continue
                        for key, value in metrics.items():
                            writer.add_scalar(key, value, step)
                        append_metrics(run_dir, step, metrics, protocol)
                        key = evaluator.lower_is_better_key
                        if key in metrics and metrics[key] < best.get("value", math.inf):
                            best = {"key": key, "value": metrics[key], "step": step}
                            atomic_save(checkpoint_state(), checkpoint_dir(run_dir) / BEST)
                if saving and place.is_main:
                    last_checkpoint = save_checkpoint(run_dir, step, checkpoint_state(), tc.keep_checkpoints)
                if stopping:
                    log(f"\nstopped at step {step}; checkpoint {last_checkpoint}; "
                        f"continue with: ssgen train --resume {run_dir}")
                    break
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        distributed.teardown()
    return run_dir
