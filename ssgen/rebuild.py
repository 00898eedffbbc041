"""Methods rebuilt by name: fresh from a config (`build_method`), trained from a run's checkpoint
(`load_run`), or fine-tuned from a file of `ssgen finetune` (`load_finetuned`).

A method's class is looked up in the METHODS registry, which imports the methods on its first
lookup, so this module names no method and sits below them (docs/design.md): the trainer and the
evaluators rebuild their runs here, and so does distill its teacher. The files themselves are
read by ssgen/checkpoint.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ssgen.checkpoint import (CHECKPOINT_DIR, is_finetuned, read_checkpoint_file, read_finetuned,
                              resolve_checkpoint, training_checkpoint)
from ssgen.config import Config, config_from_dict
from ssgen.errors import CheckpointError, SsgenError
from ssgen.nets.heads import FinetunedNetwork, LinearClassifier
from ssgen.parallel import memory_format
from ssgen.registry import METHODS
from ssgen.step import DataInfo


def data_info(cfg: Config) -> DataInfo:
    return DataInfo(resolution=cfg.data.resolution)


def build_method(cfg: Config, device: torch.device) -> nn.Module:
    """A fresh (untrained) method of the config's kind on `device`, in trainer.memory_format."""
    method_cls = METHODS.get(cfg.method.name, "method.name")
    return method_cls(cfg.method, data_info(cfg)).to(device, memory_format=memory_format(cfg.trainer.memory_format,
                                                                                         device))


def load_method_state(method: nn.Module, state: dict, source: str) -> None:
    try:
        method.load_state_dict(state["method"])
    except RuntimeError as err:  # missing/unexpected keys or shape mismatch: another architecture
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise CheckpointError(f"checkpoint {source} does not match the configured "
                              f"{method.cfg.name} networks: {first[:200]}") from None


@dataclass
class LoadedRun:
    cfg: Config
    method: nn.Module  # a trained ssgen.methods.base.Method
    step: int
    run_dir: Path
    checkpoint: Path


def load_run(path: str | Path, device: torch.device, warn=print) -> LoadedRun:
    """Rebuild a trained method from a checkpoint file or a run directory."""
    return run_of_checkpoint(*resolve_checkpoint(path, warn), device)


def run_of_checkpoint(ckpt_path: Path, state: dict, device: torch.device) -> LoadedRun:
    """The trained method of a loaded training checkpoint (`state`, read from `ckpt_path`)."""
    try:
        cfg = config_from_dict(state["config"])
    except SsgenError as err:
        raise CheckpointError(f"checkpoint {str(ckpt_path)!r} holds an unusable config: {err}") from None
    method = build_method(cfg, device)
    load_method_state(method, state, repr(str(ckpt_path)))
    run_dir = ckpt_path.parent.parent if ckpt_path.parent.name == CHECKPOINT_DIR else ckpt_path.parent
    return LoadedRun(cfg, method, int(state["step"]), run_dir, ckpt_path)


def load_finetuned(path: str | Path, device: torch.device | str = "cpu") -> FinetunedNetwork:
    """The network `ssgen finetune` saved, on `device` in eval mode: float [-1, 1] images
    [B,3,H,W] -> logits [B, num_classes]."""
    return finetuned_network(read_finetuned(path), path, device)


def finetuned_network(state: dict, path: str | Path, device: torch.device | str) -> FinetunedNetwork:
    """The network of a loaded file of `ssgen finetune` (`state`, read from `path`)."""
    try:
        cfg = config_from_dict(state["config"])
        method = build_method(cfg, torch.device(device))
        network = FinetunedNetwork(method, state["layer"], LinearClassifier(state["num_features"],
                                                                            state["num_classes"]))
        network.load_state_dict(state["network"])
    except (SsgenError, RuntimeError, KeyError) as err:
        raise CheckpointError(f"fine-tuned network {str(path)!r} cannot be rebuilt: "
                              f"{' '.join(str(err).split())[:300]}") from None
    return network.to(device).eval()


def load_trained(path: str | Path, device: torch.device) -> LoadedRun | FinetunedNetwork:
    """A run (a checkpoint file or a run directory) or a file of `ssgen finetune`, whichever `path`
    is: a file is read once, and its format says which."""
    path = Path(path)
    if not path.is_file():
        return load_run(path, device)
    state = read_checkpoint_file(path)
    if is_finetuned(state):
        return finetuned_network(state, path, device)
    return run_of_checkpoint(path, training_checkpoint(state, path), device)
