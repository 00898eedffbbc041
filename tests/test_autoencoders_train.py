"""Each autoencoder config through the trainer end to end on CPU."""

from pathlib import Path

import pytest

from ssgen.config import load_config
from ssgen.rebuild import build_method

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
METHOD_NAMES = ["denoising", "context", "split_brain", "colorization"]
FAST = ["trainer.steps=3", "trainer.batch_size=4", "trainer.log_every=1", "trainer.sample_every=3",
        "trainer.checkpoint_every=3", "method.encoder.width=8", "method.decoder.width=8",
        "data.train_size=64", "data.test_size=32", "eval.probe.every=3", "eval.probe.train_size=32",
        "eval.probe.test_size=32"]


@pytest.mark.parametrize("name", METHOD_NAMES)
@pytest.mark.parametrize("dataset", ["shapes", "cifar10"])
def test_config_loads_and_builds(name, dataset, tmp_path):
    cfg = load_config(CONFIGS / f"{name}_{dataset}.yaml", [f"run_dir={tmp_path}"])
    assert cfg.method.name == name
    method = build_method(cfg, "cpu")
    assert method.feature_layers[0] == "encoder"


@pytest.mark.parametrize("name", METHOD_NAMES)
@pytest.mark.e2e
def test_shapes_config_trains_end_to_end(name, tmp_path):
    from ssgen.eval.metrics import read_metrics
    from ssgen.checkpoint import list_checkpoints
    from small_runs import quiet_train

    cfg = load_config(CONFIGS / f"{name}_shapes.yaml", [f"run_dir={tmp_path / 'run'}", *FAST])
    run = quiet_train(cfg)
    assert [p.name for p in list_checkpoints(run)] == ["step-00000003.pt"]
    assert (run / "samples" / "output-00000003.png").exists()
    keys = set().union(*(record["metrics"] for record in read_metrics(run)))
    assert any(k.startswith("loss/") for k in keys) and "probe/encoder" in keys
