"""Typed config: dataclasses <- YAML file <- `--set a.b=c` overrides.

Unknown keys, wrong types, out-of-range values and unknown names are ConfigErrors that name
the key and what was valid, raised before any compute. Sections whose kind is chosen
by name (the method, each task, each network) take the options dataclass that their registry
entry declares, so each method, task or network declares its own options; the registries import
the packages that fill them, so this module imports no method.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml

from ssgen.errors import ConfigError
from ssgen.registry import ENCODERS, METHODS, OPTIMIZERS, SCHEDULES, Registry


# ---------------------------------------------------------------- field helpers
def choice(default: str, *options: str) -> Any:
    """A string field that must be one of `options` (default first or among them)."""
    assert default in options
    return field(default=default, metadata={"choices": options})


def choice_or_bool(default: str, options: tuple[str, ...], aliases: dict[bool, str]) -> Any:
    """A choice field that also reads true/false, as the field's older boolean form wrote it."""
    assert default in options and set(aliases.values()) <= set(options)
    return field(default=default, metadata={"choices": options, "aliases": aliases})


def bounded(default: Any, *, minimum: float | None = None, above: float | None = None,
            maximum: float | None = None) -> Any:
    """A number field with its default and bounds: at least `minimum` (or more than `above`), at
    most `maximum`."""
    assert minimum is None or above is None, "one lower bound"
    return field(default=default, metadata={"minimum": minimum, "above": above, "maximum": maximum})


def same_as(section: type, name: str) -> Any:
    """The field `name` of dataclass `section`, its default and checks, under another name
    elsewhere (SS-GAN's beta is its rotation task's d_weight): stated once, in `section`."""
    source = next(f for f in dataclasses.fields(section) if f.name == name)
    return field(default=source.default, default_factory=source.default_factory, metadata=source.metadata)


def named(registry: Registry, default: str) -> Any:
    """A string field that must name an entry of `registry` (optimizers, schedules ...)."""
    return field(default=default, metadata={"names": registry})


def by_name(registry: Registry, default_factory: Any) -> Any:
    """A section (or a list of sections) whose dataclass is the one that the registry entry
    named by its `name` key declares: each method, task or network brings its own options."""
    return field(default_factory=default_factory, metadata={"registry": registry})


def path_field(default: str = "") -> Any:
    """A file or directory path: made absolute when a run saves its config (with_absolute_paths),
    so that the run resumes from any working directory."""
    return field(default=default, metadata={"path": True})


# ---------------------------------------------------------------- sections
@dataclass
class DataConfig:
    name: str = "shapes"           # dataset registry name: shapes, folder, cifar10, cifar100, stl10
    path: str = ""                 # folder or .zip for `folder`; download/cache root for torchvision sets
    resolution: int = bounded(32, minimum=8)
    train_size: int = bounded(0, minimum=0)  # 0: the dataset's full train split (shapes: its default size)
    test_size: int = bounded(0, minimum=0)  # 0: the full test split
    flip: bool = True              # random horizontal flips while training
    device_resident: str = choice("auto", "auto", "yes", "no")  # hold uint8 images on the device
    workers: int = bounded(2, minimum=0)  # DataLoader workers when streaming
    download: bool = False         # torchvision sets: allow a download into `path`
    # folder/zip: keep a decoded uint8 copy in $SSGEN_CACHE/decoded (default ~/.cache/ssgen) and read it
    # on the next run or resume instead of decoding again; false: decode every time, write nothing.
    cache: bool = True
    seed: int = 0                  # procedural data (shapes), subset and holdout selection
    # A folder with no test split beside it: the share of each class held out (seeded by `seed`)
    # as the test split of the probe and FD, never trained on; 0: hold nothing out.
    holdout: float = bounded(0.1, minimum=0.0, maximum=0.5)
    # Labels kept for training (semi-supervised methods, fine-tuning): a count in all (4000: CIFAR-10's
    # 400 a class) or a share of each class (0.1); the rest of the train split is unlabelled. 0: all.
    labels: float = bounded(0.0, minimum=0.0)


