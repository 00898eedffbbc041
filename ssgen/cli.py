"""`ssgen` command line: train, sample, fid, probe, finetune, report, configs.

User errors (bad config, data, checkpoint, environment) print one line and exit with status 2;
`ssgen --debug ...` shows the traceback instead.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path

import click

from ssgen.checkpoint import CONFIG_FILE
from ssgen.config import (Config, apply_override, config_from_dict, from_dict, load_config, read_config_file,
                          to_dict, with_absolute_paths)
from ssgen.errors import ConfigError, SsgenError
from ssgen.precision import AUTO
from ssgen.eval.commands import COMMANDS

CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
def cli(debug: bool) -> None:
    """Self-supervised generative modelling: SS-GAN, GAN baselines, pretext-task autoencoders,
    FID/FD and linear probes of what the networks learned.

    Start with: ssgen train --config configs/quick.yaml"""
    # --debug is read by main() from sys.argv, before click parses anything


def config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            changes += config_diff(a, b, name + ".")
        elif a != b:
            changes.append(f"{name}: {a!r} -> {b!r}")
    return changes


def parse_seeds(text: str) -> list[int]:
    """--seeds' value: distinct non-negative integers, comma-separated."""
    seeds = []
    for item in text.split(","):
        if not re.fullmatch(r"[0-9]+", item.strip()):
            raise ConfigError(f"--seeds {text!r}: {item.strip()!r} is not a seed; expected distinct non-negative "
                              "integers separated by commas, e.g. --seeds 0,1,2")
        if int(item) in seeds:
            raise ConfigError(f"--seeds {text!r}: seed {int(item)} is listed twice; each seed is one run directory")
        seeds.append(int(item))
    return seeds


# How a run computes, not what it is: a resume may change them without --force.
RUN_TIME_SETTINGS = ("trainer.threads",)


def resume_config(run_dir: Path, config_path: str | None, overrides: tuple[str, ...], force: bool) -> Config:
    """The saved config of a run, with any changes refused unless --force (run-time settings aside)."""
    saved_file = run_dir / CONFIG_FILE
    if not saved_file.is_file():
        raise ConfigError(f"--resume {str(run_dir)!r}: not a run directory (no config.yaml)")
    saved = config_from_dict(read_config_file(saved_file, "the run's config"))
    # Where a run lives is not part of its recipe: it resumes from any path, also after a move.
    saved.run_dir = str(run_dir)
    raw = read_config_file(config_path) if config_path else to_dict(saved)
    raw["run_dir"] = str(run_dir)
    for assignment in overrides:
        apply_override(raw, assignment)
    cfg = with_absolute_paths(from_dict(Config, raw))
    if cfg.trainer.precision == AUTO:  # the precision the run started in (config.yaml records the choice)
        cfg.trainer.precision = saved.trainer.precision
    changes = [change for change in config_diff(to_dict(saved), to_dict(cfg))
               if change.split(":", 1)[0] not in RUN_TIME_SETTINGS]
    if changes and not force:
        raise ConfigError(f"the config differs from the run's saved one ({'; '.join(changes)}); "
                          "pass --force to resume with it anyway")
    return cfg


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="YAML experiment file (see `ssgen configs`). Defaults apply where it is silent.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one config value, e.g. --set trainer.steps=2000 "
                   "--set data.path=DIR/train.zip. Repeatable.")
@click.option("--resume", "resume_dir", type=click.Path(file_okay=False),
              help="Continue the run in this directory (any path to it, also after moving it) from its "
                   "latest readable checkpoint.")
@click.option("--force", is_flag=True, help="With --resume: accept a config that differs from the saved one "
                                          "(trainer.threads, a run-time setting, may change without it).")
@click.option("--overwrite", is_flag=True,
              help="Start afresh in a run directory that already holds a run, deleting that run's files.")
@click.option("--no-progress", is_flag=True,
              help="No progress bar: a plain line every trainer.log_every steps instead (the default when "
                   "the output is not a terminal).")
@click.option("--seeds", metavar="0,1,2",
              help="Train the config once per seed, one after the other, seed set and run_dir given the suffix "
                   "-s<seed> (runs/gan: runs/gan-s0, runs/gan-s1 ...), for `ssgen report` to draw as one line with "
                   "a ± std band. With --resume RUN_DIR: resume each RUN_DIR-s<seed>.")
