"""The semi-supervised methods (ssgen/methods/semisup): their losses on known tensors, Meta Pseudo
Labels' teacher signal on a toy problem, Noisy Student's rounds, the test top-1 evaluator, and
every method trained through `ssgen train` on shapes and resumed bit for bit."""

import math

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
from small_runs import CONFIGS, set_options, quiet_train

METHODS = ["supervised", "pseudo_label", "entmin", "noisy_student", "meta_pseudo_labels", "s4l", "enaet", "distill"]
# Few images (10% labelled: one a class), a width-8 trunk, one thread, bitwise-deterministic.
TINY = ["data.train_size=80", "data.test_size=16", "trainer.batch_size=8", "trainer.threads=1",
        "trainer.deterministic=true", "trainer.log_every=1", "trainer.keep_checkpoints=5",
        "method.encoder.width=8", "eval.accuracy.test_size=16", "eval.probe.every=0"]
SMALLER = {"meta_pseudo_labels": ["method.teacher_encoder.width=8"], "enaet": ["method.hidden=8"],
           "noisy_student": ["method.rounds=2"]}


pytestmark = pytest.mark.usefixtures("one_thread")


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
    from ssgen.rebuild import build_method
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


def test_noisy_student_noises_the_students_but_not_the_first_teacher():
    from ssgen.step import Batch, Progress
    method = noisy_student(2, "method.dropout=0.5", "method.stochastic_depth=0.2")
    assert [net.dropout.p for net in method.nets] == [0.0, 0.5, 0.5]
    assert [bool(net.hooks) for net in method.nets] == [False, True, True]
    # Round 0 sees the `augment` preset; the students' labelled and unlabelled images the `student_augment` one.
    seen = []
    method.augment = lambda x: seen.append("augment") or x
    method.noised = lambda x: seen.append("student_augment") or x
    images = torch.rand(8, 3, 32, 32) * 2 - 1
    stream = lambda: Batch(images, torch.arange(8) % 10, torch.arange(8))  # noqa: E731
    for step in (1, 3):  # one step of round 0, one of round 1
        method.train_step(stream, Progress(step, 3))
    assert seen == ["augment", "student_augment", "student_augment"]


# ---------------------------------------------------------------- every method through `ssgen train`
@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("teacher") / "supervised"
    quiet_train(load_config(CONFIGS / "supervised_shapes.yaml", [f"run_dir={run}", *TINY, "trainer.steps=2",
                                                                 "eval.accuracy.every=0"]))
    return run


def method_args(method, run_dir, teacher_run):
    extra = [*SMALLER.get(method, []), *([f"method.teacher={teacher_run}"] if method == "distill" else [])]
    sets = [f"run_dir={run_dir}", *TINY, "trainer.steps=6", "trainer.checkpoint_every=3",
            "eval.accuracy.every=3", *extra]
    return ["train", "--config", CONFIGS / f"{method}_shapes.yaml", "--no-progress",
            *set_options(sets)]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.e2e
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