@dataclass
class NetConfig:
    """Options every network takes; a network with more options registers a subclass (a
    generator's latent: GeneratorConfig, nets/base.py)."""
    name: str = "resnet"           # registry name (generator / discriminator / encoder / decoder)
    width: int = bounded(128, minimum=1)  # channels of the residual/conv blocks
    spectral_norm: bool = True     # spectral norm in D / encoders that use it
    # Keys that every network section held in configs saved before GeneratorConfig, though only a
    # generator read them: a saved run's config (config_from_dict) drops them where a network has
    # no such option, so that today's run directories resume with the meaning they had.
    retired_keys: ClassVar[tuple[str, ...]] = ("z_dim", "sbn")


def net(registry: Registry = ENCODERS, **defaults) -> Any:
    """A network section chosen by name from `registry`, with these defaults, in the options class
    of the entry it names by default (a generator's GeneratorConfig)."""
    def default() -> NetConfig:
        return registry.config_class(defaults.get("name", NetConfig.name), default=NetConfig)(**defaults)
    return by_name(registry, default)


@dataclass
class OptimConfig:
    """One optimizer and its learning-rate schedule (ssgen/optim.py)."""
    name: str = named(OPTIMIZERS, "adam")   # adam, adamw, sgd, lars
    lr: float = bounded(2e-4, above=0.0)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam, adamw: Adam's own (a GAN's: 0.0, 0.9)
    momentum: float = bounded(0.9, minimum=0.0, maximum=1.0)  # sgd, lars
    nesterov: bool = False                       # sgd, lars
    weight_decay: float = bounded(0.0, minimum=0.0)
    decay_norms_and_biases: bool = False         # false: 1-d tensors get no weight decay (nor LARS scaling)
    trust: float = bounded(1e-3, above=0.0)  # lars: the trust coefficient
    schedule: str = named(SCHEDULES, "linear")   # linear (to 0), cosine (to 0), constant
    warmup_steps: int = bounded(0, minimum=0)    # linear warm-up before the schedule


@dataclass
class MethodConfig:
    """Base of every method's options; each method subclasses it with its own fields."""
    name: str = "ssgan"


COMPILE_MODES = ("eager", "modules", "step")


@dataclass
class TrainerConfig:
    steps: int = bounded(1000, minimum=1)   # method steps (a GAN step = n_dis D steps + 1 G step)
    batch_size: int = bounded(64, minimum=1)
    device: str = "auto"                    # auto (cuda if available), cpu, cuda, cuda:N
    # auto: bf16 autocast on a GPU and on a CPU with bf16 matrix units (AMX), fp32 on other CPUs;
    # config.yaml records the choice, and a resume goes on in it.
    precision: str = choice("auto", "auto", "fp32", "bf16")
    # eager; modules: torch.compile each network; step: each whole train step (forward, backward,
    # optimizer update, EMA) compiled as one graph, with CUDA graphs on a GPU. true/false, the
    # older boolean form, mean modules/eager. Eager is the default everywhere: compiling a step
    # takes minutes on a CPU, more than a short run gains (docs/performance.md).
    compile: str = choice_or_bool("eager", COMPILE_MODES, {True: "modules", False: "eager"})
    # The networks' weights (and so their activations) in channels_last memory: auto is
    # channels_last on a CPU, where oneDNN's convolutions run faster that way, and contiguous on a
    # GPU, where it is not measured yet (docs/performance.md).
    memory_format: str = choice("auto", "auto", "contiguous", "channels_last")
    log_every: int = bounded(50, minimum=1)
    sample_every: int = bounded(500, minimum=1)
    checkpoint_every: int = bounded(500, minimum=1)
    keep_checkpoints: int = bounded(3, minimum=1)
    num_grid_images: int = bounded(64, minimum=1)
    deterministic: bool = False             # torch.use_deterministic_algorithms: bitwise resume on CPU
    nonfinite: str = choice("stop", "stop", "skip")  # on a NaN/inf loss: stop, or skip the step
    # CPU threads for torch; 0: auto, the physical cores less those busy with other work at the
    # start (ssgen/threads.py). A run-time setting, not the recipe's: --resume may change it.
    threads: int = bounded(0, minimum=0)


