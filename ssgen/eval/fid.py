"""FID and FD: Frechet distances between real and generated images in a feature space.

Features come from torch-fidelity extractors: its `inception-v3-compat` (reported as FID) or any
TorchScript file the user names (uint8 [B,3,H,W] -> [B,D]; reported as FD(<file stem>)).
Statistics and the distance are computed here in float64, because torch-fidelity's own cache
is keyed by name only and ignores the data's content: reference statistics are cached on disk
under a key of everything that determines them.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable
from pathlib import Path

import numpy as np
import torch

from ssgen.console import ProgressReport
from ssgen.errors import ConfigError, SsgenError
from ssgen.files import atomic_write, stat_identity
from ssgen.data.base import seeded_subset
from ssgen.images import to_uint8
from ssgen.registry import EXTRACTORS
from ssgen.parallel import all_ranks, gather_rows, near_equal_sizes, shard, world
from ssgen.precision import autocast, inference_batches, recorded

INCEPTION = "inception-v3-compat"
AUTO = "auto"  # eval.fid.extractor chosen by the data (configured_extractor)
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 "weights-inception-2015-12-05-6726825d.pth")
DOWNLOAD_TIMEOUT_S = 10
TORCHSCRIPT = "ssgen-torchscript"  # the one torch-fidelity registration for every TorchScript file


class InceptionWeightsMissing(SsgenError):
    """Inception weights are neither given, cached, nor downloadable (offline machines)."""


def cache_dir() -> Path:
    return Path(os.environ.get("SSGEN_CACHE") or Path.home() / ".cache" / "ssgen") / "fid"


@lru_cache(maxsize=None)
def _sha256(path: str, identity: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, computed once per path and stat identity (inode, size, mtime, ctime):
    Inception's 90 MB take a while, and a file replaced with the same size and mtime is read again."""
    return _sha256(str(Path(path).resolve()), stat_identity(path))


# ---------------------------------------------------------------- extractors
@dataclass(frozen=True)
class Extractor:
    """A feature space: how to build it and how its distances are named."""
    name: str            # "inception-v3-compat" or a TorchScript file's stem
    tf_name: str         # torch-fidelity registry name
    feature: str         # which of the extractor's outputs
    weights: str         # the file holding the weights
    kwargs: tuple = ()   # extra constructor arguments for torch-fidelity
    domain: str = ""     # the dataset its network was trained on, where it knows one narrow domain (shapes)

    @property
    def is_inception(self) -> bool:
        return self.name == INCEPTION

    @property
    def label(self) -> str:
        return "FID" if self.is_inception else f"FD({self.name})"

    @property
    def metric_key(self) -> str:
        return "fid" if self.is_inception else f"fd/{self.name}"

    def build(self, device: torch.device, precision: str = "fp32") -> torch.nn.Module:
        """The extractor on `device`, for features computed in `precision` (precision.py)."""
        from torch_fidelity.utils import create_feature_extractor

        _register_torchscript()
        # Modules draw their initial weights (then overwritten) from the global RNG: building the
        # extractor in a run must not shift the training stream's random numbers.
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's and freeze's deprecation notices
            module = create_feature_extractor(
                self.tf_name, [self.feature], cuda=False, verbose=False, **dict(self.kwargs)).to(device)
            scripted = isinstance(getattr(module, "net", None), torch.jit.ScriptModule)
            if device.type == "cpu" and scripted and precision == "fp32":
                # A TorchScript file on the CPU: frozen (weights as constants, batch norm folded
                # into the convolutions) and laid out for oneDNN: 1.2x faster on the CIFAR-10 FD
                # extractor, its features equal to 1e-6 relative (docs/performance.md). After the
                # move: a frozen module's constants do not follow .to(). Not for bf16: autocast
                # does not reach into a frozen graph, which would compute in fp32.
                module.net = torch.jit.optimize_for_inference(torch.jit.freeze(module.net.eval()))
        return module


def inception_cache_file() -> Path:
    """Where torch hub (and so torch-fidelity) looks for Inception's weights before downloading them."""
    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_URL.rsplit("/", 1)[1]


def offline_choices() -> str:
    """The ways to a distance without Inception's download, for the error that says it failed."""
    offline = ", ".join(name for name in EXTRACTORS.names() if name != INCEPTION)
    return (f"copy {INCEPTION_URL} (fetched on a machine with internet) to {inception_cache_file()}, or give it as "
            f"eval.fid.weights=FILE (ssgen fid --weights FILE); or measure an FD offline (not comparable with "
            f"FID): eval.fid.extractor={offline} (--extractor; the packaged classifier of the embedded shapes, "
            f"meaningful for shapes-like images only), or a TorchScript feature extractor file "
            f"(uint8 [B,3,H,W] -> [B,D]) trained on images like yours: eval.fid.extractor=FILE.pt")


