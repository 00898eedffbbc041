"""The semi-supervised methods (ssgen/methods/semisup): their losses on known tensors, Meta Pseudo
Labels' teacher signal on a toy problem, Noisy Student's rounds, the test top-1 evaluator, and
every method trained through `ssgen train` on shapes and resumed bit for bit."""

import math
import sys
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssgen.checkpoint import list_checkpoints, read_checkpoint
from ssgen.config import load_config
from ssgen.eval.metrics import read_metrics
from ssgen.losses.semi import (consistency_kl, distillation_loss, entropy, linear_ramp, mpl_feedback,
                               pseudo_label_loss, soft_cross_entropy)
from ssgen.methods.semisup.meta_pseudo_labels import meta_pseudo_label_step
from ssgen.train.trainer import train
from small_runs import CONFIGS

METHODS = ["supervised", "pseudo_label", "entmin", "noisy_student", "meta_pseudo_labels", "s4l", "enaet", "distill"]
# Few images (10% labelled: one a class), a width-8 trunk, one thread, bitwise-deterministic.
TINY = ["data.train_size=80", "data.test_size=16", "trainer.batch_size=8", "trainer.threads=1",
        "trainer.deterministic=true", "trainer.log_every=1", "trainer.keep_checkpoints=5",
        "method.encoder.width=8", "eval.accuracy.test_size=16", "eval.probe.every=0"]
SMALLER = {"meta_pseudo_labels": ["method.teacher_encoder.width=8"], "enaet": ["method.hidden=8"],
           "noisy_student": ["method.rounds=2"]}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- losses on known tensors
def test_the_ramp_is_zero_then_linear_then_one():
    assert [linear_ramp(f, 0.2, 0.6) for f in (0.0, 0.19, 0.2, 0.4, 0.6, 0.9)] == pytest.approx([0, 0, 0, 0.5, 1, 1])
    assert linear_ramp(0.3, 0.3, 0.3) == 1.0 and linear_ramp(0.29, 0.3, 0.3) == 0.0


def test_pseudo_labels_count_only_rows_at_or_above_the_threshold():
    # Row 0: p = (0.9, 0.1) -> kept at 0.9, label 0; row 1: p = (0.4, 0.6) -> dropped at 0.9.
    logits = torch.tensor([[math.log(9.0), 0.0], [0.0, math.log(1.5)]], requires_grad=True)
    loss, kept = pseudo_label_loss(logits, threshold=0.9)
    assert kept.item() == 0.5
    assert loss.item() == pytest.approx(-math.log(0.9) / 2, rel=1e-6)  # the dropped row counts 0 in the mean
    loss.backward()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[0, 0] < 0  # row 0 pulled towards its own argmax
    assert pseudo_label_loss(logits, threshold=0.5)[1].item() == 1.0
    assert pseudo_label_loss(logits, threshold=0.95)[0].item() == 0.0


