"""A run directory's files: its saved config, its checkpoints (written atomically, the last K
kept, loaded with weights_only=True), its held-out and labelled rows, and the networks of
`ssgen finetune`. File formats only: rebuilding a method from them is ssgen/rebuild.py's, so this
module sits below the methods (docs/design.md).

A checkpoint is a dict of tensors and plain containers:
    {"format", "step", "config", "method", "optimizers", "rng", "batches", "best", "evaluators"}
and a fine-tuned network's (ssgen/eval/finetune.py):
    {"format": "ssgen-finetuned", "config", "layer", "num_features", "num_classes", "classes",
     "network", "labelled_rows", "protocol", "metrics"}
so loading one never executes code from the file.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch

from ssgen.config import Config, to_dict
from ssgen.data.holdout import parse_holdout
from ssgen.data.labelled import parse_labelled
from ssgen.errors import CheckpointError
from ssgen.files import atomic_write

FORMAT = 1
FINETUNED_FORMAT = "ssgen-finetuned"  # ssgen finetune's networks (ssgen/eval/finetune.py)
CONFIG_FILE = "config.yaml"
CHECKPOINT_DIR = "checkpoints"
BEST = "best.pt"
HOLDOUT_FILE = "holdout.txt"
LABELLED_FILE = "labelled.txt"  # rows of the train split that keep their labels (data.labels), one a line
ZIP_MAGIC = b"PK\x03\x04"  # held-out test images of a folder with no test split, one a line
_NAME = re.compile(r"step-(\d+)\.pt$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def atomic_save(state: dict, path: Path) -> None:
    """torch.save through a temporary file and a rename: a crash leaves the old file or the new one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # best.pt can come before the first step checkpoint
        atomic_write(path, lambda f: torch.save(state, f))
    except OSError as err:
        raise CheckpointError(f"cannot write checkpoint {path}: {err.strerror or err}") from None


def checkpoint_step(path: str | Path) -> int | None:
    """The step a step checkpoint's name holds (step-00000280.pt: 280); None for other files."""
    found = _NAME.search(Path(path).name)
    return int(found.group(1)) if found else None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Step checkpoints of a run, oldest first."""
    folder = checkpoint_dir(run_dir)
    found = [(step, p) for p in folder.glob("step-*.pt") if (step := checkpoint_step(p)) is not None]
    return [p for _, p in sorted(found)]


def save_checkpoint(run_dir: str | Path, step: int, state: dict, keep: int) -> Path:
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step-{step:08d}.pt"
    atomic_save(state, path)
    for old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def load_error_detail(err: Exception) -> str:
    """One short line for why torch.load failed. torch's weights-only refusal is a long text that
    advises weights_only=False (running the file's code): keep only what it refused."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(err))
    if "WeightsUnpickler error:" in text:
        reason = text.split("WeightsUnpickler error:", 1)[1].strip().split("\n")[0].split(". ")[0]
        return f": not a weights-only file ({reason[:160]}); nothing in it was run"
    first = (text.strip().splitlines() or [""])[0].split(". ")[0][:160]  # a bare EOFError has none
    return f" ({type(err).__name__}{': ' + first if first else ''})"


def read_checkpoint(path: str | Path) -> dict:
    return training_checkpoint(read_checkpoint_file(path), path)


def is_finetuned(state) -> bool:
    """Whether a loaded file is a network of ssgen finetune."""
    return isinstance(state, dict) and state.get("format") == FINETUNED_FORMAT


def training_checkpoint(state, path: str | Path) -> dict:
    """A loaded file's state where it is a training checkpoint; else a CheckpointError that says what it is."""
    if is_finetuned(state):
        raise CheckpointError(f"checkpoint {str(path)!r} is a fine-tuned classifier (ssgen finetune's output), not a "
                              "training checkpoint; give the run directory or its checkpoints/*.pt it came from")
    if not isinstance(state, dict) or state.get("format") != FORMAT or "method" not in state:
        raise CheckpointError(f"checkpoint {str(path)!r} is not an ssgen checkpoint (format {FORMAT})")
    return state


def read_checkpoint_file(path: str | Path):
    """What a file written by torch.save holds, loaded weights-only (no code from the file runs)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if path.stat().st_size == 0:  # e.g. a copy cut short; torch.load would say only "EOFError"
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable (empty file, 0 bytes)")
    with open(path, "rb") as f:
        if f.read(4) != ZIP_MAGIC:  # torch.save writes a zip archive; anything else is some other file
            raise CheckpointError(f"checkpoint {str(path)!r} is unreadable: it is not a checkpoint at all (not a "
                                  f"file written by torch.save); expected a run directory or its {CHECKPOINT_DIR}/*.pt")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise before our one line
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupt, or not a weights-only file: all unusable
        raise CheckpointError(f"checkpoint {str(path)!r} is unreadable{load_error_detail(err)}") from None
    return state


def latest_readable(run_dir: str | Path, warn=print) -> tuple[Path, dict] | None:
    """The newest step checkpoint that loads; a corrupt newer one is reported and skipped."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, read_checkpoint(path)
        except CheckpointError as err:
            warn(f"warning: {err}; falling back to the previous checkpoint")
    return None


def resolve_checkpoint(path: str | Path, warn=print) -> tuple[Path, dict]:
    """A checkpoint file, or a run directory -> its newest readable checkpoint."""
    path = Path(path)
    if path.is_dir():
        found = latest_readable(path, warn)
        if found is None:
            raise CheckpointError(f"run directory {str(path)!r} holds no readable checkpoint "
                                  f"(expected {CHECKPOINT_DIR}/step-*.pt)")
        return found
    return path, read_checkpoint(path)


def read_labelled(run_dir: str | Path, num_images: int):
    """The labelled rows a run recorded (data.labels), or None where it recorded none."""
    path = Path(run_dir) / LABELLED_FILE
    return parse_labelled(path.read_text(encoding="utf-8"), num_images) if path.exists() else None


def read_holdout(run_dir: str | Path, started: bool) -> list[str] | None:
    """The run's record of held-out test images. Without one: none ([]) for a run that has started
    (it had a test split, or predates holding out), None for a run yet to start (choose now)."""
    path = Path(run_dir) / HOLDOUT_FILE
    if path.exists():
        return parse_holdout(path.read_text(encoding="utf-8"))
    return [] if started else None


def save_finetuned(path: Path, network, cfg: Config, labelled_rows: torch.Tensor, classes: list[str],
                   protocol: dict, metrics: dict) -> None:
    """A fine-tuned network (ssgen/nets/heads.py's FinetunedNetwork) and what it was tuned on."""
    head = network.head
    atomic_save({"format": FINETUNED_FORMAT, "config": to_dict(cfg), "layer": network.layer,
                 "num_features": head.linear.in_features, "num_classes": head.linear.out_features,
                 "classes": list(classes), "network": network.state_dict(), "labelled_rows": labelled_rows.clone(),
                 "protocol": protocol, "metrics": metrics}, path)


def read_finetuned(path: str | Path) -> dict:
    """The saved dict of a fine-tuned network; anything else is a CheckpointError that says what it is."""
    state = read_checkpoint_file(path)
    if not is_finetuned(state):
        what = "a training checkpoint (fine-tune it first: ssgen finetune)" if isinstance(state, dict) and \
            "method" in state else "not one"
        raise CheckpointError(f"{str(path)!r} is not a fine-tuned network (format {FINETUNED_FORMAT!r}): {what}")
    return state