def _inception_weights_file(weights: str) -> str:
    """A local Inception weights file: the one given, torch hub's cached copy, or one download try."""
    if weights:
        if not Path(weights).is_file():
            raise InceptionWeightsMissing(f"Inception weights file {weights!r} does not exist; {offline_choices()}")
        return weights
    cached = inception_cache_file()
    if cached.is_file():
        return str(cached)
    cached.parent.mkdir(parents=True, exist_ok=True)
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # an offline machine must not hang here
    try:
        torch.hub.download_url_to_file(INCEPTION_URL, str(cached), progress=False)
    except Exception as err:  # no network, proxy, timeout: all mean "not available here"
        reason = f"{type(err).__name__}: {str(err).splitlines()[0][:80]}" if str(err) else type(err).__name__
        raise InceptionWeightsMissing(f"Inception weights for FID are not cached and cannot be downloaded "
                                      f"({reason}); {offline_choices()}") from None
    finally:
        socket.setdefaulttimeout(previous)
    return str(cached)


@EXTRACTORS.register(INCEPTION)
def inception_extractor(weights: str) -> Extractor:
    path = _inception_weights_file(weights)
    return Extractor(INCEPTION, INCEPTION, "2048", path, (("feature_extractor_weights_path", path),))


def torchscript_extractor(path: str) -> Extractor:
    return Extractor(Path(path).stem, TORCHSCRIPT, "features", str(Path(path).resolve()),
                     (("torchscript_path", str(Path(path).resolve())),))


def measurement_warnings(extractor: Extractor, images, num_fake: int) -> list[str]:
    """What to know before trusting a distance of `num_fake` samples against `images` in this space."""
    lines = [domain_warning(extractor, images), size_note(num_fake, min(num_fake, len(images)))]
    return [line for line in lines if line]


def domain_warning(extractor: Extractor, images) -> str | None:
    """A warning where the extractor's network was trained on one narrow domain (the shapes glyphs)
    and the real images are not from it: its features then describe the images poorly, and the
    distance says little about them."""
    if not extractor.domain or images.name == extractor.domain:
        return None
    return (f"warning: {extractor.label}'s network was trained on the {extractor.domain} data alone, not on images "
            f"like {images.name}; its distances say little about them. For other images use Inception (FID), "
            "or a TorchScript extractor trained on images like them (--extractor FILE.pt)")


SMALL_REAL_RATIO = 10  # real images fewer than samples / this: the real statistics are the weak side


def size_note(num_fake: int, num_real: int) -> str | None:
    """A note where the real images are far fewer than the samples: the distance's error is then the
    real statistics' (a covariance from few images), which more samples do not lower, and its bias
    depends on both counts, so it compares only with figures of the same counts."""
    if num_real * SMALL_REAL_RATIO >= num_fake:
        return None
    return (f"note: {num_real:,} real images against {num_fake:,} samples: the real statistics limit the estimate "
            f"(more samples do not make it better), and a Frechet distance's bias depends on both counts: compare "
            f"it only with figures of the same counts ({num_fake:,} samples, {num_real:,} real)")


def configured_extractor(cfg) -> str:
    """The run's eval.fid.extractor, with `auto` chosen by its data: the embedded shapes are measured
    by the classifier shipped for them (FD(shapes), offline), anything else by Inception (FID)."""
    if cfg.eval.fid.extractor != AUTO:
        return cfg.eval.fid.extractor
    return "shapes" if cfg.data.name == "shapes" else INCEPTION


def resolve_extractor(name_or_path: str, weights: str = "") -> Extractor:
    """A registered extractor name, or a TorchScript file path; unknown names are ConfigErrors."""
    if name_or_path == AUTO:
        raise ValueError("resolve the run's extractor with configured_extractor(cfg) first")
    if name_or_path in EXTRACTORS:
        return EXTRACTORS.get(name_or_path)(weights)
    if Path(name_or_path).is_file():
        return torchscript_extractor(name_or_path)
    raise ConfigError(f"eval.fid.extractor: {name_or_path!r} is neither a registered extractor "
                      f"({', '.join(EXTRACTORS.names())}) nor an existing TorchScript file")


