"""Self-supervised tasks as parts: the same task on a GAN's discriminator and on an encoder alone."""

import dataclasses

import pytest
import torch

from ssgen.checkpoint import list_checkpoints, read_checkpoint
from ssgen.config import load_config
from ssgen.errors import ConfigError
from ssgen.eval.metrics import read_metrics
from ssgen.nets.base import DiscriminatorConfig, Generator
from ssgen.rebuild import build_method
from ssgen.registry import DISCRIMINATORS, METHODS
from ssgen.step import DataInfo
from ssgen.methods.carrier import encode_together
from ssgen.tasks.base import Task, TaskConfig
from small_runs import ROTNET, SMALL_GAN, TINY_GAN, quiet_train


def method(*overrides):
    cfg = load_config(None, list(overrides))
    torch.manual_seed(0)
    return METHODS.get(cfg.method.name)(cfg.method, DataInfo(resolution=32))


def test_ssgan_is_a_gan_with_the_rotation_task():
    ssgan = method("method.name=ssgan", *SMALL_GAN, "method.n_dis=1")
    gan = method("method.name=gan", *SMALL_GAN, "method.n_dis=1", "method.tasks=[{name: rotation}]")
    gan.load_state_dict(ssgan.state_dict())
    batches = [torch.randn(8, 3, 32, 32) for _ in range(3)]
    for real in batches:
        torch.manual_seed(1)
        a = ssgan.train_step(lambda real=real: real)
        torch.manual_seed(1)
        b = gan.train_step(lambda real=real: real)
        assert a.keys() == b.keys() and {"loss/d_rotation", "rotation/acc_real", "rotation/acc_fake"} <= set(a)
        for key in a:
            assert torch.equal(a[key], b[key]), key


def test_g_weight_zero_leaves_the_task_out_of_gs_loss():
    gan = method("method.name=gan", *SMALL_GAN, "method.tasks=[{name: rotation, g_weight: 0}]")
    _, logs = gan.g_loss(torch.randn(4, 3, 32, 32))
    assert set(logs) == {"loss/g"}
    _, logs = gan.d_loss(torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32))
    assert {"loss/d_rotation", "rotation/acc_real", "loss/d_gan"} <= set(logs)


def test_encode_together_runs_one_pass_per_shape_and_keeps_the_order():
    D = DISCRIMINATORS.get("resnet")(DiscriminatorConfig(width=8), 32).eval()
    calls = []
    D.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    batches = [torch.randn(2, 3, 32, 32), torch.randn(3, 3, 16, 16), torch.randn(4, 3, 32, 32)]
    features = encode_together(D, batches)
    assert sorted(tuple(c) for c in calls) == [(3, 3, 16, 16), (6, 3, 32, 32)]
    for batch, got in zip(batches, features):
        torch.testing.assert_close(got, D(batch), rtol=1e-5, atol=1e-5)


def test_features_carry_gradients_only_when_asked():
    gan = method("method.name=ssgan", *SMALL_GAN)
    x = torch.randn(2, 3, 32, 32)
    assert not gan.features(x)["penultimate"].requires_grad
    gan.features(x, grad=True)["penultimate"].sum().backward()
    assert all(p.grad is not None for p in gan.D.blocks.parameters())


def trains_probes_and_resumes_exactly(config, overrides, run_dir, probe_key):
    """A few steps through the trainer, probed; then killed after the first checkpoint and
    resumed: the weights at the end are the uninterrupted run's, bit for bit."""
    common = ["data.train_size=64", "data.test_size=32", "trainer.batch_size=8", "trainer.steps=4",
              "trainer.checkpoint_every=2", "trainer.keep_checkpoints=5", "trainer.threads=1",
              "trainer.deterministic=true", "trainer.log_every=1", "eval.probe.every=4",
              "eval.probe.train_size=32", "eval.probe.test_size=32", "eval.fid.every=0", *overrides]
    run = quiet_train(load_config(config, [f"run_dir={run_dir}", *common]))
    keys = set().union(*(r["metrics"] for r in read_metrics(run)))
    final = read_checkpoint(list_checkpoints(run)[-1])
    list_checkpoints(run)[-1].unlink()  # as if killed after step 2
    quiet_train(load_config(config, [f"run_dir={run}", *common]), resume=True)
    resumed = read_checkpoint(list_checkpoints(run)[-1])
    for key, value in final["method"].items():
        assert torch.equal(value, resumed["method"][key]), key
    assert probe_key in keys
    return keys


