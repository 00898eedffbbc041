"""Bad input (issue #6): one clear `error: ...` line, exit status 2, no traceback (`--debug` shows
it); images in any mode or size are converted rather than refused; random bytes as images and
random YAML as configs always end in a clean error (fuzz, fixed seed, bounded count).

Most cases run `ssgen` in this process through `ssgen.cli.main` (what the console script runs);
one runs a real process to check the exit status and the traceback that `--debug` adds.
"""

import io
import random
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image

from ssgen.config import load_config, to_dict
from ssgen.data import build_dataset
from ssgen.errors import ConfigError, DataError
from ssgen.checkpoint import list_checkpoints, read_checkpoint

from small_runs import QUICK, TINY, assert_error_line, last_checkpoint, quiet_train, set_options


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A one-step SS-GAN run (width 8) to sample, probe and resume from."""
    path = tmp_path_factory.mktemp("trained") / "run"
    quiet_train(load_config(QUICK, [f"run_dir={path}", *TINY, "trainer.steps=1"]))
    return path


def train_args(tmp_path, *overrides):
    sets = [f"run_dir={tmp_path / 'run'}", *TINY, "trainer.steps=1", *overrides]
    return ["train", "--config", QUICK, "--no-progress", *set_options(sets)]


def png_bytes(mode="RGB", size=(12, 10), colour=(255, 0, 0), fmt="PNG") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, fmt)
    return buffer.getvalue()


def image_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


# ---------------------------------------------------------------- data paths and folders
@pytest.mark.e2e
def test_nonexistent_data_path(ssgen, tmp_path, monkeypatch, capsys):
    missing = tmp_path / "no" / "such" / "images"
    code, _, err = ssgen(*train_args(tmp_path, "data.name=folder", f"data.path={missing}"))
    assert_error_line(code, err, f"data.path '{missing}' does not exist")


@pytest.mark.e2e
def test_empty_folder(ssgen, tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    code, _, err = ssgen(*train_args(tmp_path, "data.name=folder",
                                                          f"data.path={tmp_path / 'empty'}"))
    assert_error_line(code, err, f"'{tmp_path / 'empty'}' holds no images")


@pytest.mark.e2e
def test_folder_without_class_subfolders_trains_with_the_probe_off_and_ssgen_probe_refuses(ssgen, tmp_path,
                                                                                          monkeypatch, capsys):
    flat = tmp_path / "flat"
    image_folder(flat, {f"{split}/{i}.png": png_bytes() for split in ("train", "test") for i in range(12)})
    on_flat = ["data.name=folder", f"data.path={flat}", "data.train_size=0", "data.test_size=0"]
    code, _, err = ssgen(*train_args(tmp_path, *on_flat, "eval.probe.every=1"))
    assert code == 0, err
    assert err.count("probe off:") == 1 and "no class subfolders, so there are no labels to classify with" in err
    # The run trained on unlabelled images; a probe asked for by name cannot run, and says why.
    code, _, err = ssgen("probe", tmp_path / "run", "--train-size", 10, "--test-size", 10)
    assert_error_line(code, err, "has no class labels", "one subfolder per class")


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "zero-byte"])
@pytest.mark.e2e
def test_unusable_image_is_named(ssgen, tmp_path, monkeypatch, capsys, damage):
    good = png_bytes(size=(64, 64), colour=(10, 200, 30))
    bad = {"corrupt": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "truncated": good[: len(good) // 2],
           "zero-byte": b""}[damage]
    folder = image_folder(tmp_path / "images", {**{f"cat/{i}.png": good for i in range(9)}, "dog/bad.png": bad})
    code, _, err = ssgen(*train_args(tmp_path, "data.name=folder", f"data.path={folder}"))
    assert_error_line(code, err, "'dog/bad.png'", str(folder))


# ---------------------------------------------------------------- converted, not refused
def palette_image() -> Image.Image:
    image = Image.new("P", (12, 10), 0)
    image.putpalette([255, 0, 0] + [0] * 765)
    return image


MODES = {  # name: (image, format, expected RGB)
    "grayscale": (Image.new("L", (12, 10), 128), "PNG", (128, 128, 128)),
    "1-bit": (Image.new("1", (12, 10), 1), "PNG", (255, 255, 255)),
    "palette": (palette_image(), "PNG", (255, 0, 0)),
    "16-bit grey PNG": (Image.new("I;16", (12, 10), 0x8080), "PNG", (128, 128, 128)),
    "16-bit grey TIFF": (Image.new("I;16", (12, 10), 0xFFFF), "TIFF", (255, 255, 255)),
    "RGBA": (Image.new("RGBA", (12, 10), (0, 0, 255, 255)), "PNG", (0, 0, 255)),
    "grey+alpha": (Image.new("LA", (12, 10), (64, 255)), "PNG", (64, 64, 64)),
    "CMYK JPEG": (Image.new("CMYK", (12, 10), (0, 0, 0, 0)), "JPEG", (255, 255, 255)),
}


@pytest.mark.parametrize("mode", MODES)
def test_image_modes_are_converted_to_rgb(tmp_path, mode):
    image, fmt, expected = MODES[mode]
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    ext = {"PNG": "png", "TIFF": "tif", "JPEG": "jpg"}[fmt]
    folder = image_folder(tmp_path / "train", {f"a/0.{ext}": buffer.getvalue(), "b/0.png": png_bytes()})
    cfg = load_config(None, ["data.name=folder", f"data.path={folder}", "data.resolution=8"]).data
    pixels, labels = build_dataset(cfg, "train").get(slice(None))
    assert pixels.dtype == torch.uint8 and pixels.shape == (2, 3, 8, 8)
    assert pixels[0, :, 4, 4].tolist() == list(expected)


@pytest.mark.parametrize("size", [(1, 1), (7, 50), (50, 7), (33, 17), (300, 200)])
def test_odd_sizes_are_resized(tmp_path, size):
    folder = image_folder(tmp_path / "train", {"a/0.png": png_bytes(size=size, colour=(0, 255, 0))})
    cfg = load_config(None, ["data.name=folder", f"data.path={folder}", "data.resolution=16"]).data
    pixels, _ = build_dataset(cfg, "train").get(slice(None))
    assert pixels.shape == (1, 3, 16, 16) and pixels[0, :, 8, 8].tolist() == [0, 255, 0]


# ---------------------------------------------------------------- archives, files in disguise
@pytest.mark.parametrize("member", ["../evil.png", "/etc/evil.png", "cat/../../evil.png", "C:/evil.png"])
@pytest.mark.e2e
def test_zip_members_escaping_the_archive_are_refused(ssgen, tmp_path, monkeypatch, capsys, member):
    archive = tmp_path / "train.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(9):
            zf.writestr(f"cat/{i}.png", png_bytes())
        zf.writestr(zipfile.ZipInfo(member), png_bytes())  # ZipInfo keeps the name as given
    code, _, err = ssgen(*train_args(tmp_path, "data.name=folder", f"data.path={archive}"))
    assert_error_line(code, err, f"member {member!r} points outside the archive; refused")


@pytest.mark.e2e
def test_an_image_name_does_not_choose_the_decoder(tmp_path, monkeypatch):
    """PIL picks a decoder from a file's content; EPS would hand the data to Ghostscript. Only the
    formats ssgen lists are ever tried, so an EPS file named .png is refused, unopened."""
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 12 10\n0 0 moveto showpage\n%%EOF\n"
    folder = image_folder(tmp_path / "train", {"a/0.png": png_bytes(), "a/1.png": eps})
    ran = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(subprocess, "check_call", lambda *a, **k: ran.append(a))
    cfg = load_config(None, ["data.name=folder", f"data.path={folder}", "data.resolution=8"]).data
    with pytest.raises(DataError, match=r"image 'a/1\.png' in .* is not a PNG, JPEG"):
        build_dataset(cfg, "train")
    assert not ran


# ---------------------------------------------------------------- config values
@pytest.mark.parametrize("override, message", [
    ("method.d_optim.lr=-1e-4", "method.d_optim.lr: -0.0001 is out of range; expected > 0"),
    ("method.g_optim.lr=.nan", "method.g_optim.lr: expected a finite number, got nan"),
    ("method.n_dis=0", "method.n_dis: 0 is out of range; expected >= 1"),
    ("trainer.batch_size=10", "method.rotation_fraction=0.25 of trainer.batch_size=10 is 2.5 images"),
    ("trainer.steps=0", "trainer.steps: 0 is out of range; expected >= 1"),
    ("method.name=[1]", "method.name: expected a string, got [1]"),
])
@pytest.mark.e2e
def test_config_values_out_of_range(ssgen, tmp_path, monkeypatch, capsys, override, message):
    code, _, err = ssgen(*train_args(tmp_path, override))
    assert_error_line(code, err, message)
    assert not (tmp_path / "run").exists()  # refused before anything is made


@pytest.mark.e2e
def test_yaml_in_a_config_cannot_run_code(ssgen, tmp_path, monkeypatch, capsys):
    marker = tmp_path / "code-ran"
    config = tmp_path / "evil.yaml"
    config.write_text(f"seed: !!python/object/apply:os.system ['touch {marker}']\n")
    code, _, err = ssgen("train", "--config", config)
    assert_error_line(code, err, f"config file '{config}' is not valid YAML", "line 1")
    assert not marker.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("command", ["train", "sample"])
@pytest.mark.e2e
def test_cuda_requested_without_a_gpu(ssgen, tmp_path, monkeypatch, capsys, run_dir, command):
    if command == "train":
        args = train_args(tmp_path, "trainer.device=cuda")
    else:
        args = ["sample", run_dir, "--device", "cuda", "--out", tmp_path / "s.png"]
    code, _, err = ssgen(*args)
    assert_error_line(code, err, "cuda", "no CUDA GPU is available here")


# ---------------------------------------------------------------- checkpoints that do not fit
def forged_checkpoint(run_dir: Path, target: Path, change) -> Path:
    """The run's checkpoint with its config edited by `change` (the weights stay as trained)."""
    state = last_checkpoint(run_dir)
    change(state["config"]["method"])
    torch.save(state, target)
    return target