def register_features_module(tf_name: str, load: Callable[..., torch.nn.Module]) -> None:
    """Register with torch-fidelity, once, the extractor `tf_name` whose one output, "features",
    is `load(**its keyword arguments)` applied to uint8 [B,3,H,W] images: float [B,D]."""
    from torch_fidelity import register_feature_extractor
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    if tf_name in FEATURE_EXTRACTORS_REGISTRY:
        return

    class FeaturesModule(FeatureExtractorBase):
        def __init__(self, name, features_list, **kwargs):
            super().__init__(name, features_list)
            self.net = load(**kwargs)

        @staticmethod
        def get_provided_features_list():
            return ("features",)

        @staticmethod
        def can_be_compiled():
            return False

        def forward(self, x):
            return (self.net(x),)

    register_feature_extractor(tf_name, FeaturesModule)


def _register_torchscript() -> None:
    """A user-named TorchScript file: uint8 [B,3,H,W] -> float [B,D]."""
    register_features_module(TORCHSCRIPT, lambda torchscript_path=None, **_: torch.jit.load(torchscript_path,
                                                                                          map_location="cpu"))


# ---------------------------------------------------------------- statistics and distance
class RunningStats:
    """Mean and covariance of feature batches, accumulated in float64 around a shift (the first
    batch's mean) so that E[xx^T] - mu mu^T does not cancel catastrophically."""

    def __init__(self):
        self.count, self.shift, self.total, self.outer = 0, None, None, None

    def update(self, features: torch.Tensor) -> None:
        x = features.detach().to(torch.float64)
        if self.shift is None:
            self.shift = x.mean(0)
            self.total = torch.zeros_like(self.shift)
            self.outer = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
        x = x - self.shift
        self.count += x.shape[0]
        self.total += x.sum(0)
        self.outer.addmm_(x.T, x)

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu [D], sigma [D,D]) as float64 numpy; sigma is the unbiased sample covariance."""
        if self.count < 2:
            raise SsgenError(f"FID needs at least 2 images, got {self.count}")
        mean = self.total / self.count
        sigma = (self.outer - self.count * torch.outer(mean, mean)) / (self.count - 1)
        return (mean + self.shift).cpu().numpy(), sigma.cpu().numpy()


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^1/2), float64.

    tr (S1 S2)^1/2 = sum sqrt(eig(A S2 A)) with A = S1^1/2: a symmetric PSD eigenproblem, which is
    stable where sqrtm of the non-symmetric S1 S2 is not (e.g. rank-deficient S when N < D).
    Computed by torch on the CPU, not numpy: torch keeps to the threads the run was given
    (trainer.threads), where numpy's BLAS starts one per core and, on a busy 2-core machine,
    took 8-13 s instead of 0.25 s for 512 dimensions (docs/performance.md)."""
    mu1, sigma1, mu2, sigma2 = (torch.as_tensor(np.asarray(a, np.float64)) for a in (mu1, sigma1, mu2, sigma2))
    vals, vecs = torch.linalg.eigh(sigma1)
    root1 = (vecs * vals.clamp_min(0).sqrt()) @ vecs.T
    inner = root1 @ sigma2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((inner + inner.T) / 2).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt)


