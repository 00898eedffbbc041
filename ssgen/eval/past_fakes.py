"""Does D still reject the fakes G made earlier? A label-free forgetting monitor for GANs (Liang et
al. 2018, "GAN training is a continual learning problem"; Thanh-Tung & Tran 2020).

Every `eval.past_fakes.every` steps the trained G (not its EMA copy: the trained G made what D
saw) turns fixed latents into a batch of fakes that is archived; the newest `keep` archives are
kept, in the checkpoint. At each evaluation the current D scores every archive, and the current G's
fresh fakes as the reference (age 0), under the names

    past_fakes/rejected_age{AGE}   the share of the fakes of step (now - AGE) that D calls fake
    past_fakes/logit_age{AGE}      D's mean critic logit on them

A logit below 0 is "fake" for both losses (hinge and non-saturating put the threshold there). A D
that forgets lets old fakes through: rejected_age{AGE} falls while rejected_age0 stays high.

The latents of step s come from a generator of their own, seeded by (seed, s), so that training's
random streams are untouched and tools/past_fakes_from_checkpoints.py draws the same ones. Fakes
are archived as uint8 images, as a sample is saved (a quarter of float32's size in every
checkpoint), and the fresh fakes are scored the same way.
"""

from __future__ import annotations

import torch

from ssgen.config import PastFakesConfig
from ssgen.eval.workload import Workload, smaller
from ssgen.images import to_float, to_uint8


def latents(method, num_images: int, seed: int, step: int) -> torch.Tensor:
    """The fixed latents of the archive of `step`."""
    return method.noise(num_images, torch.Generator().manual_seed((seed << 32) + step), torch.device("cpu"))


def fakes(method, cfg: PastFakesConfig, seed: int, step: int) -> torch.Tensor:
    """uint8 [N, 3, H, W]: the trained G's images of the latents of `step`, in train mode as in
    training (generate puts G's batch-norm statistics back)."""
    z = latents(method, cfg.num_images, seed, step)
    return to_uint8(method.generate(z.split(cfg.batch_size), network=method.G)).cpu()


@torch.no_grad()
def scores(D: torch.nn.Module, images: torch.Tensor, batch_size: int) -> tuple[float, float]:
    """(share of `images` with a logit below 0, mean logit). D has no batch-dependent layer, so its
    eval mode differs from training's only in that spectral norm's power iteration, which moves
    D's u vectors even under no_grad, stands still."""
    device = next(D.parameters()).device
    was_training = D.training
    D.eval()
    try:
        logits = torch.cat([D.score(to_float(chunk.to(device))).float() for chunk in images.split(batch_size)])
    finally:
        D.train(was_training)
    return (logits < 0).float().mean().item(), logits.mean().item()


def measure(D: torch.nn.Module, by_age: dict[int, torch.Tensor], batch_size: int) -> dict[str, float]:
    """The metrics of the fakes of each age (steps since they were made)."""
    metrics = {}
    for age, images in sorted(by_age.items()):
        metrics[f"past_fakes/rejected_age{age}"], metrics[f"past_fakes/logit_age{age}"] = \
            scores(D, images, batch_size)
    return metrics


def protocol(cfg: PastFakesConfig) -> dict:
    return {"metric": "D's verdict on archived fakes (logit < 0)", "num_images": cfg.num_images,
            "every": cfg.every}


class PastFakesEvaluator:
    name = "past_fakes"
    lower_is_better_key = None

    def __init__(self, cfg: PastFakesConfig, seed: int):
        self.cfg, self.every, self.seed = cfg, cfg.every, seed
        self.archives: dict[int, torch.Tensor] = {}  # step -> uint8 fakes, oldest first

    def workload(self) -> Workload:
        n, ages = self.cfg.num_images, len(self.archives) + 1  # the archives and the fresh fakes
        return Workload(f"D's verdict on {ages} batch(es) of {n:,} fakes from G's past", n * ages, n,
                        smaller({"eval.past_fakes.num_images": n}))

    def __call__(self, method, step: int) -> tuple[dict[str, float], dict]:
        fresh = fakes(method, self.cfg, self.seed, step)
        if step % self.every == 0:  # the run's last step, off the grid, is scored but not archived
            self.archives[step] = fresh
            for old in list(self.archives)[:-self.cfg.keep]:
                del self.archives[old]
        by_age = {step - made: images for made, images in self.archives.items()} | {0: fresh}
        return measure(method.D, by_age, self.cfg.batch_size), protocol(self.cfg)

    # The archive travels in the checkpoint: a resumed run scores the fakes the first run made.
    def state_dict(self) -> dict:
        return {"archives": dict(self.archives)}

    def load_state_dict(self, state: dict) -> None:
        self.archives = dict(sorted(state["archives"].items()))
