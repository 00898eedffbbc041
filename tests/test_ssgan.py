import pytest
import torch

from ssgen.config import load_config
from ssgen.errors import ConfigError
from ssgen.step import DataInfo
from ssgen.methods.gan import GAN
from ssgen.methods.ssgan import SSGAN
from ssgen.data import build_dataset

from small_runs import SMALL_GAN as TINY


def tiny(name, *overrides, cls=None):
    cfg = load_config(None, [f"method.name={name}", *TINY, *overrides])
    torch.manual_seed(0)
    return (cls or {"gan": GAN, "ssgan": SSGAN}[name])(cfg.method, DataInfo(resolution=32))


def shapes_batch(n=16):
    cfg = load_config(None, [f"data.train_size={n}"])
    images, _ = build_dataset(cfg.data, "train").get(slice(0, n))
    return images.float() / 127.5 - 1


def test_rotation_weights_zero_give_the_plain_gan_losses():
    ss = tiny("ssgan", "method.beta=0", "method.alpha=0")
    gan = tiny("gan")
    gan.load_state_dict({k: v for k, v in ss.state_dict().items() if not k.startswith("tasks.")})
    real, fake = torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)
    ss.eval(), gan.eval()  # spectral norm without a power-iteration update: same weights both sides
    assert torch.allclose(ss.d_loss(real, fake)[0], gan.d_loss(real, fake)[0], atol=1e-5)
    assert torch.allclose(ss.g_loss(fake)[0], gan.g_loss(fake)[0], atol=1e-5)


def test_losses_add_the_weighted_rotation_terms():
    from ssgen.pretext.rotation import rotate4
    ss = tiny("ssgan", "method.beta=2.0", "method.alpha=0.5").eval()
    real, fake = torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)
    d, d_logs = ss.d_loss(real, fake)
    assert torch.allclose(d, d_logs["loss/d_gan"] + 2.0 * d_logs["loss/d_rotation"], atol=1e-5)
    g, g_logs = ss.g_loss(fake)
    assert torch.allclose(g, g_logs["loss/g_gan"] + 0.5 * g_logs["loss/g_rotation"], atol=1e-5)
    # The logged accuracy is the head's on the rotated quarter of the real batch, 4 x 2 images.
    rotated, labels = rotate4(real[:2])
    read = (ss.rotation_head(ss.D(rotated)).argmax(1) == labels).float().mean()
    assert float(d_logs["rotation/acc_real"]) == pytest.approx(float(read))


@pytest.mark.parametrize("fraction", [0.25, 1.0])
def test_the_0_degree_rotations_reuse_the_batch_features_and_give_the_same_losses(fraction):
    """A rotation by 0 degrees is the image itself, which D encodes anyway: D encodes each image
    once, and the rotation losses and their gradients are those of encoding all four rotations."""
    from ssgen.losses.adversarial import d_adversarial_loss
    from ssgen.losses.classification import cross_entropy_with_accuracy
    from ssgen.pretext.rotation import rotate4
    ss = tiny("ssgan", f"method.rotation_fraction={fraction}").eval()
    real, fake = torch.randn(8, 3, 32, 32), torch.randn(8, 3, 32, 32)
    n = round(8 * fraction)
    rows = []
    hook = ss.D.register_forward_hook(lambda module, args, out: rows.append(len(args[0])))
    d_loss, d_logs = ss.d_loss(real, fake)
    g_loss, g_logs = ss.g_loss(fake)
    hook.remove()
    assert rows == [8 + 8 + 3 * n, 8 + 3 * n]  # not 4 * n: the 0-degree views are the batch's rows

    (task,) = ss.tasks
    for images, logged in ((real, d_logs["loss/d_rotation"]), (fake, g_logs["loss/g_rotation"])):
        rotated, labels = rotate4(images[:n])
        expected, _ = cross_entropy_with_accuracy(task.head(ss.D(rotated)), labels)
        torch.testing.assert_close(logged, expected.detach(), rtol=1e-5, atol=1e-6)
    # D's gradient: the reused features carry the rotation term's share as well as the critic's.
    weights = list(ss.D.parameters())
    reused = torch.autograd.grad(ss.d_loss(real, fake)[0], weights)
    rotated, labels = rotate4(real[:n])
    logits = ss.D.critic(ss.D(torch.cat([real, fake]))).squeeze(1)
    rotation, _ = cross_entropy_with_accuracy(task.head(ss.D(rotated)), labels)
    by_hand = d_adversarial_loss(*logits.chunk(2), ss.cfg.loss) + task.cfg.d_weight * rotation
    for a, b in zip(reused, torch.autograd.grad(by_hand, weights)):  # sums in another order: round-off
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))


def test_a_few_steps_lower_the_rotation_loss():
    ss = tiny("ssgan", "method.n_dis=1", "method.rotation_fraction=1.0", "method.d_optim.lr=1e-3")
    batch = shapes_batch(16)
    losses = [float(ss.train_step(lambda: batch)["loss/d_rotation"]) for _ in range(25)]
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3, losses


def test_features_are_d_layers():
    ss = tiny("ssgan")
    feats = ss.features(torch.randn(4, 3, 32, 32), ["penultimate", ss.D.block_names[0]])
    assert feats["penultimate"].shape == (4, ss.D.feature_dim)
    with pytest.raises(ConfigError, match="unknown feature layer 'conv9'"):
        ss.features(torch.randn(2, 3, 32, 32), ["conv9"])


def test_ema_generator_follows_g_and_is_sampled():
    ss = tiny("ssgan", "method.ema_decay=0.5", "method.n_dis=1")
    ss.train_step(lambda: torch.randn(8, 3, 32, 32))
    ema, live = next(ss.G_ema.parameters()), next(ss.G.parameters())
    assert not torch.equal(ema, live)
    samples = ss.sample(257, torch.Generator().manual_seed(0))  # 257: chunks never of size one
    assert samples.shape == (257, 3, 32, 32) and samples.abs().max() <= 1
