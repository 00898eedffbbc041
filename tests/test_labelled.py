"""data.labels: a seeded, class-balanced labelled subset; the rest unlabelled (-1) in the batch
stream; a stream of labelled batches of its own; recorded with the run and reused on resume."""

import pytest
import torch

from ssgen.checkpoint import LABELLED_FILE
from ssgen.data import BatchStream
from ssgen.data.base import ImageSet
from ssgen.data.labelled import labelled_rows, parse_labelled, per_class_counts
from ssgen.errors import ConfigError, DataError
from small_runs import QUICK, TINY

LABELS = torch.arange(10).repeat_interleave(50)  # 10 classes of 50, sorted like an image folder


def image_set(labels=LABELS):
    images = torch.arange(len(labels), dtype=torch.uint8)[:, None, None, None].expand(-1, 3, 8, 8).contiguous()
    return ImageSet("toy", "train", 8, [str(c) for c in range(10)], labels.clone(), images=images)


def test_a_count_is_labels_in_all_and_a_share_is_per_class():
    assert per_class_counts([50] * 10, 40) == [4] * 10
    assert per_class_counts([50] * 10, 43) == [5, 5, 5, 4, 4, 4, 4, 4, 4, 4]  # the remainder: first classes
    assert per_class_counts([50, 20, 7], 0.1) == [5, 2, 1]  # at least one a class
    assert per_class_counts([50, 20], 0) == [50, 20]


def test_the_labelled_subset_is_balanced_seeded_and_disjoint_from_the_unlabelled_rest():
    rows = labelled_rows(LABELS, 40, seed=0)
    assert torch.equal(torch.bincount(LABELS[rows]), torch.full((10,), 4))
    assert torch.equal(rows, labelled_rows(LABELS, 40, seed=0))
    assert not torch.equal(rows, labelled_rows(LABELS, 40, seed=1))
    unlabelled = torch.ones(len(LABELS), dtype=torch.bool)
    unlabelled[rows] = False
    assert len(rows) + int(unlabelled.sum()) == len(LABELS) and not unlabelled[rows].any()
    assert torch.equal(torch.bincount(LABELS[labelled_rows(LABELS, 0.1, seed=0)]), torch.full((10,), 5))


@pytest.mark.parametrize("spec, error, words", [
    (-1, ConfigError, "data.labels=-1"), (40.5, ConfigError, "whole number"),
    (5, ConfigError, "fewer labels than the 10 classes"), (600, DataError, "which has 50 images"),
])
def test_bad_label_counts_are_clear_errors(spec, error, words):
    with pytest.raises(error, match=words):
        labelled_rows(LABELS, spec, seed=0)


def test_a_record_naming_rows_the_data_lacks_is_refused():
    assert torch.equal(parse_labelled("3\n7\n", 10), torch.tensor([3, 7]))
    with pytest.raises(DataError, match="names row 12.*has 10 images"):
        parse_labelled("3\n12\n", 10)


def test_the_stream_hides_unlabelled_labels_and_draws_labelled_batches_of_its_own():
    rows = labelled_rows(LABELS, 40, seed=0)
    stream = BatchStream(image_set(), 16, torch.device("cpu"), flip=False, seed=0, labelled=rows)
    chosen = torch.zeros(len(LABELS), dtype=torch.bool)
    chosen[rows] = True
    for _ in range(5):
        batch = stream()
        assert torch.equal(batch.labels >= 0, chosen[batch.indices])
        assert torch.equal(batch.labels[batch.labels >= 0], LABELS[batch.indices][batch.labels >= 0])
        labelled = stream.labelled()
        assert chosen[labelled.indices].all() and torch.equal(labelled.labels, LABELS[labelled.indices])
        # the pixels are the rows' own (each toy image holds its row number, mod 256)
        assert torch.equal(((labelled.images[:, 0, 0, 0] + 1) * 127.5).round().long(), labelled.indices % 256)
    seen = torch.cat([stream.labelled().indices for _ in range(10)])
    assert set(seen.tolist()) == set(rows.tolist())  # every labelled image comes round


@pytest.mark.e2e
def test_a_labelled_stream_resumes_exactly():
    rows = labelled_rows(LABELS, 40, seed=0)
    stream = BatchStream(image_set(), 16, torch.device("cpu"), flip=True, seed=0, labelled=rows)
    for _ in range(3):
        stream(), stream.labelled()
    state = stream.state_dict()
    expected = [(stream().indices, stream.labelled().indices) for _ in range(4)]
    resumed = BatchStream(image_set(), 16, torch.device("cpu"), flip=True, seed=0, labelled=rows)
    resumed.load_state_dict(state)
    for main, labelled in expected:
        assert torch.equal(resumed().indices, main) and torch.equal(resumed.labelled().indices, labelled)


@pytest.mark.e2e
def test_a_run_records_its_labelled_subset_and_keeps_it_on_resume(ssgen, tmp_path):
    run = tmp_path / "run"
    args = ["train", "--config", QUICK, *[x for o in [*TINY, "trainer.steps=4", "trainer.checkpoint_every=2",
                                                      f"run_dir={run}", "data.labels=20"] for x in ("--set", o)]]
    code, out, err = ssgen(*args)
    assert code == 0, err
    assert "data.labels=20: 20 labelled images (2 a class), 44 unlabelled" in out + err
    recorded = parse_labelled((run / LABELLED_FILE).read_text(), 64)
    assert len(recorded) == 20
    (run / LABELLED_FILE).write_text("".join(f"{r}\n" for r in recorded.tolist()[:10]))  # what the run used
    assert ssgen("train", "--resume", run, "--set", "trainer.steps=6", "--force")[0] == 0
    assert len(parse_labelled((run / LABELLED_FILE).read_text(), 64)) == 10  # read back, not chosen again
