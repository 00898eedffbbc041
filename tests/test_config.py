import pytest

from ssgen.config import Config, load_config, to_dict, config_from_dict
from ssgen.errors import ConfigError


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_and_overrides(tmp_path):
    cfg = load_config(write(tmp_path, "method: {name: gan, n_dis: 3}\n"),
                      ["trainer.steps=7", "method.d_optim.lr=1e-3", "data.flip=false"])
    assert cfg.method.n_dis == 3 and cfg.trainer.steps == 7
    assert cfg.method.d_optim.lr == pytest.approx(1e-3)  # YAML reads 1e-3 as text; it still parses
    assert cfg.data.flip is False
    assert cfg.run_dir == "runs/c"


def test_method_section_is_typed_by_method_name(tmp_path):
    cfg = load_config(None, ["method.name=ssgan", "method.alpha=0.5"])
    assert type(cfg.method).__name__ == "SSGANConfig" and cfg.method.alpha == 0.5 and cfg.method.beta == 1.0
    with pytest.raises(ConfigError, match=r"method: unknown key 'alpha'; valid keys: .*n_dis"):
        load_config(None, ["method.name=gan", "method.alpha=0.5"])


@pytest.mark.parametrize("override, message", [
    ("trainer.stepz=3", r"trainer: unknown key 'stepz'; valid keys: steps, batch_size"),
    ("trainer.steps=many", r"trainer.steps: expected an integer, got 'many'"),
    ("trainer.steps=2.5", r"trainer.steps: expected an integer"),
    ("data.flip=3", r"data.flip: expected true or false"),
    ("method.name=wgan", r"method.name: unknown method 'wgan'; valid: .*\bgan, .*ssgan"),
    ("trainer.precision=fp8", r"trainer.precision: 'fp8' is not one of auto, fp32, bf16"),
    ("method.d_optim.lr=-1", r"method.d_optim.lr: -1.0 is out of range; expected > 0"),
    ("method.n_dis=0", r"method.n_dis: 0 is out of range; expected >= 1"),
    ("trainer", r"expected KEY=VALUE"),
])
def test_bad_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_round_trip_through_dict():
    cfg = load_config(None, ["method.name=ssgan", "trainer.steps=5"])
    again = config_from_dict(to_dict(cfg))
    assert to_dict(again) == to_dict(cfg) and isinstance(again, Config)


@pytest.mark.e2e
def test_every_shipped_config_loads_passes_its_checks_and_builds(tmp_path):
    from ssgen.rebuild import build_method
    from ssgen.registry import METHODS
    from small_runs import CONFIGS, quiet_train

    # distill's configs name the run of their teacher: a tiny trained classifier stands in for it.
    teacher = tmp_path / "teacher"
    quiet_train(load_config(CONFIGS / "supervised_shapes.yaml",
                            [f"run_dir={teacher}", "data.train_size=40", "data.test_size=10", "trainer.batch_size=4",
                             "trainer.steps=1", "method.encoder.width=8", "eval.accuracy.every=0",
                             "trainer.threads=1"]))
    paths = sorted(CONFIGS.glob("*.yaml"))
    assert len(paths) >= 20
    for path in paths:
        cfg = load_config(path, [f"method.teacher={teacher}"] if path.stem.startswith("distill_") else [])
        METHODS.get(cfg.method.name).check_config(cfg)
        method = build_method(cfg, "cpu")
        assert method.feature_layers, path.name
        first_line = path.read_text().splitlines()[0]
        assert first_line.startswith("# ") and len(first_line) > 40, f"{path.name}: say what it is in its first line"


QUICK_LIKE = "data: {name: shapes, resolution: 32}\n"


def test_a_data_path_with_no_name_given_implies_folder(tmp_path):
    """issue 27: `--set data.path=DIR` on quick.yaml trained on the embedded shapes and exited 0."""
    notes = []
    cfg = load_config(write(tmp_path, QUICK_LIKE), ["data.path=/my/images"], log=notes.append)
    assert (cfg.data.name, cfg.data.path) == ("folder", "/my/images")
    assert len(notes) == 1 and "data.name=folder" in notes[0] and "/my/images" in notes[0]
    assert load_config(None, ["data.path=/my/images"]).data.name == "folder"  # the default name is shapes too
    assert load_config(write(tmp_path, "data: {path: /my/images}\n")).data.name == "folder"


def test_a_data_path_never_moves_a_dataset_that_reads_one(tmp_path):
    cfg = load_config(write(tmp_path, "data: {name: cifar10, path: data/cifar10}\n"), ["data.path=/elsewhere"])
    assert (cfg.data.name, cfg.data.path) == ("cifar10", "/elsewhere")
    assert load_config(write(tmp_path, QUICK_LIKE)).data.name == "shapes"  # no path: the shapes stay


@pytest.mark.parametrize("text, overrides", [
    (QUICK_LIKE, ["data.name=shapes", "data.path=/my/images"]),     # both on the command line
    ("data: {name: shapes, path: /my/images}\n", []),               # both in the file
    ("data: {path: /my/images}\n", ["data.name=shapes"]),           # the name given after the path
])
def test_a_path_beside_an_explicit_shapes_name_is_an_error_naming_both_keys(tmp_path, text, overrides):
    with pytest.raises(ConfigError, match=r"data.name=shapes .* reads no data.path \('/my/images'\).*data.name=folder"):
        load_config(write(tmp_path, text), overrides)


def test_each_method_keeps_its_optimizer_betas():
    """OptimConfig's default is Adam's own; the GANs set SNGAN's (0.0, 0.9) on both players."""
    from ssgen.config import OptimConfig

    assert OptimConfig().betas == [0.9, 0.999]
    for name in ("gan", "ssgan"):
        method = load_config(None, [f"method.name={name}"]).method
        assert method.g_optim.betas == method.d_optim.betas == [0.0, 0.9], name
    assert load_config(None, ["method.name=encoder"]).method.optim.betas == [0.9, 0.999]
    assert load_config(None, ["method.name=supervised"]).method.optim.betas == [0.9, 0.999]
    assert load_config(None, ["method.name=denoising"]).method.optim.betas == [0.5, 0.999]
    # A section that sets other options keeps its method's betas, not OptimConfig's.
    assert load_config(None, ["method.name=gan", "method.d_optim.lr=1e-3"]).method.d_optim.betas == [0.0, 0.9]


def test_a_saved_config_from_before_generator_options_loads_with_its_meaning():
    """Configs saved before GeneratorConfig held z_dim and sbn in every network section; a run's
    saved config drops them where the network has no such option, and only there."""
    cfg = load_config(None, ["method.name=gan", "method.generator.z_dim=7", "method.generator.sbn=true"])
    old = to_dict(cfg)
    old["method"]["discriminator"].update(z_dim=128, sbn=False)
    again = config_from_dict(old)
    assert to_dict(again) == to_dict(cfg)
    assert (again.method.generator.z_dim, again.method.generator.sbn) == (7, True)
    with pytest.raises(ConfigError, match=r"method.discriminator: unknown key 'z_dim'; valid keys: name, width"):
        load_config(None, ["method.name=gan", "method.discriminator.z_dim=64"])  # a new config: no such option
    rotnet = to_dict(load_config(None, ["method.name=encoder"]))
    rotnet["method"]["encoder"].update(z_dim=128, sbn=False)
    assert to_dict(config_from_dict(rotnet)) == to_dict(load_config(None, ["method.name=encoder"]))
