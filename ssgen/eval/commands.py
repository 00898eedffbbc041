"""`ssgen fid`, `ssgen probe`, `ssgen report`: measurements of trained runs from the command line.

The main group adds these commands; user errors are SsgenErrors, printed as one line.
"""

from __future__ import annotations

import dataclasses
import json

import click

from ssgen.errors import ConfigError
from ssgen.registry import EXTRACTORS

def load(checkpoint: str, device: str):
    from ssgen.checkpoint import load_run
    from ssgen.parallel import resolve_device

    resolved = resolve_device(device)
    return load_run(checkpoint, resolved, warn=lambda m: click.echo(m, err=True)), resolved


def data_config(cfg, data_path: str | None, data_name: str | None = None):
    """The run's data section, with the paths/names given on the command line."""
    if data_path and data_name is None and cfg.data.name == "shapes":
        data_name = "folder"  # shapes takes no path: a path given for a shapes run means images on disk
    changes = {k: v for k, v in (("path", data_path), ("name", data_name)) if v is not None}
    return dataclasses.replace(cfg.data, **changes)


def run_holdout(run, data):
    """The run's held-out test images where `data` is the run's own; other images choose their own."""
    from ssgen.checkpoint import read_holdout
    from ssgen.data import choose_holdout

    holdout = choose_holdout(data, read_holdout(run.run_dir, started=True) if data == run.cfg.data else None)
    if holdout.message:
        click.echo(holdout.message, err=True)
    return holdout


def named_extractor(extractor: str | None, configured: str) -> str:
    """The extractor to load. A TorchScript file runs code, so it is loaded only when named on this
    command line, never because a run directory's config (possibly someone else's) names it."""
    if extractor is None and configured not in EXTRACTORS:
        raise ConfigError(f"the run's eval.fid.extractor is the TorchScript file {configured!r}; "
                          f"files are loaded only when named on the command line: pass --extractor {configured}")
    return extractor or configured


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--data-path", help="Real images to compare with (folder or .zip); default: the run's data.path.")
@click.option("--data-name", help="Dataset registry name of the real images; default: the run's data.name.")
@click.option("--split", type=click.Choice(["train", "test"]), help="Real split; default: the run's eval.fid.split.")
@click.option("-n", "num", default=50000, show_default=True,
              help="Generated samples; real images: as many, or the whole split if smaller.")
@click.option("--extractor", help="inception-v3-compat (reported as FID), shapes (the packaged classifier of "
                                  "the embedded shapes data, reported as FD(shapes)) or a TorchScript extractor "
                                  "file (reported as FD(<file stem>)); default: the run's eval.fid.extractor "
                                  "(auto: shapes for shapes runs, else Inception).")
@click.option("--weights", help="Local Inception weights file (pt_inception-2015-12-05.pth) for offline machines.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def fid(checkpoint, data_path, data_name, split, num, extractor, weights, device):
    """FID (or FD in another feature space) of CHECKPOINT's samples against real images.

    Prints the value and its protocol and appends both to the run's metrics.jsonl. Real-image
    statistics are cached in ~/.cache/ssgen/fid ($SSGEN_CACHE/fid if set) and reused across runs."""
    from ssgen.data import build_dataset
    from ssgen.eval.fid import FrechetDistance, configured_extractor, resolve_extractor
    from ssgen.eval.metrics import METRICS_FILE, append_metrics

    if num < 2:
        raise ConfigError(f"-n {num}: expected at least 2 samples")
    run, device = load(checkpoint, device)
    fc = run.cfg.eval.fid
    if not run.method.generative:
        raise ConfigError(f"{run.cfg.method.name} is not a generative method; it has no samples to measure")
    feature_space = resolve_extractor(named_extractor(extractor, configured_extractor(run.cfg)),
                                      fc.weights if weights is None else weights)
    data = data_config(run.cfg, data_path, data_name)
    images = build_dataset(data, split or fc.split, run_holdout(run, data))
    distance = FrechetDistance(images, feature_space, device, num, batch_size=fc.batch_size, seed=run.cfg.seed,
                               log=lambda line: click.echo(line, err=True))
    value = distance(run.method)
    click.echo(f"{feature_space.label}: {value:.4f}")
    click.echo(f"protocol: {json.dumps(distance.protocol)}")
    append_metrics(run.run_dir, run.step, {feature_space.metric_key: value}, distance.protocol)
    click.echo(f"appended to {run.run_dir / METRICS_FILE} (step {run.step})")


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--layers", help="Comma-separated feature layers, e.g. penultimate,block2; default: the run's "
                               "eval.probe.layers, else the method's default layer.")