@dataclass
class FIDConfig:
    every: int = bounded(0, minimum=0)      # steps between evaluations; 0: off
    num_samples: int = bounded(10000, minimum=2)
    extractor: str = "auto"  # auto: shapes for the shapes data, else inception-v3-compat; or a TorchScript file
    weights: str = ""                       # local Inception weights file (offline)
    split: str = choice("train", "train", "test")
    batch_size: int = bounded(250, minimum=1)
    # Sampling and the extractor's features: auto is trainer.precision's (a bf16 run is measured in
    # bf16 autocast, at its speed; an fp32 run in fp32); bf16 moves FD-10k of CIFAR-10 by less than
    # its sample noise (docs/performance.md). Recorded in the protocol where it is bf16.
    precision: str = choice("auto", "auto", "fp32", "bf16")


@dataclass
class FrozenFeaturesConfig:
    """What the two monitors of frozen features, the linear probe and kNN, both read: which layers,
    on how many labelled images, how often. One evaluator serves both (eval/__init__.py)."""
    every: int = bounded(0, minimum=0)      # steps between evaluations; 0: off
    layers: list[str] = field(default_factory=list)  # empty: the method's default feature layer
    train_size: int = bounded(10000, minimum=1)  # labelled training images (the probe's fit, kNN's neighbours)
    test_size: int = bounded(10000, minimum=1)
    batch_size: int = bounded(500, minimum=1)  # feature extraction batch


@dataclass
class ProbeConfig(FrozenFeaturesConfig):
    """The linear probe (eval/probe.py): a logistic regression fit on frozen features."""
    # A fit on fewer than 10 images measures nothing: the probe's floor is higher than kNN's.
    train_size: int = bounded(FrozenFeaturesConfig.train_size, minimum=10)
    test_size: int = bounded(FrozenFeaturesConfig.test_size, minimum=10)
    # The fit stops once the max-abs of the loss's gradient (mean cross-entropy + 0.5 l2 |W|^2 of
    # standardised features) falls below `tolerance`; `max_iter` only caps it, and a fit that hits
    # the cap unconverged warns. 1000 is generous: the slowest features seen so far took about 900.
    max_iter: int = bounded(1000, minimum=1)  # L-BFGS iteration cap
    tolerance: float = bounded(1e-6, above=0.0)
    l2: float = bounded(1e-4, minimum=0.0)
    # The frozen features: auto is trainer.precision's; bf16 moves the 10k/10k probe of CIFAR-10 by
    # less than its standard error (docs/performance.md). Recorded in the protocol where it is bf16.
    precision: str = choice("auto", "auto", "fp32", "bf16")


@dataclass
class KNNConfig(FrozenFeaturesConfig):
    """The weighted kNN monitor of frozen features (eval/knn.py), as the SSL libraries report it."""
    k: int = bounded(200, minimum=1)
    temperature: float = bounded(0.1, above=0.0)


@dataclass
class HeldOutEvalConfig:
    """A method's own predictions scored on held-out test images, with the network in eval mode:
    its self-supervised tasks (eval.tasks: rotation and jigsaw accuracy, what the training batches'
    figures estimate from a few images), or a classifier's test top-1 (eval.accuracy: the
    semi-supervised methods). Each section sets its own sizes (EvalConfig)."""
    every: int = bounded(0, minimum=0)      # steps between evaluations; 0: off
    test_size: int = bounded(10000, minimum=1)
    batch_size: int = bounded(500, minimum=1)


@dataclass
class PastFakesConfig:
    """A GAN's forgetting monitor (eval/past_fakes.py): G's fakes archived every `every` steps and
    scored by each later D, without labels."""
    every: int = bounded(0, minimum=0)      # steps between archives (and evaluations); 0: off
    num_images: int = bounded(500, minimum=1)  # fakes per archive
    keep: int = bounded(20, minimum=1)      # archives kept, the oldest dropped: ages up to keep * every
    batch_size: int = bounded(250, minimum=1)  # G's batch (its batch norm normalises by it) and D's


