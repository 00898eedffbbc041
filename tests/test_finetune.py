"""`ssgen finetune`: stage 1 leaves the network alone, stage 2 moves the pretrained part at its own
(lower) rate, the labelled subset is the run's record, figures are written with their protocol,
the saved network loads back, and bad inputs are one-line errors."""

import copy
import re

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ssgen.checkpoint import LABELLED_FILE, save_finetuned
from ssgen.config import Config, OptimConfig, load_config
from ssgen.data import build_dataset
from ssgen.errors import CheckpointError, ConfigError
from ssgen.eval.finetune import (FinetuneConfig, FineTuner, feature_layer, feature_parameters, linear_stage,
                                 network_accuracy)
from ssgen.eval.metrics import read_metrics
from ssgen.eval.probe import ProbeData, extract_features, measure_norm_statistics, probe_accuracy
from ssgen.images import to_float
from ssgen.methods.base import Method
from ssgen.rebuild import load_finetuned, load_run
from ssgen.step import DataInfo

from small_runs import CONFIGS, QUICK, TINY, quiet_train

CPU = torch.device("cpu")
FAST = ["--steps", 2, "--batch-size", 4, "--threads", 1]  # seconds per ssgen finetune


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny SS-GAN run trained with data.labels=0.1 (64 images: one label a class)."""
    run_dir = tmp_path_factory.mktemp("finetune") / "run"
    cfg = load_config(QUICK, [f"run_dir={run_dir}", *TINY, "trainer.steps=2", "data.labels=0.1"])
    return quiet_train(cfg)


@pytest.fixture
def loaded(run):
    return load_run(run, CPU)


def probe_data(cfg) -> ProbeData:
    sets = [build_dataset(cfg.data, split) for split in ("train", "test")]
    return ProbeData.from_sets(*sets, 40, 16)


def state(module):
    return {name: value.clone() for name, value in module.state_dict().items()}


@pytest.mark.e2e
def test_stage_1_leaves_every_weight_and_buffer_bit_identical_and_is_the_linear_probe(loaded):
    data = probe_data(loaded.cfg)
    cfg = FinetuneConfig(layer="penultimate")
    before = state(loaded.method)
    network, accuracy = linear_stage(loaded.method, data, cfg, CPU)
    after = state(loaded.method)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    features = {split: extract_features(loaded.method, images, ["penultimate"], 500, CPU)["penultimate"]
                for split, images in (("train", data.train_images), ("test", data.test_images))}
    assert accuracy == probe_accuracy(features["train"], data.train_labels, features["test"], data.test_labels,
                                      data.num_classes, cfg.max_iter, cfg.l2)
    # The head reads the same features: the network's test top-1 is stage 1's figure.
    assert network_accuracy(network, data.test_images, data.test_labels, cfg.feature_batch, CPU) == accuracy


@pytest.mark.e2e
def test_stage_2_moves_the_pretrained_part_at_the_scaled_rate_and_nothing_else(loaded):
    data = probe_data(loaded.cfg)
    lr, scale = 0.1, 0.25
    cfg = FinetuneConfig(layer="penultimate", augment="none", trunk_lr_scale=scale,
                         optim=OptimConfig(name="sgd", lr=lr, momentum=0.0, schedule="constant"))
    network, _ = linear_stage(loaded.method, data, cfg, CPU)
    tuner = FineTuner(network, cfg, resolution=32)
    assert [group["lr"] for group in tuner.optimizer.param_groups] == [pytest.approx(lr * scale), lr]
    trunk = {id(p) for p in tuner.trunk}
    d_weights = {id(p) for p in loaded.method.D.blocks.parameters()}
    assert trunk == d_weights  # the critic, the rotation head and G are not features

    x, y = to_float(data.train_images[:8]), data.train_labels[:8]
    reference = copy.deepcopy(network)  # the gradient SGD without momentum steps along
    reference.train()
    F.cross_entropy(reference(x), y).backward()
    before = {name: p.detach().clone() for name, p in network.named_parameters()}
    tuner.step(x, y, step=1)
    moved = 0
    for (name, p), ref in zip(network.named_parameters(), reference.parameters()):
        if id(p) in trunk:
            rate = lr * scale
        elif name.startswith("head."):
            rate = lr
        else:
            assert torch.equal(p, before[name]), f"{name} is not part of the features, yet it moved"
            continue
        expected = before[name] - rate * ref.grad
        assert torch.allclose(p, expected, rtol=0, atol=1e-6), name
        moved += bool((p != before[name]).any())
    assert moved > len(trunk) // 2  # the check above is not vacuous: most tensors did move


@pytest.mark.e2e
def test_load_finetuned_round_trips_the_logits(loaded, tmp_path):
    data = probe_data(loaded.cfg)
    cfg = FinetuneConfig(layer="block2", augment="weak")
    network, _ = linear_stage(loaded.method, data, cfg, CPU)
    FineTuner(network, cfg, 32).step(to_float(data.train_images[:8]), data.train_labels[:8], step=1)
    path = tmp_path / "net.pt"
    save_finetuned(path, network, loaded.cfg, torch.arange(4), ["a"] * 10, {"layer": "block2"}, {})
    restored = load_finetuned(path, "cpu")
    x = to_float(data.test_images)
    network.eval()
    with torch.no_grad():
        assert torch.equal(restored(x), network(x))
    assert restored(x).shape == (len(x), 10) and not restored.training


@pytest.mark.e2e
def test_finetune_writes_both_stages_with_the_protocol_and_uses_the_recorded_subset(ssgen, run, tmp_path):
    chosen = [0, 3, 5, 8, 13, 21, 34, 55]  # a subset of our own in the run's record
    (run / LABELLED_FILE).write_text("".join(f"{r}\n" for r in chosen))
    out = tmp_path / "out"
    code, stdout, stderr = ssgen("finetune", run, *FAST, "--lr", 0.01, "--trunk-lr-scale", 0.2, "--out", out)
    assert code == 0, stderr
    assert "stage 1" in stdout and "stage 2" in stdout and "stage 2" in stderr  # progress on stderr
    records = read_metrics(out)
    assert [list(r["metrics"]) for r in records] == [["finetune/linear"], ["finetune/full"]]
    protocol = records[1]["protocol"]
    assert protocol["labelled_images"] == len(chosen) and protocol["labels_source"] == str(run / LABELLED_FILE)
    assert protocol["labels"] == 0.1 and protocol["stage2_steps"] == 2 and protocol["layer"] == "penultimate"
    assert protocol["lr_head"] == 0.01 and protocol["lr_trunk"] == pytest.approx(0.002)
    assert protocol["augment"] == "weak" and protocol["test_size"] == 16 and "step 2" in protocol["init"]
    assert "stage2_steps" not in records[0]["protocol"]  # stage 1's figure does not depend on stage 2
    assert not any("finetune/linear" in r["metrics"] for r in read_metrics(run))  # --out: the run is left alone

    saved = torch.load(out / "finetuned-step-00000002.pt", weights_only=True)
    assert saved["format"] == "ssgen-finetuned" and saved["labelled_rows"].tolist() == chosen
    network = load_finetuned(out / "finetuned-step-00000002.pt")
    test = build_dataset(load_run(run, CPU).cfg.data, "test")
    assert network_accuracy(network, test.images, test.labels, 500, CPU) == pytest.approx(
        records[1]["metrics"]["finetune/full"])


@pytest.mark.e2e
def test_another_labels_value_chooses_afresh_and_random_init_is_the_floor(ssgen, run):
    code, stdout, stderr = ssgen("finetune", run, *FAST, "--labels", 20, "--random-init")
    assert code == 0, stderr
    records = [r for r in read_metrics(run) if "finetune/full_random_init" in r["metrics"]]
    assert len(records) == 1  # no --out: the run's own metrics
    protocol = records[0]["protocol"]
    assert protocol["init"] == "random" and protocol["labelled_images"] == 20 and protocol["labels"] == 20
    assert protocol["labels_source"].startswith("chosen")
    saved = torch.load(run / "finetuned-random-init.pt", weights_only=True)
    counts = torch.bincount(build_dataset(load_run(run, CPU).cfg.data, "train").labels[saved["labelled_rows"]])
    assert counts.tolist() == [2] * 10  # class-balanced


def test_the_random_init_floor_of_a_batch_norm_network_is_the_network_training_starts_from():
    """An untrained ResNet's running statistics are 0 and 1, so in eval mode it is another network
    than the train-mode one stage 2 trains; measured on the images, the two agree, and the rest of
    the network is left as it was."""
    cfg = load_config(CONFIGS / "simclr_shapes.yaml",
                      ["method.encoder.width=8", "data.train_size=64", "data.test_size=16"])
    from ssgen.rebuild import build_method
    torch.manual_seed(0)
    method = build_method(cfg, CPU)
    images = build_dataset(cfg.data, "train").images[:64]
    weights = {name: p.detach().clone() for name, p in method.named_parameters()}
    method.train()
    with torch.no_grad():
        train_mode = method.features(to_float(images), ["encoder"])["encoder"]
    stale = extract_features(method, images, ["encoder"], 64, CPU)["encoder"]
    assert not torch.allclose(stale, train_mode, atol=1e-3)  # the mismatch the floor used to carry

    norms = measure_norm_statistics(method, images, ["encoder"], 32, CPU)
    assert norms > 10 and method.training  # its mode is put back
    assert all(m.momentum == 0.1 for m in method.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert all(torch.equal(p, weights[name]) for name, p in method.named_parameters())
    measured = extract_features(method, images, ["encoder"], 64, CPU)["encoder"]
    # Two batches of 32 average to the statistics of all 64 up to the variance's small-sample terms.
    assert torch.allclose(measured, train_mode, atol=0.05 * train_mode.abs().max().item())
    assert (measured - train_mode).abs().mean() < 0.1 * (stale - train_mode).abs().mean()


class NoFeatures(Method):
    def __init__(self):
        super().__init__(Config().method, DataInfo(resolution=8))


@pytest.mark.e2e
def test_a_method_without_features_or_an_unknown_layer_is_a_config_error(loaded):
    with pytest.raises(ConfigError, match="exposes no features"):
        feature_layer(NoFeatures(), None)
    with pytest.raises(ConfigError, match="unknown feature layer 'block9'.*valid: penultimate"):
        feature_layer(loaded.method, "block9")
    assert feature_parameters(loaded.method, "block1", 32) == list(loaded.method.D.blocks["block1"].parameters())


@pytest.mark.e2e
def test_bad_inputs_are_one_line_errors(ssgen, run, tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    for i in range(12):
        Image.new("RGB", (32, 32), (20 * i, 0, 0)).save(unlabelled / f"{i}.png")
    for args, words in (((text,), "not a checkpoint at all"),
                        ((run, "--data-path", unlabelled), "no class labels, but fine-tuning needs them"),
                        ((run, "--layer", "block9"), "unknown feature layer 'block9'"),
                        ((run, "--optimizer", "rmsprop"), "optim.name: unknown optimizer 'rmsprop'"),
                        ((run, "--augment", "heavy"), "augment: 'heavy' is not one of simclr, byol"),
                        ((run, "--trunk-lr-scale", -1), "trunk_lr_scale: -1.0 is out of range; expected >= 0.0"),
                        ((run, "--lr", 0), "optim.lr: 0.0 is out of range; expected > 0.0"),
                        ((run, "--labels", 2.5), "data.labels=2.5: a count of labels must be a whole number")):
        code, _, stderr = ssgen("finetune", *args, *FAST)
        assert code == 2 and words in stderr and len(stderr.strip().splitlines()) == 1, (args, stderr)
    with pytest.raises(CheckpointError, match="not a fine-tuned network.*training checkpoint"):
        load_finetuned(next((run / "checkpoints").glob("*.pt")))
    code, _, stderr = ssgen("finetune", *FAST, "--out", tmp_path / "net", run)
    code, _, stderr = ssgen("probe", tmp_path / "net" / "finetuned-step-00000002.pt")
    assert code == 2 and "is a fine-tuned classifier" in stderr


@pytest.mark.e2e
def test_help_explains_the_stages_and_the_floor(ssgen):
    code, stdout, _ = ssgen("finetune", "--help")
    assert code == 0
    for words in ("linear classifier on the frozen features", "--trunk-lr-scale", "--random-init", "--labels",
                  "load_finetuned", "--augment"):
        assert words in " ".join(stdout.split()), words
    # The options' defaults are the protocol's own (FinetuneConfig), shown in the help.
    defaults = FinetuneConfig(layer="")
    for option, default in (("--steps", defaults.steps), ("--lr", defaults.optim.lr),
                            ("--schedule", defaults.optim.schedule), ("--trunk-lr-scale", defaults.trunk_lr_scale),
                            ("--augment", defaults.augment)):
        assert re.search(rf"{option} \S+ [^\[]*\[default: {default}\]", " ".join(stdout.split())), option