# ---------------------------------------------------------------- bad configs
@pytest.mark.parametrize("method, overrides, words", [
    ("pseudo_label", ["method.threshold=1.5"], r"method.threshold: 1.5 is out of range; expected <= 1"),
    ("pseudo_label", ["method.ramp_start=0.8", "method.ramp_end=0.2"], r"ramp_start=0.8 is after .*ramp_end=0.2"),
    ("supervised", ["method.dropout=1.0"], r"method.dropout=1.0 is out of range; expected a probability in \[0, 1\)"),
    ("supervised", ["method.augment=strong"], r"method.augment: unknown preset 'strong'; valid: none, simclr"),
    ("supervised", ["method.classes=1"], r"method.classes: 1 is out of range; expected >= 2"),
    ("noisy_student", ["method.rounds=0"], r"method.rounds: 0 is out of range; expected >= 1"),
    ("noisy_student", ["method.width_growth=0.5"], r"method.width_growth: 0.5 is out of range; expected >= 1"),
    ("noisy_student", ["method.stochastic_depth=1"], r"method.stochastic_depth=1.0 is out of range"),
    ("noisy_student", ["method.student_augment=rand"], r"method.student_augment: unknown preset 'rand'; valid: none"),
    ("noisy_student", ["trainer.steps=2"], r"trainer.steps=2 is fewer than the 3 phases of method.rounds=2"),
    ("enaet", ["method.transformations=[affine, twirl]"],
     r"transformations\[1\]: unknown transformation 'twirl'; valid: projective"),
    ("enaet", ["method.transformations=[]"], r"method.transformations is empty"),
    ("s4l", ["method.tasks=[]"], r"method.tasks is empty: s4l adds a self-supervised task"),
    ("distill", ["method.teacher="], r"method.teacher is empty; expected the checkpoint or run directory"),
    ("distill", ["method.teacher=/no/such/run"], r"method.teacher: '/no/such/run' does not exist"),
    ("distill", ["method.temperature=0"], r"method.temperature: 0.0 is out of range; expected > 0"),
])
@pytest.mark.e2e
def test_bad_values_are_clear_errors_naming_the_value_and_the_expectation(method, overrides, words, ssgen, tmp_path):
    sets = [f"run_dir={tmp_path / 'run'}", *TINY, *overrides]
    code, out, err = ssgen("train", "--config", CONFIGS / f"{method}_shapes.yaml", "--no-progress",
                           *set_options(sets))
    assert code != 0
    import re
    assert re.search(words, err), err
    assert not list_checkpoints(tmp_path / "run")


@pytest.mark.e2e
def test_labels_outside_the_classes_are_a_clear_error(ssgen, tmp_path):
    code, out, err = ssgen("train", "--config", CONFIGS / "supervised_shapes.yaml", "--no-progress",
                           *set_options([f"run_dir={tmp_path / 'run'}", *TINY, "method.classes=5"]))
    assert code != 0 and "expected class labels 0..4 (method.classes=5)" in err, err


@pytest.mark.e2e
def test_a_teacher_that_does_not_classify_is_refused(ssgen, tmp_path):
    rotnet = tmp_path / "rotnet"
    quiet_train(load_config(CONFIGS / "rotnet_shapes.yaml",
                            [f"run_dir={rotnet}", "data.train_size=32", "data.test_size=16", "trainer.batch_size=8",
                             "trainer.steps=1", "method.encoder.width=8", "eval.probe.every=0", "trainer.threads=1"]))
    code, out, err = ssgen("train", "--config", CONFIGS / "distill_shapes.yaml", "--no-progress",
                           *set_options([f"run_dir={tmp_path / 'run'}", *TINY, f"method.teacher={rotnet}"]))
    assert code != 0 and "is a encoder run, which does not classify" in err, err


# ---------------------------------------------------------------- the teacher loader
@pytest.mark.e2e
def test_load_teacher_reads_classifier_runs_and_finetuned_files_each_read_once(teacher_run, tmp_path, monkeypatch):
    from ssgen import checkpoint, rebuild
    from ssgen.methods.semisup.distill import load_teacher
    from ssgen.rebuild import load_run
    teacher = load_teacher(teacher_run)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    method = load_run(teacher_run, torch.device("cpu")).method.eval()
    torch.testing.assert_close(teacher(x), method.classify(x))
    # A file of `ssgen finetune` is read once, and its network rebuilt from that one reading.
    finetuned = tmp_path / "finetuned.pt"
    torch.save({"format": "ssgen-finetuned", "weights": {}}, finetuned)
    reads, calls = [], []
    monkeypatch.setattr(rebuild, "read_checkpoint_file",
                        lambda path: reads.append(path) or checkpoint.read_checkpoint_file(path))
    monkeypatch.setattr(rebuild, "finetuned_network",
                        lambda state, path, device: calls.append((state["format"], path, device)) or nn.Linear(2, 2))
    loaded = load_teacher(finetuned, "cpu")
    assert reads == [finetuned] and calls == [("ssgen-finetuned", finetuned, torch.device("cpu"))]
    assert isinstance(loaded, nn.Linear) and not loaded.training
    # A classifier's checkpoint file is read once too.
    reads.clear()
    checkpoint_file = list_checkpoints(teacher_run)[-1]
    torch.testing.assert_close(load_teacher(checkpoint_file)(x), method.classify(x))
    assert reads == [checkpoint_file]


