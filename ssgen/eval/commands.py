"""`ssgen fid`, `ssgen probe`, `ssgen finetune`, `ssgen report`: measurements of trained runs from the
command line.

The main group adds these commands; user errors are SsgenErrors, printed as one line.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click

from ssgen.errors import ConfigError
from ssgen.eval.finetune import FinetuneConfig
from ssgen.precision import evaluation_precision, recorded
from ssgen.registry import EXTRACTORS

FINETUNE = FinetuneConfig(layer="")  # the defaults of `ssgen finetune`'s options: the protocol's own


def load(checkpoint: str, device: str):
    from ssgen.parallel import resolve_device
    from ssgen.rebuild import load_run

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


def untrained_like(run, device, images, layers, batch_size):
    """The run's method freshly built from its seed, its batch-norm statistics measured on `images`
    (uint8, the labelled training images) up to `layers`: the random-init floor of probe and
    finetune (one initialisation for both, so their floors describe the same network)."""
    import torch

    from ssgen.eval.probe import measure_norm_statistics
    from ssgen.rebuild import build_method

    torch.manual_seed(run.cfg.seed)
    method = build_method(run.cfg, device)
    measure_norm_statistics(method, images, method.check_features(layers), batch_size, device)
    return method


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
@click.option("--no-ema", is_flag=True,
              help="Sample the trained G itself, not its EMA copy (the default where the run keeps one). "
                   "Early in a run the EMA still carries much of G's initialisation (decay 0.999: 61% after "
                   "500 steps), so this is the figure that follows training there; recorded in the protocol.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]),
              help="Sampling and features in fp32 or bf16 autocast; default: the run's eval.fid.precision "
                   "(auto: the run's trainer.precision). Recorded in the protocol where bf16.")
def fid(checkpoint, data_path, data_name, split, num, extractor, weights, no_ema, device, precision):
    """FID (or FD in another feature space) of CHECKPOINT's samples against real images.

    Prints the value and its protocol and appends both to the run's metrics.jsonl. Real-image
    statistics are cached in ~/.cache/ssgen/fid ($SSGEN_CACHE/fid if set) and reused across runs."""
    from ssgen.data import build_dataset
    from ssgen.eval.fid import FrechetDistance, configured_extractor, measurement_warnings, resolve_extractor
    from ssgen.eval.metrics import METRICS_FILE, append_metrics

    if num < 2:
        raise ConfigError(f"-n {num}: expected at least 2 samples")
    run, device = load(checkpoint, device)
    fc = run.cfg.eval.fid
    if not run.method.generative:
        raise ConfigError(f"{run.cfg.method.name} is not a generative method; it has no samples to measure")
    if no_ema:
        if getattr(run.method, "G_ema", None) is None:
            raise ConfigError(f"--no-ema: {run.checkpoint} has no EMA generator (method.ema_decay is 0); "
                              "its samples already come from G itself")
        run.method.G_ema = None  # the sampler falls back to G
    feature_space = resolve_extractor(named_extractor(extractor, configured_extractor(run.cfg)),
                                      fc.weights if weights is None else weights)
    data = data_config(run.cfg, data_path, data_name)
    images = build_dataset(data, split or fc.split, run_holdout(run, data))
    for line in measurement_warnings(feature_space, images, num):
        click.echo(line, err=True)
    distance = FrechetDistance(images, feature_space, device, num, batch_size=fc.batch_size, seed=run.cfg.seed,
                               log=lambda line: click.echo(line, err=True),
                               precision=evaluation_precision(precision or fc.precision, run.cfg.trainer.precision,
                                                              device))
    value = distance(run.method)
    protocol = {**distance.protocol, **({"generator": "G, no EMA"} if no_ema else {})}
    click.echo(f"{feature_space.label}: {value:.4f}")
    click.echo(f"protocol: {json.dumps(protocol)}")
    append_metrics(run.run_dir, run.step, {feature_space.metric_key: value}, protocol)
    click.echo(f"appended to {run.run_dir / METRICS_FILE} (step {run.step})")


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--layers", help="Comma-separated feature layers, e.g. penultimate,block2; default: the run's "
                               "eval.probe.layers, else the method's default layer.")
@click.option("--random-init", is_flag=True,
              help="Probe an untrained network of the same architecture instead: the floor to compare with "
                   "(its batch-norm statistics measured on the training images, as training would see it).")
@click.option("--train-size", type=click.IntRange(10), help="Labelled training images the classifier is fit on.")
@click.option("--test-size", type=click.IntRange(10), help="Test images it is scored on.")
@click.option("--data-path", help="Labelled images (folder or .zip); default: the run's data.path.")
@click.option("--data-name", help="Dataset registry name of the labelled images; default: the run's data.name "
                                  "(folder when --data-path is given for a shapes run).")
@click.option("--knn", is_flag=True, help="Also the weighted kNN classifier of the same features (k and temperature "
                                       "from the run's eval.knn: 200 and 0.1 by default), as SSL libraries report it.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]),
              help="Frozen features in fp32 or bf16 autocast; default: the run's eval.probe.precision (auto: the "
                   "run's trainer.precision). Recorded in the protocol where bf16; --knn classifies the same features.")
def probe(checkpoint, layers, random_init, train_size, test_size, data_path, data_name, knn, device, precision):
    """Linear-probe top-1 of CHECKPOINT's frozen features (e.g. a GAN's discriminator), per layer.

    A logistic regression is fit on features of a fixed labelled train subset and scored on the
    test split, fit until converged (eval.probe.tolerance, eval.probe.max_iter, eval.probe.l2);
    with --knn, the kNN monitor too, on the same features."""
    from ssgen.data import build_dataset, require_labels
    from ssgen.eval.knn import knn_accuracy, knn_protocol
    from ssgen.eval.probe import ProbeData, fit_probe, frozen_features, warn_if_unconverged

    run, device = load(checkpoint, device)
    cfg = dataclasses.replace(run.cfg.eval.probe, **{k: v for k, v in (("train_size", train_size),
                                                                         ("test_size", test_size)) if v is not None})
    method = run.method
    chosen = method.check_features([name.strip() for name in layers.split(",")] if layers else cfg.layers)
    data = data_config(run.cfg, data_path, data_name)
    holdout = run_holdout(run, data)
    sets = [build_dataset(data, split, holdout) for split in ("train", "test")]
    for images in sets:
        require_labels(images, "a linear probe fits a classifier on class labels")
    data = ProbeData.from_sets(*sets, cfg.train_size, cfg.test_size)
    if random_init:
        method = untrained_like(run, device, data.train_images, chosen, cfg.batch_size)
    log = lambda line: click.echo(line, err=True)  # noqa: E731
    features_precision = evaluation_precision(precision or cfg.precision, run.cfg.trainer.precision, device)
    train, test = frozen_features(method, data, chosen, cfg.batch_size, device, log, features_precision)
    log(f"fitting the classifier (L-BFGS to gradient max-abs {cfg.tolerance:g}, at most {cfg.max_iter} "
        f"iterations per layer, {len(chosen)} layer(s))")
    source = "random-init network" if random_init else f"{run.checkpoint} (step {run.step})"
    click.echo(f"linear probe of {source}; protocol: {json.dumps(data.protocol(cfg, features_precision))}")
    for layer in chosen:
        result = fit_probe(train[layer], data.train_labels, test[layer], data.test_labels,
                           data.num_classes, cfg.max_iter, cfg.l2, cfg.tolerance)
        ending = "converged" if result.converged else "NOT converged"
        click.echo(f"{layer}: {100 * result.accuracy:.2f}% ± {100 * result.standard_error:.2f} top-1 (± one "
                   f"standard error over {result.test_size} test images; {ending} in {result.iterations} L-BFGS "
                   "iterations)")
        warn_if_unconverged(result, layer, log)
    if knn:
        knn_cfg = run.cfg.eval.knn
        protocol = {**knn_protocol(data, knn_cfg), **recorded(features_precision)}
        click.echo(f"kNN of {source}; protocol: {json.dumps(protocol)}")
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
    self-supervised task accuracy (rotation ...) vs step, the latest sample grids, and a table of
    final and best figures per run.

    A folder that is not itself a run stands for every run below it (`ssgen report runs/`),
    each labelled by its path inside that folder.

    Runs whose config.yaml differ in seed (and run_dir) alone are seeds of one recipe (`ssgen train
    --seeds 0,1,2`): one line, their mean, with a ± std band and n in the legend ("gan (n=3)"), and
    mean ± std in the tables, the probe's peak against final first. Any other difference keeps runs apart."""
    from ssgen.eval.report import write_report

    click.echo(f"report: {write_report(list(run_dirs), out)}")


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.option("--labels", type=click.FloatRange(min=0),
              help="The labelled subset, as data.labels reads: a count in all (4000: 400 a class on CIFAR-10), a "
                   "share of each class (0.1), or 0 for every label. Default: the subset the run recorded "
                   "(RUN/labelled.txt, from training with data.labels), else all labels. The same value as the "
                   "run's data.labels reuses its record; another is a seeded, class-balanced choice (data.seed).")