def test_entropy_is_log_k_for_uniform_and_zero_for_certain_predictions():
    assert entropy(torch.zeros(3, 4)).item() == pytest.approx(math.log(4))
    assert entropy(torch.tensor([[100.0, 0.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)
    p = torch.tensor([0.5, 0.25, 0.25])
    assert entropy(p.log()[None]).item() == pytest.approx(-(p * p.log()).sum().item())


def test_the_kl_term_against_its_formula_with_the_target_detached():
    target, logits = torch.tensor([[1.0, 0.0]], requires_grad=True), torch.tensor([[0.0, 0.0]], requires_grad=True)
    p = torch.tensor([math.e, 1.0]) / (math.e + 1)
    expected = (p * (p / 0.5).log()).sum().item()
    kl = consistency_kl(target, logits)
    assert kl.item() == pytest.approx(expected, rel=1e-6)
    kl.backward()
    assert target.grad is None and logits.grad is not None
    assert consistency_kl(logits, logits).item() == pytest.approx(0.0, abs=1e-7)


def test_the_distillation_temperature_softens_the_teachers_targets():
    teacher, student = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    for tau in (1.0, 2.0, 4.0):
        q = torch.tensor([2.0 / tau, 0.0]).softmax(0)
        log_p = torch.tensor([1.0 / tau, 0.0]).log_softmax(0)
        assert distillation_loss(student, teacher, tau).item() == pytest.approx(-(q * log_p).sum().item(), rel=1e-6)
    # A very hot teacher's targets are uniform: the loss is the student's CE against uniform.
    assert distillation_loss(student, teacher, 1e4).item() == pytest.approx(math.log(2), rel=1e-3)
    assert soft_cross_entropy(torch.zeros(1, 4), torch.full((1, 4), 0.25)).item() == pytest.approx(math.log(4))


# ---------------------------------------------------------------- Meta Pseudo Labels' teacher signal
def toy_mpl(pseudo_label: int):
    """One labelled point x = (1, 0) of class 0; the unlabelled point is the same image. The
    teacher's bias makes it pseudo-label `pseudo_label`; the student starts undecided."""
    torch.manual_seed(0)
    teacher, student = nn.Linear(2, 2), nn.Linear(2, 2)
    with torch.no_grad():
        teacher.weight.zero_(), student.weight.zero_(), student.bias.zero_()
        teacher.bias.copy_(torch.tensor([1.0, 0.0]) if pseudo_label == 0 else torch.tensor([0.0, 1.0]))
    optimizer = torch.optim.SGD(student.parameters(), lr=0.5)

    def update(loss):
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    x, y = torch.tensor([[1.0, 0.0]]), torch.tensor([0])
    loss, logs = meta_pseudo_label_step(teacher, student, update, x, y, x, x)
    return teacher, loss, logs


@pytest.mark.parametrize("pseudo_label", [0, 1])
def test_mpl_teacher_reinforces_a_helpful_pseudo_label_and_suppresses_a_harmful_one(pseudo_label):
    teacher, loss, logs = toy_mpl(pseudo_label)
    helpful = pseudo_label == 0  # the true class of the point
    assert (logs["mpl/feedback"] > 0) == helpful and logs["mpl/feedback"] != 0
    # The MPL term alone: gradient descent on it raises the pseudo-label's logit iff it helped.
    h = logs["mpl/feedback"]
    logits = teacher(torch.tensor([[1.0, 0.0]]))
    (h * F.cross_entropy(logits, torch.tensor([pseudo_label]))).backward()
    step = -teacher.bias.grad[pseudo_label]  # the change of that logit's bias under descent
    assert (step > 0) == helpful
    assert mpl_feedback(torch.tensor(1.0), torch.tensor(0.25)).item() == 0.75


# ---------------------------------------------------------------- Noisy Student's rounds
def noisy_student(rounds=2, *overrides):
    from ssgen.checkpoint import build_method
    cfg = load_config(CONFIGS / "noisy_student_shapes.yaml",
                      ["method.encoder.width=8", f"method.rounds={rounds}", "method.augment=none",
                       "method.dropout=0", "method.stochastic_depth=0", *overrides])
    torch.manual_seed(0)
    return build_method(cfg, torch.device("cpu"))


def test_noisy_student_rounds_hand_the_student_over_as_the_next_teacher():
    from ssgen.step import Batch, Progress
    method = noisy_student(2, "method.width_growth=1.5")
    assert [n.encoder.feature_dim for n in method.nets] == [8, 12, 18]  # equal or larger students
    images, labels = torch.rand(8, 3, 32, 32) * 2 - 1, torch.arange(8) % 10
    stream = lambda: Batch(images, labels, torch.arange(8))  # noqa: E731
    snapshot = lambda: [torch.cat([p.detach().flatten() for p in n.parameters()]).clone() for n in method.nets]  # noqa: E731
    total, changed_in = 6, []  # 2 steps a round
    used_as_teacher = []
    original = method.teacher_of
    method.teacher_of = lambda r: used_as_teacher.append(r - 1) or original(r)
    for step in range(1, total + 1):
        before = snapshot()
        method.train_step(stream, Progress(step, total))
        changed_in.append([not torch.equal(b, a) for b, a in zip(before, snapshot())])
        assert int(method.round) == (step - 1) // 2 and method.model is method.nets[int(method.round)]
    # Round r trains network r alone; rounds 1 and 2 are taught by networks 0 and 1.
    assert changed_in == [[True, False, False]] * 2 + [[False, True, False]] * 2 + [[False, False, True]] * 2
    assert used_as_teacher == [0, 0, 1, 1]
    assert original(2) is method.nets[1]


def test_noisy_student_restarts_the_learning_rate_schedule_each_round():
    from ssgen.step import Batch, Progress
    method = noisy_student(1)
    images = torch.rand(8, 3, 32, 32) * 2 - 1
    stream = lambda: Batch(images, torch.arange(8) % 10, torch.arange(8))  # noqa: E731
    rates = []
    for step in range(1, 5):
        method.train_step(stream, Progress(step, 4))
        rates.append(method.optimizers()[f"round{(step - 1) // 2}"].param_groups[0]["lr"])
    assert rates == [1e-3, 5e-4, 1e-3, 5e-4]  # linear decay over each round's 2 steps


# ---------------------------------------------------------------- every method through `ssgen train`
@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("teacher") / "supervised"
    train(load_config(CONFIGS / "supervised_shapes.yaml", [f"run_dir={run}", *TINY, "trainer.steps=2",
                                                           "eval.accuracy.every=0"]),
          progress=False, log=lambda m: None)
    return run


def method_args(method, run_dir, teacher_run):
    extra = [*SMALLER.get(method, []), *([f"method.teacher={teacher_run}"] if method == "distill" else [])]
    sets = [f"run_dir={run_dir}", *TINY, "trainer.steps=6", "trainer.checkpoint_every=3",
            "eval.accuracy.every=3", *extra]
    return ["train", "--config", CONFIGS / f"{method}_shapes.yaml", "--no-progress",
            *[arg for s in sets for arg in ("--set", s)]]


@pytest.mark.parametrize("method", METHODS)
def test_each_method_trains_on_shapes_is_evaluated_and_resumes_exactly(method, ssgen, tmp_path, teacher_run):
    run = tmp_path / method
    code, out, err = ssgen(*method_args(method, run, teacher_run))
    assert code == 0, out + err
    assert "labelled images (1 a class)" in out + err  # data.labels=0.1 of 80 shapes
    accuracy = [r for r in read_metrics(run) if "accuracy/top1" in r["metrics"]]
    assert [r["step"] for r in accuracy] == [0, 3, 6] and accuracy[0]["protocol"]["metric"] == "test top-1"
    losses = set().union(*(r["metrics"] for r in read_metrics(run)))
    assert "loss/total" in losses
    final = read_checkpoint(list_checkpoints(run)[-1])
    list_checkpoints(run)[-1].unlink()  # as if killed after step 3
    code, out, err = ssgen("train", "--resume", run, "--no-progress")
    assert code == 0 and "from step 3" in out + err, out + err
    resumed = read_checkpoint(list_checkpoints(run)[-1])
    assert resumed["step"] == 6
    for key, value in final["method"].items():
        assert torch.equal(value, resumed["method"][key]), key
    assert [r["metrics"]["accuracy/top1"] for r in read_metrics(run) if "accuracy/top1" in r["metrics"]] == \
           [r["metrics"]["accuracy/top1"] for r in accuracy]
