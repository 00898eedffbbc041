"""The decoded copy of a folder's or zip's images on disk (ssgen/data/decoded_cache.py): read by
the next run instead of decoding, missed when the images change, off with data.cache=false, and
rewritten when unreadable. Each "run" here is a fresh process's view: the in-memory sets forgotten."""

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ssgen.data import build_dataset, data_log, folder
from test_data import (COLOURS, blue_png_of_the_same_size, data_config, edit_in_place_keeping_size_and_times,
                       replace_keeping_size_and_times, stored_png, write_images, zip_folder)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """The folder of decoded copies (`dir`) and what was decoded (`decodes`)."""
    monkeypatch.setenv("SSGEN_CACHE", str(tmp_path / "cache"))
    decodes = []
    decode_all = folder.decode_all

    def counted(source, members, resolution, what):
        decodes.append(what)
        return decode_all(source, members, resolution, what)

    monkeypatch.setattr(folder, "decode_all", counted)
    return SimpleNamespace(dir=tmp_path / "cache" / "decoded", decodes=decodes)


def new_run(monkeypatch, path, *overrides, split="train"):
    """`split` of the folder or zip at `path` as a new process builds it, and what it said."""
    monkeypatch.setattr(folder, "_decoded", {})  # decoded once per process: a new process remembers none
    lines = []
    cfg = data_config("data.name=folder", f"data.path={path}", "data.resolution=16", "data.holdout=0", *overrides)
    with data_log(lines.append):
        images = build_dataset(cfg, split)
    return images, lines


def pixel(images, row=0):
    return tuple(images.get(slice(row, row + 1))[0][0, :, 8, 8].tolist())


def test_a_second_run_reads_the_decoded_copy_instead_of_decoding(tmp_path, cache, monkeypatch):
    write_images(tmp_path / "src")
    archive = zip_folder(tmp_path / "src", tmp_path / "train.zip")
    first, said_first = new_run(monkeypatch, archive)
    assert len(cache.decodes) == 1 and len(list(cache.dir.glob("*.npy"))) == 1
    assert any("decoding 6 train images" in line for line in said_first)
    second, said_second = new_run(monkeypatch, archive)
    assert len(cache.decodes) == 1  # not decoded again
    assert any("decoded copy read from the cache" in line for line in said_second)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert first.fingerprint() == second.fingerprint()  # the FD statistics' key is the same too


def test_the_copy_is_keyed_by_the_zips_content_not_its_place(tmp_path, cache, monkeypatch):
    write_images(tmp_path / "src")
    archive = zip_folder(tmp_path / "src", tmp_path / "train.zip")
    new_run(monkeypatch, archive)
    (tmp_path / "elsewhere").mkdir()
    copied = shutil.copy2(archive, tmp_path / "elsewhere" / "train.zip")
    new_run(monkeypatch, copied)
    assert len(cache.decodes) == 1


def test_split_and_resolution_have_copies_of_their_own(tmp_path, cache, monkeypatch):
    write_images(tmp_path / "data" / "train")
    write_images(tmp_path / "data" / "test")
    train, _ = new_run(monkeypatch, tmp_path / "data")
    test, _ = new_run(monkeypatch, tmp_path / "data", split="test")
    larger, _ = new_run(monkeypatch, tmp_path / "data", "data.resolution=24")
    assert len(cache.decodes) == 3 and len(list(cache.dir.glob("*.npy"))) == 3
    assert larger.images.shape[-1] == 24


def test_a_replaced_zip_is_decoded_again(tmp_path, cache, monkeypatch):
    write_images(tmp_path / "src")
    cat = stored_png(tmp_path / "src" / "cat" / "0.png", COLOURS["cat"])
    archive = zip_folder(tmp_path / "src", tmp_path / "train.zip")
    before, _ = new_run(monkeypatch, archive)
    assert pixel(before) == COLOURS["cat"]
    cat.write_bytes(blue_png_of_the_same_size(cat))  # the same member names and sizes, another CRC
    zip_folder(tmp_path / "src", tmp_path / "new.zip").replace(archive)
    after, _ = new_run(monkeypatch, archive)
    assert len(cache.decodes) == 2
    assert pixel(after) == COLOURS["dog"]


@pytest.mark.parametrize("change", [replace_keeping_size_and_times, edit_in_place_keeping_size_and_times])
def test_a_folders_image_rewritten_with_its_size_and_mtime_is_decoded_again(tmp_path, cache, monkeypatch, change):
    write_images(tmp_path / "train")
    cat = stored_png(tmp_path / "train" / "cat" / "0.png", COLOURS["cat"])
    before, _ = new_run(monkeypatch, tmp_path / "train")
    assert pixel(before) == COLOURS["cat"]
    change(cat, blue_png_of_the_same_size(cat))
    after, _ = new_run(monkeypatch, tmp_path / "train")
    assert len(cache.decodes) == 2
    assert pixel(after) == COLOURS["dog"]


def test_data_cache_false_decodes_every_run_and_writes_nothing(tmp_path, cache, monkeypatch):
    write_images(tmp_path / "train")
    new_run(monkeypatch, tmp_path / "train", "data.cache=false")
    new_run(monkeypatch, tmp_path / "train", "data.cache=false")
    assert len(cache.decodes) == 2
    assert not cache.dir.exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong shape"])
def test_an_unusable_copy_is_decoded_again_and_rewritten_with_a_warning(tmp_path, cache, monkeypatch, damage):
    write_images(tmp_path / "train")
    first, _ = new_run(monkeypatch, tmp_path / "train")
    [copy] = cache.dir.glob("*.npy")
    if damage == "garbage":
        copy.write_bytes(b"not an array")
    elif damage == "truncated":
        copy.write_bytes(copy.read_bytes()[:-100])
    else:
        np.save(copy, np.zeros((5, 3, 16, 16), np.uint8))
    second, said = new_run(monkeypatch, tmp_path / "train")
    assert len(cache.decodes) == 2
    assert any(line.startswith("warning: the decoded copy") and str(copy) in line for line in said)
    assert torch.equal(second.images, first.images)
    assert np.array_equal(np.load(copy), first.images.numpy())  # rewritten whole
    new_run(monkeypatch, tmp_path / "train")
    assert len(cache.decodes) == 2


def test_a_cache_that_cannot_be_written_is_a_warning_not_an_error(tmp_path, cache, monkeypatch):
    write_images(tmp_path / "train")
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("SSGEN_CACHE", str(blocked))
    images, said = new_run(monkeypatch, tmp_path / "train")
    assert pixel(images) == COLOURS["cat"]
    assert any(line.startswith("warning: no decoded copy") for line in said)


def test_training_says_it_decodes_then_that_it_reads_the_copy(tmp_path, monkeypatch, ssgen):
    from small_runs import QUICK, TINY

    monkeypatch.setenv("SSGEN_CACHE", str(tmp_path / "cache"))
    write_images(tmp_path / "src", per_class=8)
    archive = zip_folder(tmp_path / "src", tmp_path / "train.zip")
    for run in ("first", "second"):
        monkeypatch.setattr(folder, "_decoded", {})
        code, out, err = ssgen("train", "--config", QUICK, "--no-progress", *[f"--set={o}" for o in TINY],
                               "--set", "data.name=folder", "--set", f"data.path={archive}", "--set", "data.holdout=0",
                               "--set", "trainer.steps=1", "--set", "trainer.batch_size=4",
                               "--set", f"run_dir={tmp_path / run}")
        assert code == 0, err
        log = out + err
        assert ("data: decoding 16 train images" in log) == (run == "first")
        assert ("decoded copy read from the cache" in log) == (run == "second")