def wider(method: dict) -> None:
    method["discriminator"]["width"] = 16


def plain_gan(method: dict) -> None:
    for key in ("beta", "alpha", "rotation_fraction"):
        del method[key]
    method["name"] = "gan"


@pytest.mark.parametrize("command", ["sample", "probe"])
@pytest.mark.parametrize("change, why", [(wider, "size mismatch for D."), (plain_gan, "Unexpected key(s)")],
                         ids=["architecture", "method"])
@pytest.mark.e2e
def test_checkpoint_of_another_architecture_or_method(ssgen, tmp_path, monkeypatch, capsys, run_dir, command,
                                                      change, why):
    forged = forged_checkpoint(run_dir, tmp_path / "forged.pt", change)
    args = [command, forged] + (["--out", tmp_path / "s.png"] if command == "sample" else [])
    code, _, err = ssgen(*args)
    expected = "gan" if change is plain_gan else "ssgan"
    assert_error_line(code, err, f"checkpoint '{forged}' does not match the configured {expected} networks",
                          why)


@pytest.mark.e2e
def test_resume_with_another_architecture_is_refused_and_leaves_the_run_alone(ssgen, tmp_path, monkeypatch, capsys,
                                                                              run_dir):
    saved = (run_dir / "config.yaml").read_text()
    code, _, err = ssgen("train", "--resume", run_dir, "--force", "--no-progress",
                         "--set", "method.discriminator.width=16")
    assert_error_line(code, err, "does not match the configured ssgan networks", "size mismatch")
    assert (run_dir / "config.yaml").read_text() == saved
    assert [read_checkpoint(p)["step"] for p in list_checkpoints(run_dir)] == [1]