@click.option("--layer", help="The feature layer the head reads, e.g. penultimate or block2; default: the method's "
                              "default layer (a GAN's D: penultimate; encoders: encoder).")
@click.option("--steps", type=int, default=FINETUNE.steps, show_default=True, help="Stage-2 updates.")
@click.option("--batch-size", type=int, default=FINETUNE.batch_size, show_default=True,
              help="Stage-2 batch (at most the labelled images).")
@click.option("--optimizer", default=FINETUNE.optim.name, show_default=True,
              help="Stage 2's optimizer: adam, adamw, sgd, lars.")
@click.option("--lr", type=float, default=FINETUNE.optim.lr, show_default=True,
              help="The head's learning rate in stage 2.")
@click.option("--trunk-lr-scale", type=float, default=FINETUNE.trunk_lr_scale, show_default=True,
              help="The pretrained part's learning rate as a multiple of --lr (0: frozen in stage 2 too).")
@click.option("--schedule", default=FINETUNE.optim.schedule, show_default=True,
              help="Learning-rate schedule: cosine, linear, constant.")
@click.option("--momentum", type=float, default=FINETUNE.optim.momentum, show_default=True, help="sgd and lars.")
@click.option("--weight-decay", type=float, default=FINETUNE.optim.weight_decay, show_default=True,
              help="Stage 2 weight decay (none on norms and biases, as in training).")
