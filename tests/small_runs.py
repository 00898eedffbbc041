"""The small configs that end-to-end tests train, in one place: the shipped configs with tiny
networks and data, so a test run takes seconds; and the helpers those tests share to train, read
a run's last checkpoint and check an error line."""

from pathlib import Path

from ssgen.checkpoint import list_checkpoints, read_checkpoint

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUICK = CONFIGS / "quick.yaml"
ROTNET = CONFIGS / "rotnet_shapes.yaml"

SMALL_GAN = ["method.generator.width=16", "method.discriminator.width=16", "method.generator.z_dim=16"]
TINY_GAN = ["method.generator.width=8", "method.discriminator.width=8", "method.generator.z_dim=8"]
# Few images, one D step, no evaluations, one thread, small grids: seconds per run.
TINY_RUN = ["data.train_size=64", "data.test_size=16", "trainer.batch_size=8", "method.n_dis=1",
            "eval.fid.every=0", "eval.probe.every=0", "eval.tasks.every=0", "trainer.threads=1",
            "trainer.num_grid_images=4", "trainer.sample_every=1000"]
TINY = [*TINY_GAN, *TINY_RUN]  # for configs/quick.yaml
# A little more data and a wider net: for tests whose figures (losses, probes) should mean something.
SMALL = [*SMALL_GAN, "data.train_size=256", "data.test_size=64", "trainer.batch_size=16", "method.n_dis=1",
         "eval.fid.every=0", "eval.probe.every=0", "eval.tasks.every=0"]


def set_options(overrides) -> list[str]:
    """`--set` before each override, as `ssgen train` takes them."""
    return [arg for override in overrides for arg in ("--set", str(override))]


def quiet_train(cfg, **kwargs):
    """trainer.train (resume=..., stop=...) with no progress bar and no log lines."""
    from ssgen.train.trainer import train

    return train(cfg, bar=False, log=lambda message: None, **kwargs)


def last_checkpoint(run_dir) -> dict:
    """The newest step checkpoint of a run: its "step", its "method" weights ..."""
    return read_checkpoint(list_checkpoints(run_dir)[-1])


def final_weights(run_dir) -> dict:
    return last_checkpoint(run_dir)["method"]


def assert_error_line(code, err, *fragments):
    """How ssgen refuses an input: exit status 2, no traceback, and one `error: ...` line, the
    last on stderr, holding every fragment; before it only what the run logged on its way."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("error: "), err
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], err
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])