@torch.no_grad()
def extract(net: torch.nn.Module, batches, device: torch.device,
            sizes: list[int] | None = None, precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """Statistics of the features of an iterable of uint8 image batches, computed in `precision`
    (the statistics themselves in float64).

    Under torchrun `batches` are this process's share (`shard` of the batch list) and `sizes`
    the sizes of all the batches: the features are gathered and accumulated batch by batch in
    the one-process order, so the statistics are the one-process statistics."""
    def features(images: torch.Tensor) -> torch.Tensor:
        with autocast(precision, device):
            return torch.cat([net(part.to(device, non_blocking=True))[0].float()
                              for part in inference_batches(images, len(images), device)])

    stats = RunningStats()
    if world().size == 1:
        for images in batches:
            stats.update(features(images))
        return stats.finish()
    mine = [features(images) for images in batches]
    rows = gather_rows(torch.cat(mine) if mine else torch.empty(0, 0, device=device))
    for part in rows.split(sizes or [len(rows)]):
        stats.update(part)
    return stats.finish()


# ---------------------------------------------------------------- real and fake sides
def reference_key(images, num_real: int, extractor: Extractor, precision: str = "fp32") -> str:
    # fp32 adds no key, so that the statistics cached before precisions were keyed are found again.
    parts = {"data": images.fingerprint(), "split": images.split, "resolution": images.resolution,
             "num_real": num_real, "extractor": extractor.name, "feature": extractor.feature,
             "weights_sha256": file_sha256(extractor.weights), **recorded(precision)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def reference_stats(images, num_real: int, extractor: Extractor, net_for, device: torch.device,
                    batch_size: int, log=None, precision: str = "fp32") -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of the real images' features in `precision`, from the disk cache or computed and
    cached. `net_for()` builds the extractor network only when the statistics must be computed."""
    num_real = min(num_real, len(images))
    path = cache_dir() / f"{reference_key(images, num_real, extractor, precision)}.npz"
    if all_ranks(path.is_file()):  # under torchrun, all read it or all compute it together
        with np.load(path, allow_pickle=False) as saved:
            return saved["mu"], saved["sigma"]
    chunks = seeded_subset(len(images), num_real).split(batch_size)
    mine = chunks[shard(len(chunks))]  # this process's share
    batches = (images.get(chunk)[0] for chunk in mine)
    if log is not None:
        batches = ProgressReport(num_real, f"{extractor.label} real images", log, every=max(1, num_real // 10),
                                 unit="images").wrap(batches, map(len, mine))
    mu, sigma = extract(net_for(), batches, device, [len(chunk) for chunk in chunks], precision)
    if world().rank != 0:
        return mu, sigma
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez(f, mu=mu, sigma=sigma))  # parallel runs may race to write it
    return mu, sigma


def fake_batches(method, num_fake: int, batch_size: int, seed: int, precision: str = "fp32"):
    """uint8 samples from the method, generated in `precision`, drawn batch by batch from one
    seeded generator. Under torchrun, this process's share of the batches: the others' latents
    are drawn and skipped, so each batch is the one a single process would sample."""
    generator = torch.Generator().manual_seed(seed)
    sizes = near_equal_sizes(num_fake, batch_size)
    mine = shard(len(sizes))
    device = next((p.device for p in method.parameters()), torch.device("cpu"))
    for i, size in enumerate(sizes[: mine.stop]):
        if i < mine.start:
            method.skip_samples(size, generator)
        else:
            with autocast(precision, device):
                samples = method.sample(size, generator)
            yield to_uint8(samples)


class FrechetDistance:
    """FID/FD of a method's samples against one real image set; real statistics built once, lazily."""

    def __init__(self, images, extractor: Extractor, device: torch.device, num_fake: int,
                 num_real: int | None = None, batch_size: int = 250, seed: int = 0, log=None,
                 precision: str = "fp32"):
        """`log`: where to report progress on long work (ssgen fid); None: silent (training).
        `precision`: of the sampling and of the extractor's features, real and fake alike."""
        self.images, self.extractor, self.device, self.log = images, extractor, device, log
        self.num_fake, self.batch_size, self.seed, self.precision = num_fake, batch_size, seed, precision
        self.num_real = min(num_real or num_fake, len(images))
        self._net = None
        self._reference = None

    def net(self) -> torch.nn.Module:
        if self._net is None:
            self._net = self.extractor.build(self.device, self.precision)
        return self._net

    @property
    def protocol(self) -> dict:
        return {"metric": self.extractor.label, "num_fake": self.num_fake, "num_real": self.num_real,
                "split": self.images.split, "dataset": self.images.name, "extractor": self.extractor.name,
                "weights": f"{Path(self.extractor.weights).name} sha256:{file_sha256(self.extractor.weights)[:16]}",
                **recorded(self.precision)}

    def reference(self) -> tuple[np.ndarray, np.ndarray]:
        if self._reference is None:
            self._reference = reference_stats(self.images, self.num_real, self.extractor, self.net,
                                              self.device, self.batch_size, self.log, self.precision)
        return self._reference

    def __call__(self, method) -> float:
        """The distance. Under torchrun every process samples its share; the main process alone
        computes the distance (the others return nan)."""
        mu_real, sigma_real = self.reference()
        sizes = near_equal_sizes(self.num_fake, self.batch_size)
        fakes = fake_batches(method, self.num_fake, self.batch_size, self.seed, self.precision)
        if self.log is not None:
            fakes = ProgressReport(self.num_fake, f"{self.extractor.label} samples", self.log, unit="images",
                                   every=max(1, self.num_fake // 10)).wrap(fakes, sizes[shard(len(sizes))])
        mu, sigma = extract(self.net(), fakes, self.device, sizes, self.precision)
        if world().rank != 0:
            return float("nan")
        return frechet_distance(mu, sigma, mu_real, sigma_real)
