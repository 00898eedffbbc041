"""The one training loop, for every method: device, precision, learning-rate schedules, logging,
samples, evaluations, checkpoints and resume. It knows how training runs, never what is learned:
a method is driven only through its interface (ssgen/methods/base.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from pathlib import Path

import torch
import yaml
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ssgen import parallel
from ssgen.checkpoint import (BEST, CHECKPOINT_DIR, CONFIG_FILE, FORMAT, HOLDOUT_FILE, atomic_save,
                              build_method, checkpoint_dir, latest_readable, list_checkpoints,
                              load_method_state, read_holdout, save_checkpoint)
from ssgen.config import Config, to_dict
from ssgen.data import BatchStream, build_dataset, choose_holdout, holdout_text
from ssgen.errors import CheckpointError, ConfigError, SsgenError
from ssgen.eval import build_evaluators
from ssgen.eval.metrics import METRICS_FILE, append_metrics
from ssgen.files import atomic_write
from ssgen.images import save_grid
from ssgen.optim import set_learning_rates
from ssgen.registry import METHODS
from ssgen.step import Progress


class NonFiniteLoss(SsgenError):
    pass


def train(cfg: Config, resume: bool = False, log=print, progress: bool = True) -> Path:
    """Train `cfg.method` on `cfg.data` for `cfg.trainer.steps` steps; returns the run directory."""
    trainer = Trainer(cfg, log, progress, resume)
    try:
        trainer.restore(resume)
        trainer.run()
    finally:
        trainer.close()
    return trainer.run_dir


class Trainer:
    def __init__(self, cfg: Config, log, show_progress: bool, resume: bool):
        tc = cfg.trainer
        self.cfg, self.run_dir = cfg, Path(cfg.run_dir)
        self.device = parallel.resolve_device(tc.device)
        self.place = parallel.setup(self.device.type)
        if self.place.world_size > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", self.place.local_rank)
        if tc.batch_size % self.place.world_size:
            raise ConfigError(f"trainer.batch_size={tc.batch_size} (the global batch) does not split evenly "
                              f"over {self.place.world_size} processes")
        self.log = log if self.place.is_main else (lambda message: None)  # one voice: the main process's
        METHODS.get(cfg.method.name, "method.name").check_config(cfg)  # before the run directory is made
        if self.place.is_main:
            check_writable(self.run_dir)
        if tc.threads:
            torch.set_num_threads(tc.threads)
        torch.use_deterministic_algorithms(tc.deterministic)
        torch.manual_seed(cfg.seed)

        # A folder without a test split lends one from its train split, chosen once and recorded.
        started = resume and bool(list_checkpoints(self.run_dir))
        self.holdout = choose_holdout(cfg.data, read_holdout(self.run_dir, started))
        train_set = build_dataset(cfg.data, "train", self.holdout)
        if self.holdout.message:  # after the train set: an unusable image's error comes first, alone
            self.log(self.holdout.message)
        self.method = build_method(cfg, self.device)
        self.method.skip_nonfinite = tc.nonfinite == "skip"
        if tc.compile:
            self.method.compile_networks()
        self.batches = BatchStream(train_set, tc.batch_size, self.device,
                                   flip=cfg.data.flip, seed=cfg.seed, device_resident=cfg.data.device_resident,
                                   rank=self.place.rank, world_size=self.place.world_size,
                                   workers=cfg.data.workers)
        self.optimizers = self.method.optimizers()
        self.schedules = {name: optim_cfg for name, (_, optim_cfg) in self.method.optimized().items()}
        # Every process evaluates its share of the images (ssgen.eval gathers the features), so all
        # evaluate at the same steps; every file write happens in the main process only.
        self.evaluators = build_evaluators(cfg, self.method, self.device, self.log, self.holdout, train_set)
        self.fixed_noise = self.method.fixed_noise(tc.num_grid_images, torch.Generator().manual_seed(cfg.seed))
        self.grid_real = self.batches().images[: tc.num_grid_images]  # before any restore: the same on resume
        self.step, self.best, self.last_checkpoint = 0, {}, None
        self.writer: SummaryWriter | None = None
        self.bar = tqdm(total=tc.steps, disable=not (show_progress and self.place.is_main),
                        dynamic_ncols=True, unit="step")

    # ---------------------------------------------------------------- start and end
    def restore(self, resume: bool) -> None:
        """Continue from the newest readable checkpoint (resume), then open the run's logs."""
        found = latest_readable(self.run_dir, warn=self.log) if resume else None
        if resume and found is None:
            if list_checkpoints(self.run_dir):  # never silently start over on top of a run's checkpoints
                raise CheckpointError(f"nothing to resume in {str(self.run_dir)!r}: none of its checkpoints is "
                                      f"readable; delete {CHECKPOINT_DIR}/step-*.pt to start over from step 0")
            # Stopped before its first checkpoint: nothing is lost by starting over.
            self.log(f"no checkpoint in {self.run_dir} yet; starting from step 0")
        if found is not None:
            path, state = found
            load_method_state(self.method, state, repr(str(path)))
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][name])
            self.batches.load_state_dict(state["batches"])
            set_rng_state(state["rng"], self.device)
            self.step, self.best, self.last_checkpoint = int(state["step"]), state.get("best", {}), path
            self.bar.update(self.step)
            self.log(f"resuming {self.run_dir} from step {self.step} ({path.name})")
        if self.place.is_main:
            # Rewritten at every resume: a torn config.yaml would make the run impossible to resume.
            atomic_write(self.run_dir / CONFIG_FILE, yaml.safe_dump(to_dict(self.cfg), sort_keys=False))
            if self.holdout.members:
                atomic_write(self.run_dir / HOLDOUT_FILE, holdout_text(self.holdout.members))
            if resume:
                drop_metrics_after(self.run_dir, self.step)
            # purge_step hides events a crashed run wrote after its last checkpoint.
            self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step + 1 if self.step else None)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()
        parallel.teardown()

    # ---------------------------------------------------------------- the loop
    def run(self) -> None:
        tc = self.cfg.trainer
        # A host sync every step costs nothing on the CPU but stalls a GPU's queue: check less often there.
        check_every = 1 if self.device.type == "cpu" else tc.log_every
        amp = autocast(self.cfg, self.device)
        self.timer, self.timed_steps = time.perf_counter(), 0
        with StopRequest() as stop:
            while self.step < tc.steps:
                self.step += 1
                for name, optimizer in self.optimizers.items():
                    set_learning_rates(optimizer, self.schedules[name], self.step, tc.steps)
                with amp:
                    logs = self.method.train_step(self.batches, Progress(self.step, tc.steps))
                self.timed_steps += 1
                self.bar.update(1)

                last = self.step == tc.steps
                stopping = stop.requested  # read once: a signal arriving later waits for the next step
                if self.place.world_size > 1:  # all stop at one step, or the others would wait forever
                    stopping = parallel.any_rank(stopping)
                saving = self.step % tc.checkpoint_every == 0 or last or stopping
                evaluating = [e for e in self.evaluators if self.step % e.every == 0 or last]
                logging = self.step % tc.log_every == 0 or last
                # Always check before a checkpoint is written, so that no checkpoint holds NaN weights.
                if self.step % check_every == 0 or logging or saving or evaluating:
                    values = self.checked_values(logs)
                if logging and self.place.is_main:
                    self.write_log(values)
                if self.place.is_main and (self.step % tc.sample_every == 0 or last):
                    self.write_grids()
                if evaluating:
                    self.evaluate(evaluating)
                if saving and self.place.is_main:
                    self.last_checkpoint = save_checkpoint(self.run_dir, self.step, self.checkpoint_state(),
                                                           tc.keep_checkpoints)
                if stopping:
                    self.log(f"\nstopped at step {self.step}; checkpoint {self.last_checkpoint}; "
                             f"continue with: ssgen train --resume {self.run_dir}")
                    break

    def checked_values(self, logs: dict[str, torch.Tensor]) -> dict[str, float]:
        """The step's logged values as floats, averaged over the processes (global-batch figures,
        so all processes decide alike); a non-finite loss stops the run (trainer.nonfinite=stop)."""
        values = parallel.average_values(logs)
        bad = {k: v for k, v in values.items() if k.startswith("loss/") and not math.isfinite(v)}
        if bad and self.cfg.trainer.nonfinite == "stop":
            where = f", last good checkpoint {self.last_checkpoint}" if self.last_checkpoint else ""
            raise NonFiniteLoss(f"non-finite loss at step {self.step}: "
                                + ", ".join(f"{k}={v}" for k, v in bad.items())
                                + f"{where}; lower the learning rate, or set trainer.nonfinite=skip")
        return values

    def write_log(self, values: dict[str, float]) -> None:
        elapsed = time.perf_counter() - self.timer
        values["perf/steps_per_s"] = self.timed_steps / max(elapsed, 1e-9)
        values["perf/skipped_steps"] = float(self.method.skipped_steps)
        self.timer, self.timed_steps = time.perf_counter(), 0
        for key, value in values.items():
            self.writer.add_scalar(key, value, self.step)
        append_metrics(self.run_dir, self.step, values)
        self.bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in values.items() if k.startswith("loss/")},
                             refresh=False)

    def write_grids(self) -> None:
        (self.run_dir / "samples").mkdir(exist_ok=True)
        for name, images in self.method.image_grids(self.grid_real, self.fixed_noise).items():
            grid = save_grid(images, self.run_dir / "samples" / f"{name}-{self.step:08d}.png")
            self.writer.add_image(f"images/{name}", grid, self.step)

    def evaluate(self, evaluators) -> None:
        parallel.broadcast_buffers(self.method)  # every process evaluates rank 0's model
        for evaluator in evaluators:
            metrics, protocol = evaluator(self.method, self.step)  # in every process (collectives)
            if not self.place.is_main:
                continue
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, self.step)
            append_metrics(self.run_dir, self.step, metrics, protocol)
            key = evaluator.lower_is_better_key
            if key in metrics and metrics[key] < self.best.get("value", math.inf):
                self.best = {"key": key, "value": metrics[key], "step": self.step}
                atomic_save(self.checkpoint_state(), checkpoint_dir(self.run_dir) / BEST)

    def checkpoint_state(self) -> dict:
        return {"format": FORMAT, "step": self.step, "config": to_dict(self.cfg),
                "method": self.method.state_dict(),
                "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
                "rng": rng_state(self.device), "batches": self.batches.state_dict(), "best": self.best}


# ---------------------------------------------------------------- helpers
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
    atomic_write(path, "".join(kept))


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
