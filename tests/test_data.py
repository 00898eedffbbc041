"""Data layer: shapes determinism, folder/zip labels and splits, the resumable batch stream."""

import os
import time
import zipfile

import pytest
import torch
from PIL import Image

from ssgen.config import load_config
from ssgen.data import BatchStream, build_dataset, folder
from ssgen.data.shapes import CLASSES, make_shapes
from ssgen.errors import DataError


def data_config(*overrides):
    return load_config(None, list(overrides)).data


# ---------------------------------------------------------------- shapes
def test_shapes_are_deterministic_in_the_seed():
    a_images, a_labels = make_shapes(64, 32, seed=3)
    b_images, b_labels = make_shapes(64, 32, seed=3)
    c_images, _ = make_shapes(64, 32, seed=4)
    assert torch.equal(a_images, b_images) and torch.equal(a_labels, b_labels)
    assert not torch.equal(a_images, c_images)
    assert a_images.dtype == torch.uint8 and a_images.shape == (64, 3, 32, 32)


def test_shapes_splits_differ_and_cover_every_class():
    train = build_dataset(data_config("data.train_size=200"), "train")
    test = build_dataset(data_config("data.test_size=200"), "test")
    assert train.classes == test.classes == CLASSES
    assert set(train.labels.tolist()) == set(range(len(CLASSES)))
    assert not torch.equal(train.get(slice(0, 50))[0], test.get(slice(0, 50))[0])


def test_shapes_resolution_is_configurable():
    images, _ = build_dataset(data_config("data.resolution=48", "data.train_size=8"), "train").get(slice(None))
    assert images.shape == (8, 3, 48, 48)


# ---------------------------------------------------------------- folder and zip
COLOURS = {"cat": (255, 0, 0), "dog": (0, 0, 255)}


def write_images(root, per_class=3, size=(40, 30)):
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", size, colour).save(root / name / f"{i}.png")


def zip_folder(folder, target):
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(folder.rglob("*.png")):
            archive.write(path, path.relative_to(folder).as_posix())
    return target


def check_labels(images):
    assert images.classes == ["cat", "dog"]
    pixels, labels = images.get(slice(None))
    assert pixels.shape == (6, 3, 16, 16)  # 40x30 resized and centre-cropped
    for image, label in zip(pixels, labels):
        expected = COLOURS[images.classes[label]]
        assert tuple(image[:, 8, 8].tolist()) == expected


# data.holdout=0: every image stays in the train split (holding out is tests/test_data_holdout.py's).
def test_folder_gives_first_level_subfolders_as_labels(tmp_path):
    write_images(tmp_path / "train")
    check_labels(build_dataset(data_config("data.name=folder", f"data.path={tmp_path / 'train'}",
                                           "data.resolution=16", "data.holdout=0"), "train"))


def test_zip_gives_the_same_labels(tmp_path):
    write_images(tmp_path / "src")
    archive = zip_folder(tmp_path / "src", tmp_path / "train.zip")
    check_labels(build_dataset(data_config("data.name=folder", f"data.path={archive}",
                                           "data.resolution=16", "data.holdout=0"), "train"))


@pytest.mark.parametrize("layout", ["zips", "folders"])
def test_test_split_is_found_beside_the_train_split(tmp_path, layout):
    write_images(tmp_path / "src_train", per_class=3)
    write_images(tmp_path / "src_test", per_class=1)
    if layout == "zips":  # what shared/data/cifar10/unpack.py writes
        zip_folder(tmp_path / "src_train", tmp_path / "train.zip")
        zip_folder(tmp_path / "src_test", tmp_path / "test.zip")
        paths = [tmp_path, tmp_path / "train.zip"]
    else:
        (tmp_path / "src_train").rename(tmp_path / "train")
        (tmp_path / "src_test").rename(tmp_path / "test")
        paths = [tmp_path, tmp_path / "train"]
    for path in paths:  # the parent folder, or the train split itself
        cfg = data_config("data.name=folder", f"data.path={path}", "data.resolution=16")
        assert len(build_dataset(cfg, "train")) == 6
        assert len(build_dataset(cfg, "test")) == 2


def test_missing_test_split_is_named_when_nothing_is_held_out(tmp_path):
    write_images(tmp_path / "only")
    cfg = data_config("data.name=folder", f"data.path={tmp_path / 'only'}", "data.resolution=16",
                      "data.holdout=0")
    with pytest.raises(DataError, match="no test split.*data.holdout=0"):
        build_dataset(cfg, "test")


def test_corrupt_image_error_names_the_file(tmp_path):
    write_images(tmp_path / "train")
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    cfg = data_config("data.name=folder", f"data.path={tmp_path / 'train'}", "data.resolution=16")
    with pytest.raises(DataError, match=r"dog/broken\.png"):
        build_dataset(cfg, "train")