def train(config_path, overrides, resume_dir, force, overwrite, no_progress, seeds):
    """Train a method (GAN, SS-GAN, RotNet, autoencoders ...) from a config.

    The run directory (`run_dir`, default runs/<config name>) receives config.yaml, checkpoints/,
    tb/ (TensorBoard), samples/ and metrics.jsonl. A fresh run refuses a directory that already
    holds a run (--resume it, choose another run_dir, or --overwrite). After SIGTERM or Ctrl-C
    the checkpoint is written and the exit status is 128 + the signal number (143, 130).

    --seeds runs one recipe under several seeds: a flag rather than a script, since each seed is
    this same command with two values changed, and --resume, --overwrite and the config checks
    apply to every seed's directory as they do to one. All seeds' configs are checked before the
    first one trains; a stop (SIGTERM, Ctrl-C) ends the whole list."""
    from ssgen.train.trainer import Stopped
    from ssgen.train.trainer import train as run_training

    seed_list = parse_seeds(seeds) if seeds is not None else []  # --seeds '' is a bad list, not no list
    if resume_dir:
        run_dirs = [f"{resume_dir}-s{seed}" for seed in seed_list] or [resume_dir]
        configs = [resume_config(Path(run_dir), config_path, overrides, force) for run_dir in run_dirs]
    elif config_path is None:
        names = ", ".join(p.name for p in sorted(CONFIGS_DIR.glob("*.yaml")))
        raise ConfigError(f"ssgen train needs --config FILE (or --resume RUN_DIR); shipped configs in {CONFIGS_DIR}: "
                          f"{names} (`ssgen configs` describes them); start with: ssgen train --config "
                          f"{CONFIGS_DIR / 'quick.yaml'}")
    else:
        cfg = with_absolute_paths(load_config(config_path, overrides, log=lambda msg: click.echo(msg, err=True)))
        configs = [dataclasses.replace(cfg, seed=seed, run_dir=f"{cfg.run_dir}-s{seed}") for seed in seed_list] or [cfg]
    main_process = os.environ.get("RANK", "0") == "0"  # the trainer speaks from rank 0 alone; so do we
    for index, cfg in enumerate(configs):
        if seed_list and main_process:
            click.echo(f"seed {cfg.seed} ({index + 1} of {len(configs)}): {cfg.run_dir}", err=True)
        try:
            run_dir = run_training(cfg, resume=bool(resume_dir), bar=not no_progress, overwrite=overwrite,
                                   log=lambda msg: click.echo(msg, err=True))
        except Stopped as stop:
            if main_process:
                click.echo(f"run directory: {stop.run_dir}")
            sys.exit(stop.exit_status)
        if main_process:
            click.echo(f"run directory: {run_dir}")


@cli.command()
@click.argument("checkpoint", type=click.Path())
@click.option("-n", "num", default=64, show_default=True, help="Number of samples.")
@click.option("--out", default="samples.png", show_default=True, type=click.Path(dir_okay=False),
              help="PNG file for the grid of samples.")
@click.option("--seed", default=0, show_default=True, help="Seed of the latent noise.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def sample(checkpoint, num, out, seed, device):
    """Write a grid of samples from CHECKPOINT (a .pt file or a run directory; EMA G where there is one)."""
    import torch

    from ssgen.rebuild import load_run
    from ssgen.images import save_grid
    from ssgen.parallel import resolve_device

    if num < 1:
        raise ConfigError(f"-n {num}: expected at least 1 sample")
    run = load_run(checkpoint, resolve_device(device), warn=lambda m: click.echo(m, err=True))
    if not run.method.generative:
        raise ConfigError(f"{run.cfg.method.name} is not a generative method; nothing to sample")
    images = run.method.sample(num, torch.Generator().manual_seed(seed))
    Path(out).parent.mkdir(parents=True, exist_ok=True)  # as report --out does
    save_grid(images, out)
    click.echo(f"{num} samples from {run.checkpoint} (step {run.step}) -> {out}")


@cli.command()
@click.option("--dir", "folder", default=str(CONFIGS_DIR), show_default=True, type=click.Path(file_okay=False),
              help="Folder of YAML configs.")
def configs(folder):
    """List the shipped configs, one line each (the file's first comment)."""
    paths = sorted(Path(folder).glob("*.yaml"))
    if not paths:
        raise ConfigError(f"no configs (*.yaml) in {folder!r}")
    width = max(len(str(p)) for p in paths)
    for path in paths:
        first = next((line for line in path.read_text().splitlines() if line.startswith("#")), "#")
        click.echo(f"{str(path):<{width}}  {first.lstrip('#').strip()}")


for measurement in COMMANDS:
    cli.add_command(measurement)


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except (SsgenError, OSError) as err:
        # OSError: the environment refused a file operation (missing folder for --out, full disk
        # while logging...): the user's to fix, so one line too; a bug still shows its traceback.
        if debug:
            raise
        click.echo(f"error: {one_line(err)}", err=True)
        sys.exit(2)


def one_line(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        return f"{where}{err.strerror}"
    return " ".join(str(err).split())  # the promise is one line, whatever a message holds


if __name__ == "__main__":
    main()
