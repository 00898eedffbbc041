"""The one training loop, for every method: device, precision, learning-rate schedules, logging,
samples, evaluations, checkpoints and resume. It knows how training runs, never what is learned:
a method is driven only through its interface (ssgen/methods/base.py), its optimizers through
theirs (ssgen/optimizers.py). The run directory's own life (lock, claim, records) is
ssgen/train/run_dir.py's; torch's process-wide settings hold for the run only (ssgen/torch_state.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import time
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from ssgen import parallel, precision
from ssgen.checkpoint import (BEST, CHECKPOINT_DIR, FORMAT, atomic_save, checkpoint_dir, checkpoint_step,
                              latest_readable, list_checkpoints, read_holdout, read_labelled, save_checkpoint)
from ssgen.config import Config, to_dict
from ssgen.console import Heartbeat, ProgressReport, duration
from ssgen.data import BatchStream, build_dataset, choose_holdout, data_log
from ssgen.data.labelled import describe as describe_labelled, labelled_rows
from ssgen.errors import CheckpointError, ConfigError, SsgenError
from ssgen.eval import build_evaluators
from ssgen.eval.metrics import append_metrics
from ssgen.eval.workload import PAPERS_SIZE, seconds_per_image, set_options
from ssgen.images import save_grid
from ssgen.rebuild import build_method, load_method_state
from ssgen.registry import METHODS
from ssgen.step import Progress
from ssgen.threads import Pace, choose_threads
from ssgen.torch_state import run_settings
from ssgen.train.run_dir import RunDirectory


class NonFiniteLoss(SsgenError):
    pass


class Stopped(Exception):
    """Training stopped on a signal (SIGTERM, the first Ctrl-C) after writing a checkpoint. The
    command exits with 128 + the signal's number, as shells do, so a scheduler can tell a
    preempted run from a finished one."""

    def __init__(self, signum: int, run_dir: Path):
        super().__init__(f"stopped by signal {signum}")
        self.signum, self.run_dir = signum, run_dir

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


def train(cfg: Config, resume: bool = False, log=print, bar: bool = True, overwrite: bool = False) -> Path:
    """Train `cfg.method` on `cfg.data` for `cfg.trainer.steps` steps; returns the run directory.
    Raises Stopped after a stop signal (the checkpoint is written)."""
    trainer = Trainer(cfg, log, bar, resume, overwrite)
    try:
        if trainer.restore(resume):
            trainer.run()
    except KeyboardInterrupt:  # a second Ctrl-C: it writes no checkpoint, so say what it loses
        if trainer.report is not None:
            trainer.report.close()
        trainer.log(trainer.abort_message())
        trainer.close(finished=False)
        raise
    except BaseException:
        trainer.close(finished=False)
        raise
    trainer.close(finished=True)
    if trainer.stopped_by:
        raise Stopped(trainer.stopped_by, trainer.run_dir)
    return trainer.run_dir


class Trainer:
    def __init__(self, cfg: Config, log, show_bar: bool, resume: bool, overwrite: bool = False):
        tc = cfg.trainer
        self.cfg, self.run_dir = cfg, Path(cfg.run_dir)
        self.device = parallel.resolve_device(tc.device)
        self.place = parallel.setup(self.device.type)
        if self.place.world_size > 1 and self.device.type == "cuda":
            self.device = torch.device("cuda", self.place.local_rank)
        # auto resolved once, here: config.yaml records what the run computes in, its evaluations
        # follow that, and a resume elsewhere goes on in it.
        chosen = precision.training_precision(tc.precision, self.device)
        self.precision_note = precision.describe_choice(tc.precision, chosen, self.device)
        cfg = self.cfg = dataclasses.replace(cfg, trainer=dataclasses.replace(tc, precision=chosen))
        tc = cfg.trainer
        if tc.batch_size % self.place.world_size:
            raise ConfigError(f"trainer.batch_size={tc.batch_size} (the global batch) does not split evenly "
                              f"over {self.place.world_size} processes")
        self.log = log if self.place.is_main else (lambda message: None)  # one voice: the main process's
        METHODS.get(cfg.method.name, "method.name").check_config(cfg)  # before the run directory is made
        # What the run holds until close(): the run directory's lock, torch's process-wide settings.
        self.held = contextlib.ExitStack()
        try:
            self.directory = self.held.enter_context(RunDirectory(self.run_dir, self.place.is_main))
            self.build(resume, overwrite, show_bar)
        except BaseException:
            self.held.close()  # a run that never started holds nothing
            raise

    def build(self, resume: bool, overwrite: bool, show_bar: bool) -> None:
        cfg, tc = self.cfg, self.cfg.trainer
        if not resume:  # one run, one directory
            self.directory.claim(overwrite)
        # On a CPU the thread count is chosen (trainer.threads=0) and the pace watched; a GPU's
        # host threads only feed it, so there a count is set only where asked for.
        on_cpu = self.device.type == "cpu"
        self.thread_notes: list[str] = []  # said once training starts: a setup error stays the one line
        threads = (choose_threads(tc.threads, tc.deterministic, self.thread_notes.append)
                   if on_cpu or tc.threads else None)
        self.pace = Pace(threads, f"ssgen train --resume {self.run_dir}") if on_cpu else None
        self.evaluated_in_window = False  # an evaluation since the last log: that window's pace is not compared
        self.held.enter_context(run_settings(threads, tc.deterministic, cfg.seed))

        # A folder without a test split lends one from its train split, chosen once and recorded.
        started = resume and bool(list_checkpoints(self.run_dir))
        # Cheap (a listing at most): a wrong path or an empty folder is one error line, said before anything else.
        self.holdout = choose_holdout(cfg.data, read_holdout(self.run_dir, started))
        self.log(f"data: loading {describe_source(cfg.data)} (train split) ...")
        with self.phase("data: loading") as took, data_log(self.log):  # decoded, or the cache's copy
            train_set = build_dataset(cfg.data, "train", self.holdout)
        self.log(f"data: {describe_images(train_set)}, {took():.1f}s")
        if self.holdout.message:  # after the train set: an unusable image's error comes first, alone
            self.log(self.holdout.message)
        # data.labels: a labelled subset, chosen once and recorded, like the holdout.
        self.labelled = read_labelled(self.run_dir, len(train_set)) if started else None
        if cfg.data.labels and self.labelled is None:
            self.labelled = labelled_rows(train_set.labels, cfg.data.labels, cfg.data.seed)
        if self.labelled is not None:
            self.log(describe_labelled(self.labelled, train_set.labels, cfg.data.labels))
        self.method = build_method(cfg, self.device)
        self.optimizers = self.method.optimizers()  # built here, on the device
        self.optimizers.skip_nonfinite = tc.nonfinite == "skip"
        if tc.compile == "modules":
            self.method.compile_networks()
        elif tc.compile == "step":
            self.method.compile_steps()
        self.batches = BatchStream(train_set, tc.batch_size, self.device,
                                   flip=cfg.data.flip, seed=cfg.seed, device_resident=cfg.data.device_resident,
                                   rank=self.place.rank, world_size=self.place.world_size,
                                   workers=cfg.data.workers, labelled=self.labelled)
        # Every process evaluates its share of the images (ssgen.eval gathers the features), so all
        # evaluate at the same steps; every file write happens in the main process only.
        self.evaluators = self.build_evaluators(train_set)
        self.fixed_noise = self.method.fixed_noise(tc.num_grid_images, torch.Generator().manual_seed(cfg.seed))
        self.grid_real = self.batches().images[: tc.num_grid_images]  # before any restore: the same on resume
        self.step, self.best, self.last_checkpoint = 0, {}, None
        self.show_bar, self.stopped_by = show_bar, 0
        self.writer: SummaryWriter | None = None
        self.report: ProgressReport | None = None
        self.evaluated: dict[str, tuple[str, float, float]] = {}  # key -> (label, first, last value)
        self.seconds_per_image = self.estimate_evaluations()
        self.took: dict[str, float] = {}  # evaluator name -> its last evaluation's seconds: the next ETA

    def phase(self, what: str, eta: float | None = None):
        """`with self.phase(what) as took:` a heartbeat line every 15 s while it runs (with the time
        left where `eta` is known); `took()` its seconds."""
        return timed(Heartbeat(what, self.log, eta=eta))

    def build_evaluators(self, train_set) -> list:
        """The evaluators, their images loaded (the test split, the probe's labelled images), said
        before and after: on a large dataset the loading alone takes a while."""
        wanted = [name for name, section in vars(self.cfg.eval).items() if section.every > 0]
        if not wanted:
            return []
        self.log(f"data: loading the images of the evaluations ({', '.join(wanted)}) ...")
        with self.phase("data: loading the evaluations' images") as took, data_log(self.log):
            evaluators = build_evaluators(self.cfg, self.method, self.device, self.log, self.holdout, train_set)
        self.log(f"data: evaluations ready, {took():.1f}s: " + "; ".join(e.workload().what for e in evaluators))
        return evaluators

    def estimate_evaluations(self) -> float:
        """Seconds per evaluated image, timed on a batch of D's (or the encoder's) features, for the
        first evaluations' ETAs. On a CPU with the papers' 10k-image sizes, one line says once what
        a round of evaluations will cost and which --set makes it cheaper; the sizes stay as set."""
        if not self.evaluators or not self.place.is_main:
            return 0.0
        with precision.autocast(self.cfg.trainer.precision, self.device):  # evaluations' default (auto)
            per_image = seconds_per_image(self.method, self.grid_real, self.device)
        workloads = [evaluator.workload() for evaluator in self.evaluators]
        if self.device.type == "cpu" and max(w.largest for w in workloads) >= PAPERS_SIZE:
            seconds = per_image * sum(w.images for w in workloads)
            self.log(f"note: on this CPU one round of evaluations at these sizes takes about {duration(seconds)} "
                     f"(at step 0 and every {min(e.every for e in self.evaluators)} steps); a cheaper one, "
                     f"with noisier figures than the papers' {PAPERS_SIZE:,}-image ones: {set_options(workloads)}")
        return per_image

    # ---------------------------------------------------------------- start and end
    def restore(self, resume: bool) -> bool:
        """Continue from the newest readable checkpoint (resume), then open the run's logs.
        False: nothing left to train (a finished run)."""
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
            self.optimizers.load_state_dict(state["optimizers"])
            self.batches.load_state_dict(state["batches"])
            for evaluator in stateful(self.evaluators):  # none saved: the evaluator was off until now
                if evaluator.name in state.get("evaluators", {}):
                    evaluator.load_state_dict(state["evaluators"][evaluator.name])
            set_rng_state(state["rng"], self.device)
            self.step, self.best, self.last_checkpoint = int(state["step"]), state.get("best", {}), path
            if self.step >= self.cfg.trainer.steps:
                self.log(f"{self.run_dir} is finished: {self.step} of {self.cfg.trainer.steps} steps ({path}). "
                         f"To train it further: ssgen train --resume {self.run_dir} --set trainer.steps=N --force "
                         "(the learning-rate schedule then stretches to the new total)")
                return False
            self.log(f"resuming {self.run_dir} from step {self.step} ({path.name})")
        self.directory.record_start(self.cfg, self.holdout.members, self.labelled, self.step if resume else None)
        if self.place.is_main:
            # purge_step hides what a killed run logged after its last checkpoint (all of it if none).
            self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.step + 1 if resume else None)
        return True

    def close(self, finished: bool) -> None:
        """`finished`: this process ended the run normally (the others too, in step), so the
        processes wait for each other before leaving the group; after an error they do not."""
        if self.report is not None:
            self.report.close()
        if self.writer is not None:
            self.writer.close()
        self.held.close()  # the run directory's lock released, torch's settings as they were before the run
        parallel.teardown(wait=finished)

    # ---------------------------------------------------------------- the loop
    def run(self) -> None:
        tc = self.cfg.trainer
        # A host sync every step costs nothing on the CPU but stalls a GPU's queue: check less often there.
        check_every = 1 if self.device.type == "cpu" else tc.log_every
        amp = precision.autocast(tc.precision, self.device)
        self.log(self.precision_note)
        for note in self.thread_notes:
            self.log(note)
        # A bar on a terminal; in a file (or with --no-progress) a plain line every log_every steps.
        self.report = ProgressReport(tc.steps, "step", self.log, every=tc.log_every, initial=self.step,
                                     unit="steps", bar=self.show_bar and self.place.is_main)
        if self.step == 0 and self.evaluators:
            # Step 0 is the floor every later figure is read against: the probe of the random-init
            # network, the FD of an untrained generator, tasks at chance.
            self.evaluate(self.evaluators)
        self.timed_from = self.step, self.report.elapsed()  # for perf/steps_per_s
        first_step = True
        with StopRequest() as stop:
            while self.step < tc.steps:
                self.step += 1
                self.optimizers.schedule(self.step, tc.steps)
                with amp, self.compiling(first_step):
                    logs = self.method.train_step(self.batches, Progress(self.step, tc.steps))
                first_step = False

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
                self.report.update(1, **(main_figures(values) if logging else {}))
                if self.place.is_main and (self.step % tc.sample_every == 0 or last):
                    self.write_grids()
                if evaluating:
                    self.evaluate(evaluating)
                if saving and self.place.is_main:
                    self.last_checkpoint = save_checkpoint(self.run_dir, self.step, self.checkpoint_state(),
                                                           tc.keep_checkpoints)
                if stopping:
                    self.report.close()
                    self.log(f"stopped at step {self.step}; checkpoint {self.last_checkpoint}; "
                             f"continue with: ssgen train --resume {self.run_dir}")
                    # A process that saw no signal itself stops for another's: as if sent SIGTERM.
                    self.stopped_by = stop.signum or signal.SIGTERM
                    return
        self.report.close()
        self.log(self.summary())

    @contextlib.contextmanager
    def compiling(self, first_step: bool):
        """The session's first step compiles under trainer.compile modules or step (minutes on a
        CPU): said before and after, with a heartbeat between."""
        if not first_step or self.cfg.trainer.compile == "eager":
            yield
            return
        self.log(f"step {self.step}: compiling (trainer.compile={self.cfg.trainer.compile}) ...")
        with self.phase(f"step {self.step}  compiling") as took:
            yield
        self.log(f"step {self.step}: compiled and run in {duration(took())}")

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
        (step, elapsed), now = self.timed_from, (self.step, self.report.elapsed())
        values["perf/steps_per_s"] = (now[0] - step) / max(now[1] - elapsed, 1e-9)
        values["perf/skipped_steps"] = float(self.method.skipped_steps)
        self.timed_from = now
        if self.pace is not None:
            slump = self.pace.check(values["perf/steps_per_s"], self.step, clean=not self.evaluated_in_window)
            if slump:
                self.log(slump)
        self.evaluated_in_window = False
        for key, value in values.items():
            self.writer.add_scalar(key, value, self.step)
        append_metrics(self.run_dir, self.step, values)

    def write_grids(self) -> None:
        (self.run_dir / "samples").mkdir(exist_ok=True)
        for name, images in self.method.image_grids(self.grid_real, self.fixed_noise).items():
            grid = save_grid(images, self.run_dir / "samples" / f"{name}-{self.step:08d}.png")
            self.writer.add_image(f"images/{name}", grid, self.step)

    def evaluate(self, evaluators) -> None:
        parallel.broadcast_buffers(self.method)  # every process evaluates rank 0's model
        self.evaluated_in_window = True
        for evaluator in evaluators:
            workload = evaluator.workload()
            eta = self.took.get(evaluator.name, self.seconds_per_image * workload.images)
            self.log(f"step {self.step}  evaluating {workload.what}, ETA {duration(eta)}")
            with self.phase(f"step {self.step}  {evaluator.name}", eta) as took:
                metrics, protocol = evaluator(self.method, self.step)  # in every process (collectives)
            self.took[evaluator.name] = took()
            if not self.place.is_main:
                continue
            for key, value in metrics.items():
                self.writer.add_scalar(key, value, self.step)
                label = protocol.get("metric", key) if key == evaluator.lower_is_better_key else key
                first = self.evaluated.get(key, (label, value, value))[1]
                self.evaluated[key] = (label, first, value)
            append_metrics(self.run_dir, self.step, metrics, protocol)
            self.log(f"step {self.step}  " + "  ".join(f"{self.evaluated[k][0]} {format_metric(k, v)}"
                                                        for k, v in metrics.items())
                     + f"  ({duration(self.took[evaluator.name])})")
            key = evaluator.lower_is_better_key
            if key in metrics and metrics[key] < self.best.get("value", math.inf):
                self.best = {"key": key, "value": metrics[key], "step": self.step}
                atomic_save(self.checkpoint_state(), checkpoint_dir(self.run_dir) / BEST)

    def summary(self) -> str:
        """The end of a run in one line: how long, the evaluations' first and last figures, where
        the checkpoint is."""
        trained = self.report.done - self.report.start_done
        parts = [f"done: {self.step} steps ({trained} this session in {duration(self.report.elapsed())})"]
        for key, (label, first, last) in self.evaluated.items():
            change = f"{format_metric(key, first)} -> " if first != last else ""
            parts.append(f"{label} {change}{format_metric(key, last)}")
        parts.append(f"checkpoint {self.last_checkpoint}")
        return "; ".join(parts)

    def abort_message(self) -> str:
        """What an abort (a second Ctrl-C, which writes no checkpoint) loses, and how to go on."""
        saved = (checkpoint_step(self.last_checkpoint) if self.last_checkpoint else None) or 0
        resume = f"ssgen train --resume {self.run_dir}"
        if self.step == 0:
            return "aborted before the first step: nothing trained is lost"
        if self.step <= saved:
            return (f"aborted at step {self.step}, nothing lost (checkpoint {self.last_checkpoint}); "
                    f"continue with: {resume}")
        lost = f"step {self.step}" if self.step == saved + 1 else f"steps {saved + 1}-{self.step}"
        kept = (f"continue from the last checkpoint, step {saved} ({self.last_checkpoint})" if self.last_checkpoint
                else "no checkpoint was written; start over from step 0")
        return f"aborted at step {self.step}: {lost} lost; {kept} with: {resume}"

    def checkpoint_state(self) -> dict:
        return {"format": FORMAT, "step": self.step, "config": to_dict(self.cfg),
                "method": self.method.state_dict(),
                "optimizers": self.optimizers.state_dict(),
                "rng": rng_state(self.device), "batches": self.batches.state_dict(), "best": self.best,
                "evaluators": {evaluator.name: evaluator.state_dict() for evaluator in stateful(self.evaluators)}}


# ---------------------------------------------------------------- helpers
@contextlib.contextmanager
def timed(heartbeat: Heartbeat):
    """`with timed(Heartbeat(...)) as took:` the block with its heartbeat; `took()`: its seconds
    (until the block ended, when called after it)."""
    started, ended = time.perf_counter(), []
    with heartbeat:
        try:
            yield lambda: (ended[0] if ended else time.perf_counter()) - started
        finally:
            ended.append(time.perf_counter())


def describe_source(cfg) -> str:
    return f"{cfg.name} {cfg.path}" if cfg.path else cfg.name


def describe_images(images) -> str:
    """'50,000 train images, 32x32, 10 classes, in memory'."""
    classes = f"{len(images.classes)} classes" if images.classes else "no class labels"
    where = "in memory" if images.in_memory else "decoded on demand"
    return f"{len(images):,} {images.split} images, {images.resolution}x{images.resolution}, {classes}, {where}"


def stateful(evaluators) -> list:
    """The evaluators whose inputs are made during the run (the past-fakes archive), so that they
    are saved in the checkpoint; the others rebuild theirs from the data."""
    return [evaluator for evaluator in evaluators if hasattr(evaluator, "state_dict")]


def main_figures(values: dict[str, float]) -> dict[str, float]:
    """What a progress line shows: the losses and the task accuracies."""
    return {k: v for k, v in values.items() if k.startswith("loss/") or "/acc" in k}


def format_metric(key: str, value: float) -> str:
    return f"{100 * value:.1f}% top-1" if key.startswith(("probe/", "knn/", "accuracy/")) else f"{value:.4g}"


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
    """SIGTERM / Ctrl-C: finish the current step, write a checkpoint, then stop (Stopped)."""

    def __init__(self):
        self.requested = False
        self.signum = 0
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C: the user means it
            raise KeyboardInterrupt
        self.requested, self.signum = True, signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
