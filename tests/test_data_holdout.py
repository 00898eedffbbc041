"""A folder with no test split: a seeded, class-balanced share held out as the test split, kept out
of training, recorded and reused; flat folders; the messages and errors (ssgen/data/holdout.py)."""

import zipfile

import pytest
import torch
from PIL import Image

from ssgen.config import load_config
from ssgen.data import build_dataset, choose_holdout, folder, holdout_text, missing_labels, parse_holdout
from ssgen.data.holdout import choose_members, class_share
from ssgen.errors import ConfigError, DataError

CLASSES = ["cat", "dog", "owl"]


def write_image(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def photos(root, per_class=20, first=0, classes=CLASSES):
    """One 8x8 PNG per (class c, index i), its colour (40 + 80c, 8i, 7) unique, so pixels name the file."""
    for c, name in enumerate(classes):
        for i in range(first, first + per_class):
            write_image(root / name / f"{i}.png", (40 + 80 * c, 8 * i, 7))
    return root


def flat_photos(root, count):
    for i in range(count):
        write_image(root / f"{i}.png", (40, 8 * i, 7))
    return root


def data(path, *overrides):
    return load_config(None, ["data.name=folder", f"data.path={path}", "data.resolution=8", *overrides]).data


def names(images):
    """The member paths of a set of `photos` images, read back from their colours."""
    pixels, labels = images.get(slice(None))
    found = []
    for (red, green, _), label in zip(pixels[:, :, 4, 4].tolist(), labels.tolist()):
        name = CLASSES[(red - 40) // 80]
        assert label < 0 or images.classes[label] == name  # labels agree with the folders
        found.append(f"{name}/{green // 8}.png")
    assert len(set(found)) == len(found)
    return set(found)


def test_held_out_share_is_class_balanced_and_kept_out_of_training(tmp_path):
    root = photos(tmp_path / "photos")
    cfg = data(root)
    holdout = choose_holdout(cfg)
    train, test = (build_dataset(cfg, split, holdout) for split in ("train", "test"))
    assert len(test) == 6 and len(train) == 54
    assert names(test) == set(holdout.members)
    assert not names(train) & names(test)
    assert names(train) | names(test) == {f"{c}/{i}.png" for c in CLASSES for i in range(20)}
    assert train.classes == test.classes == CLASSES
    assert sorted(test.labels.tolist()) == [0, 0, 1, 1, 2, 2]  # 10% of each class
    assert names(build_dataset(cfg, "test")) == names(test)  # no holdout passed: the same choice


def test_the_message_says_so_in_one_line(tmp_path):
    root = photos(tmp_path / "photos")
    assert choose_holdout(data(root)).message == (
        f"data: no test split beside {root}; holding out 10% (6 of 60 images, class-balanced, seed 0) "
        "as the test split for the probe and FD")


def test_the_choice_is_seeded_and_depends_only_on_members_labels_fraction_and_seed():
    members = [f"{c}/{i}.png" for c in "ab" for i in range(5)] + ["x.png", "y.png", "z.png"]
    labels = [0] * 5 + [1] * 5 + [-1] * 3
    # Fixed answers: sha256 ranks the same on every machine and in every process.
    assert choose_members(members, labels, 0.4, seed=0) == ["a/0.png", "a/1.png", "b/1.png", "b/2.png",
                                                            "x.png"]
    assert choose_members(members, labels, 0.4, seed=1) == ["a/0.png", "a/2.png", "b/0.png", "b/4.png",
                                                            "y.png"]
    shuffled = list(zip(members, labels))[::-1]
    assert choose_members([m for m, _ in shuffled], [label for _, label in shuffled], 0.4, seed=0) == \
        choose_members(members, labels, 0.4, seed=0)


def test_a_zip_holds_out_alike_in_memory_and_decoded_on_demand(tmp_path, monkeypatch):
    root = photos(tmp_path / "photos")
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(root.rglob("*.png")):
            zf.write(path, path.relative_to(root).as_posix())
    holdout = choose_holdout(data(archive))
    assert holdout.members == choose_holdout(data(root)).members
    in_memory = [build_dataset(data(archive), split, holdout) for split in ("train", "test")]
    monkeypatch.setattr(folder, "IN_MEMORY_LIMIT", 0)
    monkeypatch.setattr(folder, "_decoded", {})  # decoded once per process: forget the in-memory sets
    on_demand = [build_dataset(data(archive), split, holdout) for split in ("train", "test")]
    assert not on_demand[0].in_memory
    for kept, streamed in zip(in_memory, on_demand):
        assert torch.equal(kept.get(slice(None))[0], streamed.get(slice(None))[0])
    assert on_demand[0].fingerprint() != on_demand[1].fingerprint()


def test_different_seeds_hold_out_different_images(tmp_path):
    root = photos(tmp_path / "photos")
    assert choose_holdout(data(root)).members != choose_holdout(data(root, "data.seed=1")).members


def test_tiny_classes_keep_a_training_image():
    assert [class_share(n, 0.1) for n in (1, 2, 3, 10, 20, 25)] == [0, 1, 1, 1, 2, 3]
    assert [class_share(n, 0.5) for n in (2, 3, 4, 5)] == [1, 2, 2, 3]  # half rounds up
    assert [class_share(n, 0.9) for n in (2, 3)] == [1, 2]  # never a class's last image, whatever the share


def test_a_single_image_class_stays_in_training_and_is_named(tmp_path):
    root = photos(tmp_path / "photos")
    write_image(root / "yak" / "0.png", (0, 0, 0))
    holdout = choose_holdout(data(root))
    assert len(holdout.members) == 6 and not any(m.startswith("yak/") for m in holdout.members)
    assert ("(6 of 61 images, class-balanced, seed 0; 1 single-image class kept for training only)"
            in holdout.message)


def test_the_recorded_choice_is_reused_after_images_are_added(tmp_path):
    root = photos(tmp_path / "photos")
    cfg = data(root)
    holdout = choose_holdout(cfg)
    record = holdout_text(holdout.members)
    photos(root, per_class=8, first=20)  # 28 a class now: a fresh choice would hold out 3 a class
    assert choose_holdout(cfg).members != holdout.members
    reused = choose_holdout(cfg, parse_holdout(record))
    assert reused.members == holdout.members
    assert reused.message == (f"data: the run's recorded holdout (6 of 84 images in {root}) is the test "
                              "split for the probe and FD")
    train, test = (build_dataset(cfg, split, reused) for split in ("train", "test"))
    assert names(test) == set(holdout.members)
    assert len(train) == 78 and {f"{c}/{i}.png" for c in CLASSES for i in range(20, 28)} <= names(train)


def test_a_recorded_image_that_is_gone_is_an_error(tmp_path):
    root = photos(tmp_path / "photos")
    record = choose_holdout(data(root)).members
    gone = record[0]
    (root / gone).unlink()
    with pytest.raises(DataError, match=rf"1 of the run's 6 held-out test images are no longer in .*'{gone}'"):
        choose_holdout(data(root), record)


def test_a_record_that_takes_a_whole_class_is_an_error(tmp_path):
    root = photos(tmp_path / "photos")
    owls = [f"owl/{i}.png" for i in range(20)]
    with pytest.raises(DataError, match="take all 20 images of class 'owl' in .*leaving none for training"):
        choose_holdout(data(root), owls)


def test_holdout_zero_keeps_the_missing_test_split_error(tmp_path):
    root = photos(tmp_path / "photos")
    cfg = data(root, "data.holdout=0")
    assert choose_holdout(cfg).members == () and choose_holdout(cfg).message == ""
    assert len(build_dataset(cfg, "train")) == 60
    with pytest.raises(DataError, match=r"has no test split; expected test\.zip or test/ .*data\.holdout=0"):
        build_dataset(cfg, "test")


def test_a_run_that_recorded_no_holdout_gets_none(tmp_path):
    """A run without a record (it predates holding out) trains on every image: none is held out now."""
    root = photos(tmp_path / "photos")
    holdout = choose_holdout(data(root), recorded=[])
    assert holdout.members == () and len(build_dataset(data(root), "train", holdout)) == 60
    with pytest.raises(DataError, match="has no test split"):
        build_dataset(data(root), "test", holdout)


def test_a_test_split_beside_the_folder_is_used_as_is(tmp_path):
    photos(tmp_path / "train")
    photos(tmp_path / "test", per_class=2, first=20)
    cfg = data(tmp_path)
    assert choose_holdout(cfg).members == () and choose_holdout(cfg).message == ""
    assert len(build_dataset(cfg, "train")) == 60
    assert names(build_dataset(cfg, "test")) == {f"{c}/{i}.png" for c in CLASSES for i in (20, 21)}


def test_a_flat_folder_trains_without_labels_and_holds_out_for_fd(tmp_path):
    root = flat_photos(tmp_path / "flat", 30)
    holdout = choose_holdout(data(root))
    assert holdout.message == (f"data: no test split beside {root}; holding out 10% (3 of 30 images, seed 0) "
                               "as the test split for FD (no class subfolders, so no probe)")
    train = build_dataset(data(root), "train", holdout)
    assert len(train) == 27 and train.classes == [] and set(train.labels.tolist()) == {-1}
    assert len(build_dataset(data(root), "test", holdout)) == 3
    assert missing_labels(train) == f"{root} has no class subfolders, so there are no labels"
    assert missing_labels(build_dataset(data(photos(tmp_path / "photos")), "train")) is None


def test_too_few_images_to_hold_out_trains_on_all_and_names_the_numbers(tmp_path):
    root = photos(tmp_path / "photos", per_class=9, classes=["cat"])
    write_image(root / "dog" / "0.png", (0, 0, 0))
    holdout = choose_holdout(data(root))
    assert holdout.members == () and holdout.message == ""
    assert len(build_dataset(data(root), "train", holdout)) == 10
    with pytest.raises(DataError, match=r"data\.holdout=0\.1 holds out 1 of the 10 images in .*at least 2"):
        build_dataset(data(root), "test", holdout)


def test_the_record_is_one_member_a_line():
    members = ("cat/0.png", "dog/a b.png")
    assert holdout_text(members) == "cat/0.png\ndog/a b.png\n"
    assert parse_holdout(holdout_text(members)) == list(members)
    with pytest.raises(DataError, match="line break"):
        holdout_text(["cat/x\ny.png"])


def test_holdout_fraction_is_ranged():
    with pytest.raises(ConfigError, match=r"data\.holdout: 0\.6 is out of range; expected <= 0\.5"):
        load_config(None, ["data.holdout=0.6"])


def test_datasets_with_their_own_test_split_hold_nothing_out():
    cfg = load_config(None, ["data.name=shapes"]).data
    assert choose_holdout(cfg).members == ()
    with pytest.raises(DataError, match="applies to data.name=folder, not data.name=shapes"):
        choose_holdout(cfg, ["cat/0.png"])