# Per task: what makes it small enough for a test (tasks are added to TASKS as they land).
SMALL_TASK = {"rotation": "{name: rotation, fraction: 0.5}", "jigsaw": "{name: jigsaw, permutations: 10, hidden: 16}",
              "exemplar": "{name: exemplar, classes: 12, hidden: 16}",
              "exemplar-batch": "{name: exemplar, mode: batch, copies: 2, embedding: 8}",
              "simclr": "{name: simclr, hidden: 16, dim: 8}",
              "moco": "{name: moco, hidden: 16, dim: 8, queue: 20}",
              "moco-v1": "{name: moco, version: v1, dim: 8, queue: 20}",
              "moco-v3": "{name: moco, version: v3, hidden: 16, dim: 8, predictor_hidden: 16}",
              "byol": "{name: byol, hidden: 16, dim: 8, predictor_hidden: 16}",
              "dino": "{name: dino, prototypes: 16, hidden: 16, bottleneck: 8}",
              "ibot": "{name: ibot, prototypes: 16, hidden: 16, bottleneck: 8}"}
ON_AN_ENCODER = {"ibot": ["method.encoder.name=vit", "method.encoder.width=16", "method.encoder.depth=1",
                          "method.encoder.heads=2"]}  # patch tokens: a ViT


@pytest.mark.parametrize("task", sorted(SMALL_TASK))
@pytest.mark.e2e
def test_each_task_trains_an_encoder_alone_probes_and_resumes(task, tmp_path):
    encoder = ON_AN_ENCODER.get(task, ["method.encoder.width=8"])
    keys = trains_probes_and_resumes_exactly(ROTNET, [*encoder, f"method.tasks=[{SMALL_TASK[task]}]"],
                                             tmp_path / "run", "probe/encoder")
    assert {f"loss/{task.split('-')[0]}", "loss/total"} <= keys


@pytest.mark.parametrize("task", sorted(set(SMALL_TASK) - set(ON_AN_ENCODER)))
@pytest.mark.e2e
def test_each_task_trains_on_a_gans_discriminator_probes_and_resumes(task, tmp_path):
    keys = trains_probes_and_resumes_exactly(None, ["method.name=gan", *TINY_GAN, "method.n_dis=1",
                                                   f"method.tasks=[{SMALL_TASK[task]}]"],
                                             tmp_path / "run", "probe/penultimate")
    assert {f"loss/d_{task.split('-')[0]}", "loss/d_gan", "loss/g"} <= keys


def test_rotnet_is_the_encoder_method_with_rotation_and_has_no_generator():
    rotnet = build_method(load_config(ROTNET, ["method.encoder.width=8"]), "cpu")
    assert not any(isinstance(m, Generator) for m in rotnet.modules())  # no G, no G optimizer
    assert set(rotnet.optimizers()) == {"encoder"}
    before = [p.clone() for p in rotnet.encoder.parameters()]
    logs = rotnet.train_step(lambda: torch.randn(8, 3, 32, 32))
    assert set(logs) == {"loss/rotation", "rotation/acc_real", "loss/total"}
    assert not any(torch.equal(a, b) for a, b in zip(before, rotnet.encoder.parameters()))


def test_ibot_needs_patch_tokens():
    with pytest.raises(ConfigError, match="the ibot task masks patch tokens; the Discriminator encoder has none"):
        build_method(load_config(None, ["method.name=gan", *TINY_GAN, "method.tasks=[{name: ibot}]"]), "cpu")


def test_jigsaw_needs_a_convolutional_carrier():
    with pytest.raises(ConfigError, match="jigsaw task encodes 9 small tiles per image; the ViT encoder"):
        build_method(load_config(ROTNET, ["method.encoder.name=vit", "method.encoder.depth=1", "method.encoder.heads=2",
                                          "method.tasks=[{name: jigsaw}]"]), "cpu")


