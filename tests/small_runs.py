"""The small configs that end-to-end tests train, in one place: the shipped configs with tiny
networks and data, so a test run takes seconds."""

from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
QUICK = CONFIGS / "quick.yaml"
ROTNET = CONFIGS / "rotnet_shapes.yaml"

SMALL_GAN = ["method.generator.width=16", "method.discriminator.width=16", "method.generator.z_dim=16"]
TINY_GAN = ["method.generator.width=8", "method.discriminator.width=8", "method.generator.z_dim=8"]
# Few images, one D step, no evaluations, one thread, small grids: seconds per run.
TINY_RUN = ["data.train_size=64", "data.test_size=16", "trainer.batch_size=8", "method.n_dis=1",
            "eval.fid.every=0", "eval.probe.every=0", "eval.tasks.every=0", "trainer.threads=1", "trainer.num_grid_images=4",
            "trainer.sample_every=1000"]
TINY = [*TINY_GAN, *TINY_RUN]  # for configs/quick.yaml
# A little more data and a wider net: for tests whose figures (losses, probes) should mean something.
SMALL = [*SMALL_GAN, "data.train_size=256", "data.test_size=64", "trainer.batch_size=16", "method.n_dis=1",
         "eval.fid.every=0", "eval.probe.every=0", "eval.tasks.every=0"]