@click.option("--augment", default=FINETUNE.augment, show_default=True,
              help="Stage-2 augmentation: an ssgen.augment preset's first view (weak: flip and a 12.5% shift; "
                   "simclr, byol, moco_v2, dino, exemplar) or none.")
@click.option("--random-init", is_flag=True,
              help="The same protocol from an untrained network of the same architecture: the floor to compare with.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Folder for the fine-tuned network and metrics.jsonl; default: the run's directory.")
@click.option("--test-size", type=click.IntRange(10), help="Test images scored; default: the run's test split.")
@click.option("--data-path", help="Labelled images (folder or .zip); default: the run's data.path.")
@click.option("--data-name", help="Dataset registry name of those images; default: the run's data.name.")
@click.option("--seed", type=int, help="Seed of the batch order and augmentation; default: the run's seed.")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(0),
              help="CPU threads; 0: torch's default.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
def finetune(checkpoint, labels, layer, steps, batch_size, optimizer, lr, trunk_lr_scale, schedule, momentum,
             weight_decay, augment, random_init, out, test_size, data_path, data_name, seed, threads, device):
    """Transfer CHECKPOINT's features (a GAN's discriminator, an autoencoder's or a pretext task's
    encoder) to the labelled subset, and score test top-1 after each stage:

    \b
    1. a linear classifier on the frozen features (the linear probe);
    2. the whole network, that classifier as its head, fine-tuned with augmentation, the pretrained
       part at --trunk-lr-scale times the head's --lr.

    Each figure is appended to metrics.jsonl (the run's, or --out's) with its protocol as soon as it
    is measured; the fine-tuned network is saved as finetuned-step-N.pt (finetuned-random-init.pt)
    beside it, for ssgen.rebuild.load_finetuned. --random-init gives the floor: the same protocol
    from an untrained network. It is its own command because it depends on the architecture and
    protocol only, so one floor serves every checkpoint of that architecture."""
    import torch

    from ssgen.checkpoint import save_finetuned
    from ssgen.config import from_dict
    from ssgen.data import build_dataset, require_labels
    from ssgen.eval.finetune import feature_layer, full_stage, linear_stage
    from ssgen.eval.metrics import METRICS_FILE, append_metrics
    from ssgen.eval.probe import ProbeData

    options = from_dict(FinetuneConfig, {  # ranges and names checked before any work, each bad one named
        "layer": "", "steps": steps, "batch_size": batch_size, "trunk_lr_scale": trunk_lr_scale, "augment": augment,
        "optim": {"name": optimizer, "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                  "schedule": schedule}})
    if threads:
        torch.set_num_threads(threads)
    run, device = load(checkpoint, device)
    log = lambda line: click.echo(line, err=True)  # noqa: E731
    method = run.method
    probe = run.cfg.eval.probe  # stage 1 is the run's own probe; its values were checked with the run's config
    cfg = dataclasses.replace(options, layer=feature_layer(method, layer), max_iter=probe.max_iter,
                              tolerance=probe.tolerance, l2=probe.l2, feature_batch=probe.batch_size,
                              seed=run.cfg.seed if seed is None else seed)
    data_cfg = data_config(run.cfg, data_path, data_name)
    if test_size is not None:
        data_cfg = dataclasses.replace(data_cfg, test_size=test_size)
    holdout = run_holdout(run, data_cfg)
    sets = []
    for split in ("train", "test"):  # one at a time: a folder without labels is named before its missing test split
        sets.append(build_dataset(data_cfg, split, holdout))
        require_labels(sets[-1], "fine-tuning")
    train_set, test_set = sets
    rows, labels_protocol, line = labelled_subset(run, data_cfg, train_set, labels)
    log(line)
    train_images, train_labels = train_set.get(rows)
    test_images, test_labels = test_set.get(torch.arange(len(test_set)))
    data = ProbeData(train_images, train_labels, test_images, test_labels,
                     len(train_set.classes), train_set.name)
    if random_init:
        method = untrained_like(run, device, train_images, [cfg.layer], cfg.feature_batch)
    source = "random-init network" if random_init else f"{run.checkpoint} (step {run.step})"
    base = {**data.description("test top-1"), **labels_protocol,
            "init": "random" if random_init else f"{run.checkpoint.absolute()} (step {run.step})"}
    out_dir = Path(out) if out else run.run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    suffix = "_random_init" if random_init else ""

    network, linear = linear_stage(method, data, cfg, device, log)
    linear_protocol = {**base, **cfg.linear_protocol()}
    append_metrics(out_dir, run.step, {f"finetune/linear{suffix}": linear}, linear_protocol)
    click.echo(f"stage 1, linear classifier on frozen {cfg.layer} features of {source}: {100 * linear:.2f}% top-1")

    log(f"stage 2: fine-tuning {sum(p.numel() for p in network.parameters()):,} weights for {steps} steps "
        f"(head lr {lr:g}, pretrained part x{trunk_lr_scale:g}, augment {augment})")
    full = full_stage(network, data, cfg, device, log)
    protocol = {**base, **cfg.protocol()}
    path = out_dir / ("finetuned-random-init.pt" if random_init else f"finetuned-step-{run.step:08d}.pt")
    metrics = {f"finetune/linear{suffix}": linear, f"finetune/full{suffix}": full}
    save_finetuned(path, network, run.cfg, rows, train_set.classes, protocol, metrics)
    append_metrics(out_dir, run.step, {f"finetune/full{suffix}": full}, protocol)
    click.echo(f"stage 2, whole network fine-tuned: {100 * full:.2f}% top-1")
    click.echo(f"protocol: {json.dumps(protocol)}")
    click.echo(f"network: {path}; appended to {out_dir / METRICS_FILE} (step {run.step})")


def labelled_subset(run, data_cfg, train_set, labels: float | None):
    """(rows of the train split that keep their labels, how they were chosen (for the protocol), a line
    to log).
    The run's record where it applies (its own data, and --labels absent or equal to its data.labels)."""
    import hashlib

    from ssgen.checkpoint import LABELLED_FILE, read_labelled
    from ssgen.data.labelled import describe, labelled_rows

    own_data = data_cfg.name == run.cfg.data.name and data_cfg.path == run.cfg.data.path \
        and data_cfg.train_size == run.cfg.data.train_size
    recorded = read_labelled(run.run_dir, len(train_set)) if own_data else None
    if recorded is not None and labels in (None, run.cfg.data.labels):
        rows, spec, source = recorded, run.cfg.data.labels, str((run.run_dir / LABELLED_FILE).absolute())
    else:
        spec = 0.0 if labels is None else labels
        rows = labelled_rows(train_set.labels, spec, data_cfg.seed)
        source = "all labels" if spec == 0 else f"chosen: class-balanced, data.seed {data_cfg.seed}"
    digest = hashlib.sha256(rows.numpy().tobytes()).hexdigest()[:16]  # tells two subsets of one size apart
    return (rows, {"labels": spec, "labelled_images": len(rows), "labels_source": source,
                   "labelled_rows_sha256": digest}, f"{describe(rows, train_set.labels, spec)} ({source})")


COMMANDS = (fid, probe, finetune, report)