@pytest.mark.parametrize("problem", ["missing --config", "torn config.yaml", "not a run directory"])
@pytest.mark.e2e
def test_resume_with_a_missing_or_damaged_config(ssgen, tmp_path, monkeypatch, capsys, problem):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("seed: 0\ntrainer: {steps: 3, batch_")  # cut short by a crash
    args = ["train", "--resume", run]
    if problem == "missing --config":
        (run / "config.yaml").write_text("seed: 0\n")
        args += ["--config", tmp_path / "nope.yaml"]
        fragments = [f"config file '{tmp_path / 'nope.yaml'}' does not exist"]
    elif problem == "torn config.yaml":
        fragments = [f"the run's config '{run / 'config.yaml'}' is not valid YAML"]
    else:
        args = ["train", "--resume", tmp_path]
        fragments = ["not a run directory (no config.yaml)"]
    code, _, err = ssgen(*args)
    assert_error_line(code, err, *fragments)


@pytest.mark.e2e
def test_sample_creates_the_output_folder(ssgen, tmp_path, run_dir):
    out = tmp_path / "no-such-folder" / "deeper" / "grid.png"
    code, _, err = ssgen("sample", run_dir, "-n", 4, "--out", out)
    assert code == 0, err
    assert out.is_file()


@pytest.mark.e2e
def test_output_file_under_a_file_is_one_error_line(ssgen, tmp_path, monkeypatch, capsys, run_dir):
    (tmp_path / "a-file").write_text("not a folder")
    code, _, err = ssgen("sample", run_dir, "-n", 4, "--out", tmp_path / "a-file" / "grid.png")
    assert_error_line(code, err, "a-file")