@dataclass
class EvalConfig:
    fid: FIDConfig = field(default_factory=FIDConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    knn: KNNConfig = field(default_factory=KNNConfig)
    tasks: HeldOutEvalConfig = field(default_factory=lambda: HeldOutEvalConfig(test_size=1000, batch_size=250))
    accuracy: HeldOutEvalConfig = field(default_factory=HeldOutEvalConfig)
    past_fakes: PastFakesConfig = field(default_factory=PastFakesConfig)


@dataclass
class Config:
    seed: int = 0
    run_dir: str = ""                       # default: runs/<config file stem>
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = by_name(METHODS, MethodConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


# ---------------------------------------------------------------- parsing
def _convert(value: Any, tp: Any, key: str, registry: Registry | None = None, base: Any = None,
             saved: bool = False) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(value, args[0], key, registry, base, saved)
    if dataclasses.is_dataclass(tp):
        if registry is not None:
            tp = _chosen_class(registry, value, base, tp, key)
        return from_dict(tp, value, key, base if type(base) is tp else None, saved)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)[:1] or (Any,)
        return [_convert(v, item, f"{key}[{i}]", registry, saved=saved) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if tp is float:
        # YAML reads "2e-4" as a string; accept anything float() accepts, nothing else.
        if isinstance(value, (int, float, str)) and not isinstance(value, bool):
            try:
                number = float(value)
            except (ValueError, OverflowError):
                number = math.nan
            if math.isfinite(number):  # .nan and .inf would slip past every range check
                return number
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def _chosen_class(registry: Registry, raw: Any, base: Any, declared: type, key: str) -> type:
    """The options dataclass of the entry that `raw` names (or the default section names)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{key}: expected a mapping of keys, got {raw!r}")
    name = raw.get("name", getattr(base, "name", None) or declared.name)
    if not isinstance(name, str):  # looked up before the section's own type checks
        raise ConfigError(f"{key}.name: expected a string, got {name!r}")
    return registry.config_class(name, f"{key}.name", default=declared)


def _check_range(value: Any, meta: typing.Mapping, key: str) -> None:
    if "choices" in meta and value not in meta["choices"]:
        also = " (or true/false: " + ", ".join(f"{str(k).lower()} = {v}" for k, v in meta["aliases"].items()) + ")" \
            if "aliases" in meta else ""
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(meta['choices'])}{also}")
    if "names" in meta:
        meta["names"].get(value, key)  # a ConfigError listing the valid names
    minimum, above, maximum = meta.get("minimum"), meta.get("above"), meta.get("maximum")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}: {value!r} is out of range; expected >= {minimum}")
    if above is not None and value <= above:
        raise ConfigError(f"{key}: {value!r} is out of range; expected > {above}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{key}: {value!r} is out of range; expected <= {maximum}")


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def from_dict(cls: type, raw: Any, prefix: str = "", base: Any = None, saved: bool = False) -> Any:
    """Build dataclass `cls` from a plain dict, checking keys, types and ranges. Keys the dict
    leaves out keep the values of `base` (a section's default, e.g. G's width 256), else the
    class defaults. `saved`: the dict is a run's saved config, whose retired keys are dropped."""
    where = prefix or "config"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if saved:
        raw = {k: v for k, v in raw.items() if k in fields or k not in getattr(cls, "retired_keys", ())}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(fields)}"
        )
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        default = copy.deepcopy(getattr(base, name)) if base is not None else _default(f)
        registry = f.metadata.get("registry")
        if name in raw:
            value = raw[name]
            if isinstance(value, bool) and "aliases" in f.metadata:
                value = f.metadata["aliases"][value]
            value = _convert(value, hints[name], key, registry, default, saved)
            _check_range(value, f.metadata, key)
        elif registry is not None and dataclasses.is_dataclass(hints[name]):
            # An absent section is its default entry's, built with that entry's own options
            # (the default method's, not the bare base class, which lacks every option a method reads).
            value = _convert({}, hints[name], key, registry, default, saved)
        else:
            value = default
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict:
    return dataclasses.asdict(cfg)


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one `a.b.c=value` to a raw config dict; the value is read as YAML."""
    if "=" not in assignment:
        raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. trainer.steps=2000")
    key, text = assignment.split("=", 1)
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {part!r} is not a section")
    try:
        node[parts[-1]] = parse_yaml(text) if text.strip() else ""
    except ValueError as err:
        raise ConfigError(f"--set {key}: cannot read value {text!r}: {err}") from None


def yaml_problem(err: Exception) -> str:
    """A YAML error in one line (PyYAML's own text spans several, with a drawing of the spot)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or (str(err).splitlines() or [type(err).__name__])[0]
    return f"{problem} (line {mark.line + 1}, column {mark.column + 1})" if mark else problem


def parse_yaml(text: str | bytes):
    """yaml.safe_load: tags such as !!python/object are refused, so a config never runs code.
    Every exception it raises is about the text (`!!float nope` is a ValueError, not a YAMLError)."""
    try:
        return yaml.safe_load(text)
    except Exception as err:
        raise ValueError(yaml_problem(err)) from None


def read_config_file(path: str | Path, what: str = "config file") -> dict:
    """The top-level mapping of a YAML file; ConfigErrors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} {str(path)!r} does not exist (see `ssgen configs`)")
    try:
        raw = parse_yaml(path.read_bytes()) or {}
    except ValueError as err:
        raise ConfigError(f"{what} {str(path)!r} is not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{what} {str(path)!r}: expected a mapping at the top level")
    return raw


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = (),
                log: typing.Callable[[str], None] | None = None) -> Config:
    """The checked Config of a YAML file (None: the defaults) with `overrides` ("a.b=c", as
    `--set` takes them) applied; unknown keys, wrong types and values out of range are ConfigErrors.
    `log` hears the notes (a data.path given without a data.name implies folder)."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        raw = read_config_file(path)
    file_data = dict(raw.get("data") or {}) if isinstance(raw.get("data"), dict) else {}
    for assignment in overrides:
        apply_override(raw, assignment)
    imply_folder(raw, file_data, overrides, log)
    cfg = from_dict(Config, raw)
    if not cfg.run_dir:
        cfg.run_dir = str(Path("runs") / (path.stem if path is not None else "default"))
    return cfg


PATHLESS_DATASETS = ("shapes",)  # made in memory: they read no data.path


def imply_folder(raw: dict, file_data: dict, overrides: typing.Sequence[str],
                 log: typing.Callable[[str], None] | None) -> None:
    """A data.path for a dataset that reads none (the embedded shapes) means the user's own images:
    with data.name given no later than the path (the file's name under a --set path, or no name at
    all), data.name becomes folder and `log` says so; a name given with the path, or after it, is
    a contradiction, a ConfigError naming both keys. Training silently on the glyphs is the one
    outcome a user with a path never wants."""
    data = raw.get("data")
    if not isinstance(data, dict) or not data.get("path"):
        return
    name = data.get("name", DataConfig.name)
    if name not in PATHLESS_DATASETS:
        return
    keys = [assignment.split("=", 1)[0].strip() for assignment in overrides]
    path_on_command_line, name_on_command_line = "data.path" in keys, "data.name" in keys
    name_given = name_on_command_line or ("name" in file_data and not path_on_command_line)
    if name_given:
        raise ConfigError(f"data.name={name} makes its images in memory and reads no data.path "
                          f"({data['path']!r}); for images on disk set data.name=folder, or drop data.path")
    data["name"] = "folder"
    if log is not None:
        log(f"note: data.path={data['path']} with no data.name given: data.name=folder (the embedded "
            f"{name} read no path); --set data.name=... to choose another dataset")


def with_absolute_paths(cfg: Config) -> Config:
    """The config with its data and extractor paths made absolute, as a new run saves it: the run
    then resumes (and is measured) from any working directory."""
    def absolute(path: str) -> str:
        return str(Path(path).expanduser().resolve()) if path else path

    cfg.data.path = absolute(cfg.data.path)
    if Path(cfg.eval.fid.extractor).suffix:  # a file, not a registered extractor's name
        cfg.eval.fid.extractor = absolute(cfg.eval.fid.extractor)
    cfg.eval.fid.weights = absolute(cfg.eval.fid.weights)
    for option in dataclasses.fields(cfg.method):  # a method's own paths (distill's teacher)
        if option.metadata.get("path"):
            setattr(cfg.method, option.name, absolute(getattr(cfg.method, option.name)))
    return cfg


def config_from_dict(raw: dict) -> Config:
    """Rebuild a Config from its saved dict (as written into a run directory or checkpoint)."""
    return from_dict(Config, raw, saved=True)
