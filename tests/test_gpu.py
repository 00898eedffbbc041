"""The GPU training path: bf16 autocast, torch.compile, device-resident data. Run where a GPU is:
python -m pytest -q -m gpu  (deselected by default, skipped without CUDA)."""


import pytest
import torch

from ssgen.config import load_config
from ssgen.eval.metrics import read_metrics
from ssgen.step import DataInfo
from ssgen.methods.ssgan import SSGAN
from small_runs import QUICK, quiet_train

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize("compile", [False, True])
@pytest.mark.e2e
def test_quick_config_trains_on_the_gpu(tmp_path, compile):
    cfg = load_config(QUICK, [f"run_dir={tmp_path / 'run'}", "trainer.device=cuda", "trainer.steps=20",
                              "trainer.log_every=10", f"trainer.compile={str(compile).lower()}",
                              "eval.probe.every=20", "eval.probe.train_size=500", "eval.probe.test_size=200",
                              "eval.fid.every=0"])
    run = quiet_train(cfg)
    records = read_metrics(run)
    losses = [v for r in records for k, v in r["metrics"].items() if k.startswith("loss/")]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    assert any("probe/penultimate" in r["metrics"] for r in records)
    assert (run / "checkpoints" / "step-00000020.pt").exists()


def test_bf16_losses_match_fp32_within_bf16_tolerance():
    """The same weights and images through SS-GAN's losses with and without bf16 autocast. (After an
    update the two would part: Adam's first step moves every weight by about lr whatever the
    gradient's size, so bf16 rounding of tiny gradients changes the direction of some.)"""
    cfg = load_config(None, ["method.name=ssgan", "method.generator.width=64", "method.discriminator.width=64"])
    torch.manual_seed(0)
    method = SSGAN(cfg.method, DataInfo(resolution=32)).cuda().eval()  # eval: no power-iteration update
    real = torch.rand(32, 3, 32, 32, device="cuda") * 2 - 1
    with torch.no_grad():
        fake = method.G(torch.randn(32, method.G.z_dim, device="cuda"))

    def losses(autocast):
        with torch.no_grad(), torch.autocast("cuda", torch.bfloat16, enabled=autocast):
            d = method.d_loss(real, fake)[1]
            g = method.g_loss(fake)[1]
        return {k: float(v) for k, v in {**d, **g}.items()}

    exact, bf16 = losses(False), losses(True)
    for key in ("loss/d", "loss/d_gan", "loss/d_rotation", "loss/g", "loss/g_rotation"):
        assert bf16[key] == pytest.approx(exact[key], rel=2e-2, abs=1e-2), key