# ---------------------------------------------------------------- a real process: status, --debug
@pytest.mark.parametrize("debug", [False, True], ids=["plain", "--debug"])
@pytest.mark.e2e
def test_a_real_process_exits_2_with_one_line_and_debug_shows_the_traceback(tmp_path, debug):
    missing = tmp_path / "missing"
    args = [sys.executable, "-m", "ssgen", *(["--debug"] if debug else []),
            "train", "--config", QUICK, "--no-progress", "--set", "data.name=folder", "--set",
            f"data.path={missing}", "--set", f"run_dir={tmp_path / 'run'}"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    if debug:
        assert result.returncode != 0 and "Traceback (most recent call last)" in result.stderr
        assert "ssgen.errors.DataError" in result.stderr
    else:
        assert result.returncode == 2
        assert result.stderr == f"error: data.path '{missing}' does not exist; expected a folder or .zip of images\n"


# ---------------------------------------------------------------- fuzz
def sample_images() -> dict[str, bytes]:
    """One small valid file per format, to truncate and mutate."""
    images = {}
    for fmt, ext, mode in [("PNG", "png", "RGB"), ("JPEG", "jpg", "RGB"), ("GIF", "gif", "P"),
                           ("BMP", "bmp", "RGB"), ("TIFF", "tif", "RGB"), ("WEBP", "webp", "RGB"),
                           ("PPM", "ppm", "RGB")]:
        buffer = io.BytesIO()
        Image.new(mode, (20, 14), (90, 20, 200) if mode == "RGB" else 3).save(buffer, fmt)
        images[ext] = buffer.getvalue()
    return images


def fuzzed_image(rng: random.Random, samples: dict[str, bytes]) -> tuple[str, bytes]:
    ext = rng.choice(sorted(samples))
    base = samples[ext]
    kind = rng.randrange(4)
    if kind == 0:  # noise
        data = rng.randbytes(rng.randrange(0, 3000))
    elif kind == 1:  # a valid file cut short
        data = base[: rng.randrange(0, len(base))]
    elif kind == 2:  # a valid file with bytes flipped (headers included)
        data = bytearray(base)
        for _ in range(rng.randrange(1, 12)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = bytes(data)
    else:  # the start of a valid file, then noise
        data = base[: rng.randrange(1, 40)] + rng.randbytes(rng.randrange(0, 3000))
    return ext, data


@pytest.mark.e2e
def test_fuzz_random_bytes_as_image_files(ssgen, tmp_path, monkeypatch, capsys):
    rng, samples = random.Random(20240606), sample_images()
    outcomes = {"refused": 0, "decoded": 0}
    for i in range(150):
        ext, data = fuzzed_image(rng, samples)
        folder = image_folder(tmp_path / f"set{i}", {f"a/{i}.{ext}": data})
        cfg = load_config(None, ["data.name=folder", f"data.path={folder}", "data.resolution=8"]).data
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a warning would print lines of its own: none
                pixels, _ = build_dataset(cfg, "train").get(slice(None))
        except DataError as err:
            assert f"'a/{i}.{ext}'" in str(err) and "\n" not in str(err)
            outcomes["refused"] += 1
        else:  # mutations can leave a valid image: then it must decode as one
            assert pixels.shape == (1, 3, 8, 8) and pixels.dtype == torch.uint8
            outcomes["decoded"] += 1
        if i % 30 == 0:  # and through the command line: one line, status 2
            code, _, err = ssgen(*train_args(tmp_path, "data.name=folder",
                                                                  f"data.path={folder}", "data.resolution=8"))
            assert_error_line(code, err)
    assert outcomes["refused"] > 100 and outcomes["decoded"] > 0  # the fuzz exercises both paths


def valid_tree() -> dict:
    return to_dict(load_config(QUICK, []))


ODD_VALUES = [None, True, False, 0, -1, 1, 7, 2 ** 70, -(2 ** 70), 0.5, -0.0, 1e308, float("nan"),
              float("inf"), "", "x", "1e-3", "nan", "cpu", "cuda:7", "gan", "ssgan", "folder", "linear",
              [], [1, "a"], [0.5, 0.9], {}, {"a": 1}, {"name": "resnet"}, "\u00e9\u00df\u4e2d", "~", "*"]


def mutate(rng: random.Random, node, depth=0):
    """A config tree with a few leaves, keys or sections changed at random."""
    if isinstance(node, dict) and node and rng.random() < 0.8:
        key = rng.choice(sorted(node, key=str))
        action = rng.randrange(5)
        if action == 0:
            del node[key]
        elif action == 1:
            node[rng.choice(["stepz", "Name", 3, "lr ", "x.y", key.upper() if isinstance(key, str) else 1])] = \
                rng.choice(ODD_VALUES)
        elif action == 2 or not isinstance(node[key], dict):
            node[key] = rng.choice(ODD_VALUES)
        else:
            mutate(rng, node[key], depth + 1)
    return node


RAW_YAML = ["", "---", "[", "{a: 1", "a: b: c", "? [1, 2]\n: 3", "&a [*a]", "!!binary AAAA", "\t- x",
            "%YAML 9.9\n---\na: 1", "a: !!float nope", "seed: !!python/name:os.system", "\x00\xff\xfe",
            "trainer: {steps: 1e3}", "data: {resolution: 0x20}", "method: {name: ssgan, generator: [1]}"]


@pytest.mark.e2e
def test_fuzz_random_yaml_as_configs(ssgen, tmp_path, monkeypatch, capsys):
    import ssgen.train.trainer as trainer

    started = []
    monkeypatch.setattr(trainer, "train", lambda cfg, **kw: started.append(cfg) or Path(cfg.run_dir))
    rng = random.Random(6)
    outcomes = {"refused": 0, "accepted": 0}
    for i in range(300):
        path = tmp_path / f"c{i}.yaml"
        if i % 4 == 0:  # text that is barely YAML, or not at all
            text = rng.choice(RAW_YAML) + rng.choice(["", "\n" + rng.randbytes(rng.randrange(40)).decode("latin-1")])
            path.write_bytes(text.encode("utf-8", "surrogateescape") if i % 8 else rng.randbytes(64))
        else:  # the quick config with a few things changed
            tree = valid_tree()
            for _ in range(rng.randrange(1, 4)):
                mutate(rng, tree)
            path.write_text(yaml.safe_dump(tree, allow_unicode=True))
        try:
            load_config(path)
            outcomes["accepted"] += 1
        except ConfigError:
            outcomes["refused"] += 1
        code, out, err = ssgen("train", "--config", path, "--no-progress")
        if code != 0:
            assert_error_line(code, err)
    assert outcomes["refused"] > 150 and outcomes["accepted"] > 10
    assert len(started) == outcomes["accepted"]  # the CLI agrees with load_config on every file