@click.option("--random-init", is_flag=True,
              help="Probe an untrained network of the same architecture instead: the floor to compare with.")
@click.option("--train-size", type=click.IntRange(10), help="Labelled training images the classifier is fit on.")
@click.option("--test-size", type=click.IntRange(10), help="Test images it is scored on.")
@click.option("--data-path", help="Labelled images (folder or .zip); default: the run's data.path.")
@click.option("--data-name", help="Dataset registry name of the labelled images; default: the run's data.name "
                                  "(folder when --data-path is given for a shapes run).")
@click.option("--knn", is_flag=True, help="Also the weighted kNN classifier of the same features (k and temperature "
                                       "from the run's eval.knn: 200 and 0.1 by default), as SSL libraries report it.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def probe(checkpoint, layers, random_init, train_size, test_size, data_path, data_name, knn, device):
    """Linear-probe top-1 of CHECKPOINT's frozen features (e.g. a GAN's discriminator), per layer.

    A logistic regression is fit on features of a fixed labelled train subset and scored on the
    test split, with a fixed budget (eval.probe.max_iter, eval.probe.l2); with --knn, the kNN
    monitor too, on the same features."""
    import torch

    from ssgen.checkpoint import build_method
    from ssgen.data import build_dataset, require_labels
    from ssgen.eval.knn import knn_accuracy, knn_protocol
    from ssgen.eval.probe import ProbeData, frozen_features, probe_accuracy

    run, device = load(checkpoint, device)
    cfg = dataclasses.replace(run.cfg.eval.probe, **{k: v for k, v in (("train_size", train_size),
                                                                         ("test_size", test_size)) if v is not None})
    method = run.method
    if random_init:
        torch.manual_seed(run.cfg.seed)
        method = build_method(run.cfg, device)
    chosen = method.check_features([name.strip() for name in layers.split(",")] if layers else cfg.layers)
    data = data_config(run.cfg, data_path, data_name)
    holdout = run_holdout(run, data)
    sets = [build_dataset(data, split, holdout) for split in ("train", "test")]
    for images in sets:
        require_labels(images, "a linear probe fits a classifier on class labels")
    data = ProbeData.from_sets(*sets, cfg.train_size, cfg.test_size)
    log = lambda line: click.echo(line, err=True)  # noqa: E731
    train, test = frozen_features(method, data, chosen, cfg.batch_size, device, log)
    log(f"fitting the classifier ({cfg.max_iter} L-BFGS iterations per layer, {len(chosen)} layer(s))")
    source = "random-init network" if random_init else f"{run.checkpoint} (step {run.step})"
    click.echo(f"linear probe of {source}; protocol: {json.dumps(data.protocol(cfg))}")
    for layer in chosen:
        accuracy = probe_accuracy(train[layer], data.train_labels, test[layer], data.test_labels,
                                  data.num_classes, cfg.max_iter, cfg.l2)
        click.echo(f"{layer}: {100 * accuracy:.2f}% top-1")
    if knn:
        knn_cfg = run.cfg.eval.knn
        click.echo(f"kNN of {source}; protocol: {json.dumps(knn_protocol(data, knn_cfg))}")
        for layer in chosen:
            accuracy = knn_accuracy(train[layer], data.train_labels, test[layer], data.test_labels,
                                    data.num_classes, knn_cfg.k, knn_cfg.temperature)
            click.echo(f"{layer}: {100 * accuracy:.2f}% kNN top-1")


@click.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the PNG plots, the latest sample grids and report.md.")
def report(run_dirs, out):
    """Plots and a Markdown summary of RUN_DIRS: FID/FD, probe accuracy (forgetting) and
    self-supervised task accuracy (rotation ...) vs step, the latest sample grids, and a table of final and best figures per run.

    A folder that is not itself a run stands for every run below it (`ssgen report runs/`),
    each labelled by its path inside that folder."""
    from ssgen.eval.report import write_report

    click.echo(f"report: {write_report(list(run_dirs), out)}")


COMMANDS = (fid, probe, report)
