import torch

from ssgen.methods.gan import d_adversarial_loss, g_adversarial_loss


def test_hinge_losses_on_known_logits():
    real = torch.tensor([2.0, 0.5, -1.0])
    fake = torch.tensor([-2.0, 0.0, 1.0])
    # relu(1 - r) = [0, 0.5, 2] -> mean 5/6; relu(1 + f) = [0, 1, 2] -> mean 1
    assert torch.isclose(d_adversarial_loss(real, fake, "hinge"), torch.tensor(5 / 6 + 1.0))
    assert torch.isclose(g_adversarial_loss(fake, "hinge"), torch.tensor(1 / 3))


def test_non_saturating_losses_on_known_logits():
    zero = torch.zeros(4)
    log2 = torch.log(torch.tensor(2.0))
    assert torch.isclose(d_adversarial_loss(zero, zero, "ns"), 2 * log2)
    assert torch.isclose(g_adversarial_loss(zero, "ns"), log2)
    # A confident, correct D has near-zero loss; G's loss is then large.
    assert d_adversarial_loss(torch.full((4,), 20.0), torch.full((4,), -20.0), "ns") < 1e-6
    assert g_adversarial_loss(torch.full((4,), -20.0), "ns") > 19