# ---------------------------------------------------------------- noise and transformations
def test_stochastic_depth_skips_whole_blocks_per_image_while_training_only():
    from ssgen.nets.stochastic_depth import add_stochastic_depth

    class Trunk(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleDict({"a": nn.Conv2d(2, 2, 1), "b": nn.Conv2d(2, 2, 1), "down": nn.Conv2d(2, 3, 1)})

        def forward(self, x):
            for block in self.blocks.values():
                x = block(x)
            return x

    torch.manual_seed(0)
    trunk, x = Trunk(), torch.randn(4000, 2, 1, 1)
    plain = trunk(x)
    hooks = add_stochastic_depth(trunk, 0.3)
    assert len(hooks) == 3
    torch.testing.assert_close(trunk.eval()(x), plain)  # eval: the network as it is
    trunk.train()
    outputs = {}
    trunk.blocks["b"].register_forward_hook(lambda m, i, o: outputs.update(b=(i[0], o)))
    trunk(x)
    given, out = outputs["b"]
    # Block b (the 2nd of 3) drops 0.2 of the images: those pass through unchanged, the others
    # carry the block's change divided by 0.8.
    skipped = (out == given).all(1).flatten()
    assert abs(skipped.float().mean().item() - 0.2) < 0.03
    with torch.no_grad():  # the block's own output, computed without its hook
        raw = F.conv2d(given, trunk.blocks["b"].weight, trunk.blocks["b"].bias)
    torch.testing.assert_close(out[~skipped], (given + (raw - given) / 0.8)[~skipped])


def test_transformations_regress_parameters_that_are_zero_for_the_identity():
    from ssgen.pretext.transformations import PARAMETERS, TRANSFORMATIONS, ccbs, random_transformation, warp
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    torch.testing.assert_close(warp(x, torch.eye(3).expand(3, 3, 3)), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(ccbs(x, torch.ones(3, 4)), x, atol=1e-6, rtol=0)
    flipped = torch.diag(torch.tensor([-1.0, 1.0, 1.0])).expand(3, 3, 3)  # x -> -x: a mirror image
    torch.testing.assert_close(warp(x, flipped), x.flip(3), atol=1e-5, rtol=0)
    torch.manual_seed(0)
    for kind in TRANSFORMATIONS:
        out, parameters = random_transformation(kind, x)
        assert out.shape == x.shape and parameters.shape == (3, PARAMETERS[kind])
        assert parameters.abs().sum() > 0 and not torch.equal(out, x)
    _, euclidean = random_transformation("euclidean", x)
    rotation = euclidean[:, [0, 1, 3, 4]] + torch.tensor([1.0, 0, 0, 1])  # [[c, -s], [s, c]]: a rotation
    torch.testing.assert_close(rotation[:, 0], rotation[:, 3])
    torch.testing.assert_close(rotation[:, 1], -rotation[:, 2])
    assert torch.equal(euclidean[:, 6:], torch.zeros(3, 2))  # no perspective row


@pytest.mark.e2e
def test_the_accuracy_evaluator_changes_no_weight_buffer_or_random_state(teacher_run):
    from ssgen.rebuild import load_run
    from ssgen.config import HeldOutEvalConfig
    from ssgen.data import build_dataset
    from ssgen.eval.accuracy import AccuracyEvaluator
    from ssgen.images import to_float
    run = load_run(teacher_run, torch.device("cpu"))
    evaluator = AccuracyEvaluator(HeldOutEvalConfig(every=1, test_size=16, batch_size=5),
                                  build_dataset(run.cfg.data, "test"), torch.device("cpu"), seed=0)
    state = {k: v.clone() for k, v in run.method.state_dict().items()}
    rng = torch.get_rng_state()
    run.method.train()
    metrics, protocol = evaluator(run.method, 0)
    assert run.method.training and torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(v, run.method.state_dict()[k]) for k, v in state.items())
    with torch.no_grad():
        predicted = run.method.eval().classify(to_float(evaluator.images)).argmax(1)
    assert metrics == {"accuracy/top1": (predicted == evaluator.labels).float().mean().item()}
    assert protocol == {"metric": "test top-1", "dataset": "shapes", "split": "test", "test_size": 16}
