"""The weighted kNN monitor against a brute-force computation that sorts every similarity."""

import math

import pytest
import torch

from ssgen.eval.knn import knn_accuracy, protocol


def knn_by_sorting(train_x, train_y, test_x, test_y, num_classes, k, temperature):
    correct = 0
    for row, label in zip(test_x.tolist(), test_y.tolist()):
        similarities = []
        for other, other_label in zip(train_x.tolist(), train_y.tolist()):
            dot = sum(a * b for a, b in zip(row, other))
            norm = math.sqrt(sum(a * a for a in row)) * math.sqrt(sum(b * b for b in other))
            similarities.append((dot / norm, other_label))
        votes = [0.0] * num_classes
        for similarity, other_label in sorted(similarities, reverse=True)[:k]:
            votes[other_label] += math.exp(similarity / temperature)
        correct += votes.index(max(votes)) == label
    return correct / len(test_y)


@pytest.fixture
def features():
    """Three classes around their own centres, noisy enough that k and the weights matter."""
    torch.manual_seed(0)
    centres = torch.randn(3, 8)
    train_y, test_y = torch.randint(0, 3, (60,)), torch.randint(0, 3, (25,))
    return (centres[train_y] + 1.5 * torch.randn(60, 8), train_y,
            (centres[test_y] + 1.5 * torch.randn(25, 8)) * 7.0, test_y)  # test scale: cosine ignores it


@pytest.mark.parametrize("k, temperature", [(1, 0.1), (5, 0.1), (20, 0.5), (200, 0.1)])
def test_knn_matches_brute_force(features, k, temperature):
    train_x, train_y, test_x, test_y = features
    expected = knn_by_sorting(train_x, train_y, test_x, test_y, 3, k, temperature)
    assert knn_accuracy(train_x, train_y, test_x, test_y, 3, k=k, temperature=temperature, chunk=4) == expected
    assert knn_accuracy(train_x, train_y, test_x, test_y, 3, k=k, temperature=temperature) == expected


def test_k_beyond_the_train_set_uses_every_train_row(features):
    train_x, train_y, test_x, test_y = features
    every_row = knn_by_sorting(train_x, train_y, test_x, test_y, 3, len(train_x), 0.1)
    assert knn_accuracy(train_x, train_y, test_x, test_y, 3, k=1000) == every_row
    assert protocol(1000, 0.1, len(train_x), len(test_x))["k"] == len(train_x)


def test_perfectly_separated_classes_and_the_protocol():
    train_x, train_y = torch.eye(4).repeat(5, 1), torch.arange(4).repeat(5)
    assert knn_accuracy(train_x, train_y, torch.eye(4) * 3, torch.arange(4), 4, k=5) == 1.0
    assert protocol(200, 0.1, 50_000, 10_000) == {
        "metric": "kNN top-1", "train_size": 50_000, "test_size": 10_000, "k": 200, "temperature": 0.1,
        "classifier": "weighted kNN, k=200, cosine similarity, votes exp(sim / 0.1)"}


# ---------------------------------------------------------------- the monitor during training and in ssgen probe
@pytest.mark.e2e
def test_knn_monitor_during_training_and_in_ssgen_probe(ssgen, tmp_path):
    from ssgen.eval.metrics import read_metrics
    from small_runs import QUICK, TINY, set_options

    run = tmp_path / "run"
    sets = [*TINY, "trainer.steps=2", "data.test_size=32", "eval.knn.every=2", "eval.knn.train_size=64",
            "eval.knn.test_size=32", f"run_dir={run}"]
    code, _, err = ssgen("train", "--config", QUICK, *set_options(sets))
    assert code == 0, err
    floor, record = [r for r in read_metrics(run) if "knn/penultimate" in r["metrics"]]
    assert floor["step"] == 0 and record["step"] == 2  # step 0: the random-init network
    assert record["protocol"]["metric"] == "kNN top-1" and record["protocol"]["k"] == 64  # capped at the train size
    assert record["protocol"]["train_size"] == 64 and record["protocol"]["temperature"] == 0.1
    code, out, err = ssgen("probe", run, "--train-size", 64, "--test-size", 32, "--knn")
    assert code == 0, err
    assert "penultimate:" in out and "% kNN top-1" in out and '"metric": "kNN top-1"' in out