def test_every_unusable_image_is_named_in_one_pass_up_to_a_cap(tmp_path, monkeypatch):
    from ssgen.data import folder

    write_images(tmp_path / "train")
    for name in ("a", "b", "c"):
        (tmp_path / "train" / "dog" / f"broken_{name}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    cfg = data_config("data.name=folder", f"data.path={tmp_path / 'train'}", "data.resolution=16")
    with pytest.raises(DataError, match=r"^3 images in .* cannot be used.*broken_a\.png.*broken_b\.png.*broken_c\.png"):
        build_dataset(cfg, "train")
    monkeypatch.setattr(folder, "UNUSABLE_NAMED", 2)
    with pytest.raises(DataError) as refused:
        build_dataset(cfg, "train")
    assert "broken_b.png" in str(refused.value) and "broken_c.png" not in str(refused.value)
    assert str(refused.value).endswith("and 1 more")


# ---------------------------------------------------------------- batch stream
def stream_of(n=20, batch=4, **kw):
    images = build_dataset(data_config(f"data.train_size={n}"), "train")
    return BatchStream(images, batch, torch.device("cpu"), flip=True, seed=0, **kw)


def same_batch(a, b) -> bool:
    return torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels) and torch.equal(a.indices, b.indices)


def test_an_epoch_visits_every_image_once_with_its_label_and_row():
    stream = stream_of(n=20, batch=4)
    pool, labels = stream.images.get(slice(None))
    pool = pool.float() / 127.5 - 1
    batches = [stream() for _ in range(5)]
    seen = torch.cat([b.images for b in batches])
    # each batch row is one pool image, possibly mirrored
    matches = [int(((pool == row).all((1, 2, 3)) | (pool == row.flip(2)).all((1, 2, 3))).nonzero()[0])
               for row in seen]
    assert sorted(matches) == list(range(20))
    assert matches == torch.cat([b.indices for b in batches]).tolist()  # indices name the rows
    assert torch.equal(torch.cat([b.labels for b in batches]), labels[matches])


def test_stream_resumes_exactly_from_its_state():
    a, b = stream_of(), stream_of()
    for _ in range(7):  # into the second epoch
        a()
    b.load_state_dict(a.state_dict())
    for _ in range(6):
        assert same_batch(a(), b())


def test_streamed_and_resident_batches_are_the_same():
    resident, streamed = stream_of(device_resident="yes"), stream_of(device_resident="no", workers=0)
    for _ in range(8):
        assert same_batch(resident(), streamed())


def test_ranks_take_disjoint_halves_of_the_global_batch():
    whole = stream_of(batch=8)
    halves = [stream_of(batch=8, rank=r, world_size=2) for r in range(2)]
    for _ in range(3):
        full, parts = whole(), [h() for h in halves]
        for field in ("images", "labels", "indices"):
            assert torch.equal(getattr(full, field), torch.cat([getattr(p, field) for p in parts]))


def test_fewer_images_than_a_batch_is_an_error():
    with pytest.raises(DataError, match="fewer than trainer.batch_size=32"):
        stream_of(n=10, batch=32)


# ---------------------------------------------------------------- stale statistics
def stored_png(path, colour):
    """A solid image saved without compression: its size is the same in any colour."""
    Image.new("RGB", (40, 30), colour).save(path, format="PNG", compress_level=0)
    return path


def blue_png_of_the_same_size(path):
    """Blue bytes of the size of the red image `stored_png` wrote at `path`."""
    data = stored_png(path.with_name("blue.tmp"), COLOURS["dog"]).read_bytes()
    path.with_name("blue.tmp").unlink()
    assert len(data) == path.stat().st_size
    return data


def replace_keeping_size_and_times(path, data):
    """A copy with the old times put back (cp -p, then mv), renamed over `path`: name, size and mtime stay."""
    stat = path.stat()
    copy = path.with_name(path.name + ".new")
    copy.write_bytes(data)
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(copy, path)
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)


def edit_in_place_keeping_size_and_times(path, data):
    stat = path.stat()
    time.sleep(0.05)  # past the kernel's coarse clock tick, so that the write's ctime is a new one
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_lazily_read_folder_notices_a_file_replaced_with_its_name_size_and_mtime(tmp_path, monkeypatch):
    write_images(tmp_path / "train")
    stored_png(tmp_path / "train" / "cat" / "0.png", COLOURS["cat"])
    monkeypatch.setattr(folder, "IN_MEMORY_LIMIT", 0)  # read on demand, as folders over the limit are
    cfg = data_config("data.name=folder", f"data.path={tmp_path / 'train'}", "data.resolution=16", "data.holdout=0")
    before = build_dataset(cfg, "train")
    assert not before.in_memory
    cat = tmp_path / "train" / "cat" / "0.png"
    replace_keeping_size_and_times(cat, blue_png_of_the_same_size(cat))
    after = build_dataset(cfg, "train")
    assert after.fingerprint() != before.fingerprint()  # the FD cache's key: statistics recomputed
    assert tuple(after.get(slice(0, 1))[0][0, :, 8, 8].tolist()) == COLOURS["dog"]


def test_the_in_memory_cache_notices_an_image_edited_in_place(tmp_path):
    write_images(tmp_path / "train")
    stored_png(tmp_path / "train" / "cat" / "0.png", COLOURS["cat"])
    cfg = data_config("data.name=folder", f"data.path={tmp_path / 'train'}", "data.resolution=16", "data.holdout=0")
    before = build_dataset(cfg, "train")
    assert before.in_memory
    cat = tmp_path / "train" / "cat" / "0.png"
    edit_in_place_keeping_size_and_times(cat, blue_png_of_the_same_size(cat))
    after = build_dataset(cfg, "train")  # the same process: a notebook measuring twice
    assert tuple(after.get(slice(0, 1))[0][0, :, 8, 8].tolist()) == COLOURS["dog"]
    assert after.fingerprint() != before.fingerprint()
    assert build_dataset(cfg, "train") is after  # unchanged files: decoded once
