"""The non-stationary classifier (SS-GAN, Chen et al. 2019, Figure 2): the one-vs-all label schedule
of the classifiers (method.label_schedule), its class-balanced loss, the current task's held-out
balanced accuracy, the 10-class probe beside it, and a resumed run that trains the same tasks."""

import copy
import re

import pytest
import torch
import torch.nn.functional as F

from ssgen.checkpoint import list_checkpoints, read_checkpoint
from ssgen.config import HeldOutEvalConfig, load_config
from ssgen.data.base import ImageSet
from ssgen.eval.accuracy import AccuracyEvaluator
from ssgen.eval.metrics import read_metrics
from ssgen.methods.semisup.base import LabelScheduleConfig, OneVsAll, balanced_accuracy
from ssgen.rebuild import build_method
from ssgen.step import Batch, Progress
from small_runs import CONFIGS, set_options, quiet_train

PLAIN, ROTATION = CONFIGS / "nonstationary_plain_shapes.yaml", CONFIGS / "nonstationary_rotation_shapes.yaml"
# Tasks of 2 steps, a width-8 trunk, few images, one thread, bitwise-deterministic.
TINY = ["data.train_size=80", "data.test_size=40", "trainer.batch_size=8", "trainer.threads=1",
        "trainer.deterministic=true", "trainer.log_every=1", "trainer.keep_checkpoints=5",
        "method.encoder.width=8", "method.label_schedule.every=2", "eval.accuracy.every=2",
        "eval.accuracy.test_size=40", "eval.probe.every=0"]

pytestmark = pytest.mark.usefixtures("one_thread")


def schedule(every=3, order="fixed", seed=0, classes=4):
    return OneVsAll(LabelScheduleConfig(kind="one_vs_all", every=every, order=order, seed=seed), classes)


def test_tasks_switch_after_every_k_steps_and_cycle_through_the_classes():
    tasks = [schedule().positive_at(step) for step in range(1, 26)]
    assert tasks == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3 + [0]
    # Step m * every ends task m - 1: the evaluation after it scores the task just trained.
    assert schedule().positive_at(3) == 0 and schedule().positive_at(4) == 1


def test_the_seeded_order_is_a_permutation_that_follows_the_seed():
    orders = {seed: schedule(order="seeded", seed=seed, classes=10).order for seed in range(4)}
    assert all(sorted(order) == list(range(10)) for order in orders.values())
    assert orders[0] == schedule(order="seeded", seed=0, classes=10).order
    assert len({tuple(order) for order in orders.values()}) == 4
    assert schedule(every=5, order="seeded", seed=1, classes=10).positive_at(6) == orders[1][1]