@pytest.mark.parametrize("overrides, message", [
    (["method.name=gan", "method.tasks=[{name: colour}]"],
     r"method.tasks\[0\].name: unknown task 'colour'; "
     r"valid: byol, dino, exemplar, ibot, jigsaw, moco, rotation, simclr"),
    (["method.name=gan", "method.tasks=[{name: rotation, fraktion: 1}]"], r"method.tasks\[0\]: unknown key 'fraktion'"),
    (["method.name=gan", "method.tasks=[{name: rotation, d_weight: -1}]"],
     r"method.tasks\[0\].d_weight: -1.0 is out of range"),
    (["method.name=ssgan", "method.tasks=[{name: rotation}]"],
     r"method.tasks\[0\].name: the rotation task is listed twice"),
    (["method.name=ssgan", "trainer.batch_size=30"], r"method.rotation_fraction=0.25 of trainer.batch_size=30 is 7.5"),
    (["method.name=gan", "method.tasks=[{name: rotation, fraction: 0.5}]", "trainer.batch_size=3"],
     r"method.tasks\[0\].fraction=0.5 of trainer.batch_size=3 is 1.5 images"),
    (["method.name=encoder", "method.tasks=[{name: rotation, g_weight: 0.2}]"],
     r"method.tasks\[0\].g_weight: the encoder method has no generator"),
    (["method.name=encoder", "method.tasks=[]"], "method.tasks is empty"),
])
def test_bad_task_configs_are_clear_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        cfg = load_config(None, overrides)
        METHODS.get(cfg.method.name).check_config(cfg)


def test_a_g_weight_on_a_task_without_a_generator_side_is_refused():
    class Inpainting(Task):  # a task that defines nothing for G
        pass

    cfg = load_config(None, ["method.name=gan"])
    with pytest.raises(ConfigError, match=r"method.tasks\[0\].g_weight=0.5: the inpainting task has no generator side"):
        Inpainting.check_config(TaskConfig(name="inpainting", g_weight=0.5), cfg, lambda f: f"method.tasks[0].{f}")


def exemplar(**options):
    listed = ", ".join(f"{k}: {v}" for k, v in options.items())
    cfg = load_config(ROTNET, ["method.encoder.width=8", f"method.tasks=[{{name: exemplar, {listed}}}]"])
    torch.manual_seed(0)
    return build_method(cfg, "cpu").tasks[0]


def test_exemplar_classes_are_the_first_seed_images_and_their_copies_share_a_class():
    from ssgen.images import to_uint8
    from ssgen.step import Batch, Progress

    task = exemplar(classes=6)
    first, second = torch.rand(4, 3, 32, 32) * 2 - 1, torch.rand(4, 3, 32, 32) * 2 - 1
    inputs = task.inputs(Batch.unlabelled(first), Progress())
    assert int(task.seeds_filled) == 4 and torch.equal(task.seeds[:4], to_uint8(first))
    assert inputs.targets.max() < 4  # only the seeds collected so far are drawn
    task.inputs(Batch.unlabelled(second), Progress())
    assert int(task.seeds_filled) == 6 and torch.equal(task.seeds[4:], to_uint8(second[:2]))  # full: 6 classes
    # With the augmentation off, a copy is its seed image: the label names the image it came from.
    task.augment.views = [dataclasses.replace(v, crop_scale=[1.0, 1.0], crop_ratio=[1.0, 1.0], flip=0.0, jitter_p=0.0,
                                              grayscale_p=0.0) for v in task.augment.views]
    inputs = task.inputs(Batch.unlabelled(second), Progress())
    for view, label in zip(inputs.images[0], inputs.targets):
        torch.testing.assert_close(view, (task.seeds[label].float() / 127.5 - 1), atol=2e-2, rtol=0)


def test_exemplar_batch_mode_owners_and_the_triplet_loss_on_known_embeddings():
    from ssgen.step import Batch, Progress
    from ssgen.tasks.exemplar import batch_hard_triplet

    task = exemplar(mode="batch", copies=3)
    inputs = task.inputs(Batch.unlabelled(torch.rand(5, 3, 32, 32) * 2 - 1), Progress())
    assert inputs.images[0].shape[0] == 15 and inputs.targets.tolist() == list(range(5)) * 3
    owners = torch.tensor([0, 0, 1, 1])
    apart = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # copies together, images apart
    loss, matched = batch_hard_triplet(apart, owners, margin=0.5)
    assert loss.item() == 0.0 and matched.item() == 1.0
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])  # each copy nearer another image
    loss, matched = batch_hard_triplet(mixed, owners, margin=0.5)
    assert loss.item() == pytest.approx(2 ** 0.5 + 0.5) and matched.item() == 0.0