def test_balanced_accuracy_is_the_mean_recall_of_the_classes_present():
    labels = torch.tensor([1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    assert balanced_accuracy(torch.zeros(10, dtype=torch.long), labels).item() == 0.5  # always "all": 90% top-1
    predicted = torch.tensor([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    assert balanced_accuracy(predicted, labels).item() == pytest.approx((1 + 8 / 9) / 2)
    assert balanced_accuracy(torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long)).item() == 1.0


def method(*sets, config=PLAIN):
    torch.manual_seed(0)
    return build_method(load_config(config, [*TINY, *sets]), torch.device("cpu"))


def test_the_step_trains_the_current_class_against_the_rest_with_balanced_weights():
    classifier = method("method.label_schedule.order=fixed")
    assert classifier.net.head.out_features == 2
    images, labels = torch.rand(8, 3, 32, 32) * 2 - 1, torch.tensor([0, 1, 2, 3, 1, 1, 5, 9])
    logged = [classifier.train_step(lambda: Batch(images, labels, torch.arange(8)), Progress(step, 8))
              for step in range(1, 6)]
    assert [int(logs["classifier/task_class"]) for logs in logged] == [0, 0, 1, 1, 2]
    # Class 1 (3 of 8) against the rest, each positive weighted 9 (classes - 1) to each negative's 1.
    classifier.task_class.fill_(1)
    with torch.no_grad():
        logits = classifier.net.eval()(images)
    loss, _ = classifier.supervised_loss(logits, labels)
    target = (labels == 1).long()
    weights = torch.where(target == 1, 9.0, 1.0)
    expected = (weights * F.cross_entropy(logits, target, reduction="none")).sum() / weights.sum()
    torch.testing.assert_close(loss, expected)


def test_the_compiled_step_reads_the_class_from_its_buffer_without_recompiling():
    eager = method("method.label_schedule.order=fixed", "method.augment=none")
    compiled = copy.deepcopy(eager)
    eager.optimizers(), compiled.optimizers()
    compiled.compile_steps(backend="aot_eager")
    images, labels = torch.rand(8, 3, 32, 32) * 2 - 1, torch.arange(8) % 4
    torch._dynamo.utils.counters.clear()
    for step in range(1, 6):  # across two task switches
        a, b = (m.train_step(lambda: Batch(images, labels, torch.arange(8)), Progress(step, 5))
                for m in (eager, compiled))
        torch.testing.assert_close(a["loss/supervised"], b["loss/supervised"], rtol=1e-4, atol=1e-5)
        assert int(b["classifier/task_class"]) == eager.one_vs_all.positive_at(step)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1


class Oracle(torch.nn.Module):
    """Says "yes" exactly for the images of class 3 (each image's pixels hold its label)."""
    one_vs_all = schedule(every=10)  # classes 0, 1, 2, 3: class 3 is the task of steps 31..40

    def classify(self, x):
        is_three = ((x[:, 0, 0, 0] + 1) * 127.5).round() == 3
        return torch.stack([(~is_three).float(), is_three.float()], 1)


def test_the_held_out_accuracy_scores_the_task_of_the_period_the_step_ended():
    labels = torch.arange(40) % 4
    test_set = ImageSet("digits", "test", 4, ["0", "1", "2", "3"], labels,
                        images=labels.to(torch.uint8)[:, None, None, None].expand(40, 3, 4, 4).contiguous())
    evaluator = AccuracyEvaluator(HeldOutEvalConfig(every=10, test_size=40, batch_size=16), test_set,
                                  torch.device("cpu"), 0)
    metrics, protocol = evaluator(Oracle(), 40)  # after step 40, the last of class 3's period
    assert metrics == {"accuracy/task_balanced": 1.0, "task/class": 3.0}
    # Scored on the next period's class 0, the same predictions are 1/3: no class-0 image found, and
    # 20 of the 30 others rightly rejected.
    assert evaluator(Oracle(), 41)[0] == {"accuracy/task_balanced": pytest.approx(1 / 3), "task/class": 0.0}
    assert evaluator(Oracle(), 0)[0]["task/class"] == 0.0  # before training: the first task
    assert protocol["metric"] == "current task's balanced accuracy (one class vs all)"
    assert protocol["task_every"] == 10 and protocol["task_order"] == [0, 1, 2, 3]
    assert evaluator(Oracle(), 41)[1] == protocol  # one protocol for all tasks: one curve


def trained(run):
    """{step: the class its training step was given}, from the step logs."""
    return {r["step"]: r["metrics"]["classifier/task_class"] for r in read_metrics(run)
            if "classifier/task_class" in r["metrics"]}


def scored(run):
    """(step, metrics, protocol) of each held-out task evaluation."""
    return [(r["step"], r["metrics"], r["protocol"]) for r in read_metrics(run) if "task/class" in r["metrics"]]


@pytest.mark.parametrize("config", [PLAIN, ROTATION], ids=["plain", "rotation"])
@pytest.mark.e2e
def test_a_resumed_run_trains_and_scores_the_same_tasks_as_an_unbroken_one(config, ssgen, tmp_path):
    run = tmp_path / "run"
    sets = [f"run_dir={run}", *TINY, "trainer.steps=8", "trainer.checkpoint_every=3"]
    code, out, err = ssgen("train", "--config", config, "--no-progress", *set_options(sets))
    assert code == 0, out + err
    order = OneVsAll(LabelScheduleConfig(kind="one_vs_all", every=2), 10)
    assert trained(run) == {step: order.positive_at(step) for step in range(1, 9)}
    before = scored(run)
    assert [(step, m["task/class"]) for step, m, _ in before] == \
        [(t, order.positive_at(max(t, 1))) for t in (0, 2, 4, 6, 8)]
    final = read_checkpoint(list_checkpoints(run)[-1])
    list_checkpoints(run)[-1].unlink()  # as if killed after step 6
    code, out, err = ssgen("train", "--resume", run, "--no-progress")
    assert code == 0 and "from step 6" in out + err, out + err
    resumed = read_checkpoint(list_checkpoints(run)[-1])
    for key, value in final["method"].items():
        assert torch.equal(value, resumed["method"][key]), key
    assert scored(run) == before and trained(run) == {step: order.positive_at(step) for step in range(1, 9)}


def test_the_probe_classifies_all_ten_classes_while_the_head_is_two_way(tmp_path):
    from ssgen.eval import build_evaluators
    cfg = load_config(ROTATION, [*TINY, "eval.probe.every=2", "eval.probe.train_size=60", "eval.probe.test_size=30"])
    classifier = build_method(cfg, torch.device("cpu"))
    evaluators = build_evaluators(cfg, classifier, torch.device("cpu"), log=lambda m: None)
    probe = next(e for e in evaluators if e.name == "probe")
    metrics, protocol = probe(classifier, 2)
    assert classifier.net.head.out_features == 2
    assert probe.data.num_classes == 10 and len(probe.data.train_labels.unique()) == 10  # the data's labels
    assert set(metrics) == {"probe/encoder"} and protocol["metric"] == "linear probe top-1"


@pytest.mark.parametrize("overrides, words", [
    (["method.label_schedule.kind=random"], r"method.label_schedule.kind: 'random' is not one of none, one_vs_all"),
    (["method.label_schedule.every=0"], r"method.label_schedule.every: 0 is out of range; expected >= 1"),
    (["method.label_schedule.order=shuffled"], r"method.label_schedule.order: 'shuffled' is not one of seeded, fixed"),
    (["method.label_schedule.period=5"],
     r"method.label_schedule: unknown key 'period'; valid keys: kind, every, order, seed"),
    (["method.classes=2"], r"method.label_schedule.kind=one_vs_all with method.classes=2: expected the data's number "
                           r"of classes, at least 3"),
    (["method.name=pseudo_label"], r"method.label_schedule.kind=one_vs_all is for method.name supervised or s4l, "
                                   r"not pseudo_label"),
])
@pytest.mark.e2e
def test_bad_schedules_are_clear_errors(overrides, words, ssgen, tmp_path):
    sets = [f"run_dir={tmp_path / 'run'}", *TINY, *overrides]
    code, out, err = ssgen("train", "--config", PLAIN, "--no-progress", *set_options(sets))
    assert code != 0 and re.search(words, err), err
    assert not list_checkpoints(tmp_path / "run")


@pytest.mark.e2e
def test_the_report_draws_the_task_curve_and_tabulates_each_task_cycle_by_cycle(tmp_path):
    from ssgen.eval.report import write_report
    run = tmp_path / "plain"
    quiet_train(load_config(PLAIN, [f"run_dir={run}", *TINY, "trainer.steps=40", "eval.accuracy.every=1",
                                    "eval.probe.every=20", "eval.probe.train_size=40", "eval.probe.test_size=20"]))
    lines = write_report([run], tmp_path / "report").read_text().splitlines()
    assert (tmp_path / "report" / "nonstationary.png").is_file()
    table = lines[lines.index("| task (class) | cycle 1 | cycle 2 |") + 2:][:10]
    accuracy = {step: metrics["accuracy/task_balanced"] for step, metrics, _ in scored(run)}
    first = OneVsAll(LabelScheduleConfig(kind="one_vs_all", every=2), 10).order[0]
    # The first task's period of cycle 2 is steps 21 and 22.
    cycle1, cycle2 = (accuracy[1] + accuracy[2]) / 2, (accuracy[21] + accuracy[22]) / 2
    assert table[0] == f"| 1 ({first}) | {cycle1:.3f} | {cycle2:.3f} |"
    assert len(table) == 10 and all(row.startswith(f"| {task + 1} (") for task, row in enumerate(table))
