"""The whole-step compiled path (trainer.compile: step) computes what the eager step computes.

For the GAN, SS-GAN and the denoising autoencoder: the same weights, seed and batches, N steps
on each path, in float64 (see `float64`); the losses of every step and every weight, buffer and
optimizer state afterwards agree to float64 round-off. Why SGD in those runs: Adam turns the
round-off-sized gradient of a bias followed by
batch norm (zero in exact arithmetic) into a full +-lr step whose sign is the round-off's, so
with Adam such a bias, and every batch-norm statistic downstream, differs between any two
orders of summation by about lr per step. Adam's own update is proved separately, against
torch's, and an SS-GAN run with Adam is compared on its losses and its discriminator (no
batch norm there).

The default runs compile with the aot_eager backend: dynamo's capture of the whole step with
fullgraph=True (a graph break fails the test), AOTAutograd's functionalised graph, run by
torch's own kernels. Inductor, the backend `ssgen train` uses, generates code for minutes on a
small CPU: those runs are marked slow, and the CUDA-graphs twin gpu.
"""

import contextlib
import copy

import pytest
import torch

from ssgen.config import load_config
from ssgen.config import OptimConfig
from ssgen.errors import ConfigError
from ssgen.optim import build_optimizer, compiled_update, prepare_state
from ssgen.rebuild import build_method

from small_runs import CONFIGS, QUICK, TINY, TINY_GAN, quiet_train

TOLERANCE = dict(rtol=1e-4, atol=1e-5)  # float32 sums taken in another order, over a few steps
FLOAT64_TOLERANCE = dict(rtol=1e-10, atol=1e-12)  # aot_eager in float64 agrees to 2e-15 (measured)
STEPS = 3
SGD = ["{}.name=sgd", "{}.lr=0.01", "{}.momentum=0.9"]


# Compilation and the runs: one thread is faster than an oversubscribed two on a busy 2-core machine.
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def fresh_compiler():
    # Every CompiledStep shares one wrapper's code, whose compiled entries dynamo caches up to
    # recompile_limit (8); a training process compiles one method's steps, this file many methods'.
    torch._dynamo.reset()


@contextlib.contextmanager
def float64():
    """Networks, batches and optimizer state in float64 inside. In float32 a ReLU or hinge input
    within round-off of zero takes the other side under another order of summation, and with these
    8-channel networks that changes a step's gradient visibly: eager channels_last against eager
    contiguous, one SS-GAN step, differ by up to 3% in G's batch-norm biases at 2 of 7 seeds; the
    denoising autoencoder's step 2, compiled against eager, by 6e-5 in a gradient of 0.05 at 1 of
    6 batch seeds. In float64 such ties vanish and the comparison is of the graph alone (measured:
    inductor's losses within 3e-7, weights within 2e-9)."""
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(torch.float32)


def method_config(name: str, optimizers: list[str], sgd: bool = True, *extra: str):
    """A tiny `name` config, batch 8; with `sgd` its `optimizers` are SGD with momentum (see above)."""
    sets = [f"method.name={name}", "trainer.batch_size=8", *extra]
    if name in ("gan", "ssgan"):
        sets += [*TINY_GAN, "method.n_dis=1", "method.ema_decay=0.9"]
    else:
        sets += ["method.encoder.width=8", "method.decoder.width=8"]
    if sgd:
        sets += [s.format(f"method.{o}") for o in optimizers for s in SGD]
    return load_config(None, sets)


def run_steps(method, pool, seed: int = 5):
    """STEPS train steps on batches from `pool`; the loss logs of each."""
    torch.manual_seed(seed)
    batches = iter(pool)
    return [{k: v.detach().clone() for k, v in method.train_step(lambda: next(batches)).items()
             if k.startswith("loss/")}
            for _ in range(STEPS)]


def eager_and_compiled(cfg, device="cpu", backend="aot_eager"):
    torch.manual_seed(0)
    eager = build_method(cfg, torch.device(device))
    compiled = copy.deepcopy(eager)
    eager.optimizers(), compiled.optimizers()
    compiled.compile_steps(backend=backend)
    return eager, compiled


CASES = {"gan": ["g_optim", "d_optim"], "ssgan": ["g_optim", "d_optim"], "denoising": ["optim"]}


@pytest.mark.parametrize("name", CASES)
def test_whole_step_compiled_equals_eager(name):
    cfg = method_config(name, CASES[name])
    with float64():
        eager, compiled = eager_and_compiled(cfg)
        pool = torch.rand(STEPS, 8, 3, 32, 32) * 2 - 1
        torch._dynamo.utils.counters.clear()
        compiled_logs, eager_logs = run_steps(compiled, pool), run_steps(eager, pool)
    assert next(compiled.parameters()).dtype == torch.float64

    assert not torch._dynamo.utils.counters["graph_break"]  # fullgraph=True would raise on one anyway
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == len(compiled.steps)  # no recompiles
    for step, (a, b) in enumerate(zip(compiled_logs, eager_logs)):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], **FLOAT64_TOLERANCE, msg=f"{key} at step {step + 1}")
    for (key, a), b in zip(compiled.state_dict().items(), eager.state_dict().values()):
        torch.testing.assert_close(a, b, **FLOAT64_TOLERANCE, msg=key)
    for name_, optimizer in compiled.optimizers().items():  # the optimizers' state too: a checkpoint holds it
        mine, theirs = optimizer.state_dict()["state"], eager.optimizers()[name_].state_dict()["state"]
        assert mine.keys() == theirs.keys()
        for index in mine:
            for key in mine[index]:
                torch.testing.assert_close(mine[index][key], theirs[index][key].to(mine[index][key].device),
                                           **FLOAT64_TOLERANCE, msg=f"{name_} {key}")


def test_a_graph_break_in_a_step_is_an_error_not_a_silent_slow_path():
    """fullgraph: code a step runs that the compiler cannot take whole (here an explicit break
    inside the autoencoder's loss) fails the compiled step, and with it the equality tests above."""
    _, compiled = eager_and_compiled(method_config("denoising", CASES["denoising"]))
    loss = compiled.loss

    def loss_with_a_break(images):
        torch._dynamo.graph_break()
        return loss(images)

    compiled.loss = loss_with_a_break
    with pytest.raises(ConfigError, match="the 'autoencoder' step cannot be compiled as one graph") as raised:
        compiled.train_step(lambda: torch.rand(8, 3, 32, 32))
    assert isinstance(raised.value.__cause__, torch._dynamo.exc.Unsupported)


def test_ssgan_with_adam_compiled_equals_eager_on_losses_and_discriminator():
    # In float64: in float32 the weight gradient of D's last convolutions sums in another order in
    # the graph than eagerly, and Adam moves the few weights whose gradient is near zero by +-lr on
    # the round-off's sign (6 of 576 weights of block4.conv1 differ by 7e-5 after 3 steps at lr 2e-4).
    # In float64 D agrees to 4e-10 and the losses to 1e-7 (G's batch-norm biases still take Adam's
    # +-lr steps on round-off, see the module's docstring, and move G's images by that much).
    cfg = method_config("ssgan", [], False, "trainer.memory_format=contiguous")
    with float64():
        eager, compiled = eager_and_compiled(cfg)
        pool = torch.rand(STEPS, 8, 3, 32, 32) * 2 - 1
        logs = run_steps(compiled, pool), run_steps(eager, pool)
    assert next(compiled.D.parameters()).dtype == torch.float64
    for a, b in zip(*logs):
        for key in a:
            torch.testing.assert_close(a[key], b[key], **TOLERANCE, msg=key)
    for (key, a), b in zip(compiled.D.state_dict().items(), eager.D.state_dict().values()):
        torch.testing.assert_close(a, b, **TOLERANCE, msg=key)
    assert not torch.equal(compiled.D.critic.parametrizations.weight.original, build_method(
        cfg, torch.device("cpu")).D.critic.parametrizations.weight.original)  # it did train


def test_resume_of_the_compiled_path_is_exact():
    """Save what a checkpoint holds after 2 compiled steps, take 2 more; load it and take the same
    2 again: bitwise the same weights, optimizer state and losses."""
    cfg = method_config("ssgan", [], False)
    _, method = eager_and_compiled(cfg)
    pool = torch.rand(4, 8, 3, 32, 32) * 2 - 1
    batches = iter(pool)
    torch.manual_seed(3)
    for _ in range(2):
        method.train_step(lambda: next(batches))
    saved = {"method": copy.deepcopy(method.state_dict()),
             "optimizers": {n: copy.deepcopy(o.state_dict()) for n, o in method.optimizers().items()},
             "rng": torch.get_rng_state()}

    def two_more():
        rest = iter(pool[2:])
        logs = [method.train_step(lambda: next(rest)) for _ in range(2)]
        return logs, copy.deepcopy(method.state_dict()), {n: copy.deepcopy(o.state_dict()) for n, o in
                                                         method.optimizers().items()}

    first = two_more()
    method.load_state_dict(saved["method"])
    for name, optimizer in method.optimizers().items():
        optimizer.load_state_dict(saved["optimizers"][name])
    torch.set_rng_state(saved["rng"])
    second = two_more()
    for a, b in zip(first[0], second[0]):
        assert all(torch.equal(a[k], b[k]) for k in a)
    for key, value in first[1].items():
        assert torch.equal(value, second[1][key]), key
    for name, state in first[2].items():
        for index, entry in state["state"].items():
            assert all(torch.equal(v, second[2][name]["state"][index][k]) for k, v in entry.items())


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "lars"])
def test_compiled_update_is_the_optimizers_own_step(name):
    """The update a compiled step makes (ssgen.optim.compiled_update, here run eagerly) against the
    torch optimizer's step(): 4 steps, a changing learning rate, weight decay, a parameter
    without a gradient (left alone by both)."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(3)),
              torch.nn.Parameter(torch.randn(2))]
    cfg = OptimConfig(name=name, lr=0.05, weight_decay=0.01, nesterov=name == "sgd", betas=[0.5, 0.9])
    theirs_params = [torch.nn.Parameter(p.detach().clone()) for p in params]
    start = [p.detach().clone() for p in params]
    mine, theirs = build_optimizer(params, cfg), build_optimizer(theirs_params, cfg)
    prepare_state(mine)
    for step in range(4):
        grads = [torch.randn_like(p) for p in params[:2]] + [None]
        for group in [*mine.param_groups, *theirs.param_groups]:
            group["lr"] = group["base_lr"] * (1 - step / 4)
        ordered = {id(p): g for p, g in zip(params, grads)}
        compiled_update(mine, [ordered[id(p)] for g in mine.param_groups for p in g["params"]],
                        [torch.tensor(g["lr"]) for g in mine.param_groups])
        for p, g in zip(theirs_params, grads):
            p.grad = g
        theirs.step()
    for a, b in zip(params, theirs_params):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-6, atol=1e-7)
    assert not torch.equal(params[0], start[0]) and torch.equal(params[2], start[2])


def test_compile_setting_reads_names_and_the_old_booleans():
    assert load_config(QUICK, ["trainer.compile=true"]).trainer.compile == "modules"
    assert load_config(QUICK, ["trainer.compile=false"]).trainer.compile == "eager"
    assert load_config(QUICK, ["trainer.compile=step"]).trainer.compile == "step"
    assert load_config(QUICK).trainer.compile == "eager"
    with pytest.raises(ConfigError, match=r"trainer.compile: 'graphs' is not one of eager, modules, step"):
        load_config(QUICK, ["trainer.compile=graphs"])


@pytest.mark.e2e
def test_compiled_step_refuses_skip_mode_before_any_compute(tmp_path):
    cfg = load_config(QUICK, [f"run_dir={tmp_path / 'run'}", *TINY, "trainer.compile=step", "trainer.nonfinite=skip"])
    with pytest.raises(ConfigError, match="trainer.nonfinite=skip needs one per update"):
        quiet_train(cfg)



def test_a_method_that_declares_no_steps_is_refused_not_run_eagerly():
    """Every shipped method declares its steps; one that does not (a new method written with its
    own train_step) is refused with the way out, not run eagerly under a config that says step."""
    from ssgen.config import Config
    from ssgen.methods.base import Method
    from ssgen.methods.semisup.base import Classifier
    from ssgen.registry import METHODS
    from ssgen.step import DataInfo

    class OwnTrainStep(Method):
        def __init__(self):
            super().__init__(Config().method, DataInfo(resolution=8))
            self.net = torch.nn.Linear(2, 2)

    with pytest.raises(ConfigError, match="declares no steps to compile whole.*use trainer.compile=modules or eager"):
        OwnTrainStep().compile_steps()
    for name in METHODS.names():
        assert METHODS.get(name).steps, f"method {name!r} declares no steps"
    assert Classifier.steps == ("classify",)


# ---------------------------------------------------------------- inductor: what `ssgen train` runs
@pytest.mark.slow
@pytest.mark.e2e
def test_inductor_whole_step_equals_eager_and_trains_through_the_trainer(tmp_path):
    with float64():  # as the aot_eager test above (see float64)
        cfg = method_config("ssgan", CASES["ssgan"])
        eager, compiled = eager_and_compiled(cfg, backend="inductor")
        pool = torch.rand(STEPS, 8, 3, 32, 32) * 2 - 1
        for a, b in zip(run_steps(compiled, pool), run_steps(eager, pool)):
            for key in a:
                torch.testing.assert_close(a[key], b[key], **TOLERANCE, msg=key)
        for (key, a), b in zip(compiled.state_dict().items(), eager.state_dict().values()):
            torch.testing.assert_close(a, b, **TOLERANCE, msg=key)
        assert next(compiled.parameters()).dtype == torch.float64

    # Through the trainer, with a resume at step 2: the same step-4 checkpoint as one go.
    from ssgen.checkpoint import list_checkpoints, read_checkpoint
    sets = [*TINY, "trainer.compile=step", "trainer.steps=4", "trainer.checkpoint_every=2",
            "trainer.keep_checkpoints=5"]
    whole = quiet_train(load_config(QUICK, [f"run_dir={tmp_path / 'a'}", *sets]))
    part = load_config(QUICK, [f"run_dir={tmp_path / 'b'}", *sets])
    quiet_train(part)
    list_checkpoints(part.run_dir)[-1].unlink()
    quiet_train(part, resume=True)
    a, b = (read_checkpoint(list_checkpoints(d)[-1])["method"] for d in (whole, part.run_dir))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", CASES)
def test_cuda_graphs_whole_step_equals_eager_on_the_gpu(name):
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 on both paths
    cfg = method_config(name, CASES[name], True, "trainer.device=cuda")
    eager, compiled = eager_and_compiled(cfg, device="cuda", backend="inductor")
    pool = torch.rand(STEPS, 8, 3, 32, 32, device="cuda") * 2 - 1
    for a, b in zip(run_steps(compiled, pool), run_steps(eager, pool)):
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-4, msg=key)
    for (key, a), b in zip(compiled.state_dict().items(), eager.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=key)


def test_memory_format_is_channels_last_on_the_cpu_unless_set():
    def conv_weight(*sets):
        method = build_method(load_config(QUICK, [*TINY, *sets]), torch.device("cpu"))
        return next(p for p in method.parameters() if p.dim() == 4)

    assert conv_weight().is_contiguous(memory_format=torch.channels_last)
    assert not conv_weight().is_contiguous()
    assert conv_weight("trainer.memory_format=contiguous").is_contiguous()
    assert conv_weight("trainer.memory_format=channels_last").is_contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------- the semi-supervised methods
SEMI = {"supervised": ["optim"], "pseudo_label": ["optim"], "entmin": ["optim"], "s4l": ["optim"],
        "enaet": ["optim"], "meta_pseudo_labels": ["optim", "teacher_optim"], "noisy_student": ["optim"],
        "distill": ["optim"]}
SEMI_EXTRA = {"meta_pseudo_labels": ["method.teacher_encoder.width=8"], "enaet": ["method.hidden=8"],
              "noisy_student": ["method.rounds=2"],
              "pseudo_label": ["method.threshold=0.0"]}  # every pseudo-label counts: the term is not vacuous


class Streams:
    """A labelled and an unlabelled stream of fixed batches (labels 0..9 and -1), each in order."""

    def __init__(self, steps: int, seed: int = 1):
        from ssgen.step import Batch
        generator = torch.Generator().manual_seed(seed)
        images = torch.rand(2, steps, 8, 3, 32, 32, generator=generator) * 2 - 1
        rows = torch.arange(8)
        self.labelled_batches = iter([Batch(x, rows % 10, rows) for x in images[0]])
        self.unlabelled_batches = iter([Batch(x, torch.full((8,), -1), rows + 8) for x in images[1]])

    def labelled(self):
        return next(self.labelled_batches)

    def __call__(self):
        return next(self.unlabelled_batches)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A supervised run for distill's teacher, 2 steps of width 8."""
    run = tmp_path_factory.mktemp("teacher") / "supervised"
    quiet_train(load_config(CONFIGS / "supervised_shapes.yaml",
                            [f"run_dir={run}", "method.encoder.width=8", "data.train_size=40", "data.test_size=16",
                             "trainer.batch_size=8", "trainer.steps=2", "trainer.threads=1", "eval.accuracy.every=0",
                             "eval.probe.every=0"]))
    return run


@pytest.mark.parametrize("name", SEMI)
@pytest.mark.e2e
def test_semi_supervised_steps_compiled_equal_eager(name, teacher):
    """Each semi-supervised method declares its one step, `classify`, and nothing else to get the
    compiled path: the same losses, weights and optimizer state as eager after STEPS steps whose
    ramped weight changes; Noisy Student is compiled once per round (a different network each)."""
    from ssgen.step import Progress
    sets = ["method.encoder.width=8", "trainer.batch_size=8", *SEMI_EXTRA.get(name, []),
            *([f"method.teacher={teacher}"] if name == "distill" else []),
            *[s.format(f"method.{o}") for o in SEMI[name] for s in SGD]]
    cfg = load_config(CONFIGS / f"{name}_shapes.yaml", sets)
    eager, compiled = eager_and_compiled(cfg)
    assert compiled.steps == ("classify",)
    torch._dynamo.utils.counters.clear()
    logs = {}
    for method in (compiled, eager):
        torch.manual_seed(5)
        streams = Streams(STEPS)
        logs[method] = [{k: v.detach().clone() for k, v in method.train_step(streams, Progress(step, STEPS)).items()}
                        for step in range(1, STEPS + 1)]

    rounds = STEPS if name == "noisy_student" else 1  # one step a round: rounds 0, 1 and 2
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == rounds
    assert not torch._dynamo.utils.counters["graph_break"]
    for step, (a, b) in enumerate(zip(logs[compiled], logs[eager])):
        assert a.keys() == b.keys()
        for key in a:
            torch.testing.assert_close(a[key], b[key], **TOLERANCE, msg=f"{key} at step {step + 1}")
    for (key, a), b in zip(compiled.state_dict().items(), eager.state_dict().values()):
        torch.testing.assert_close(a, b, **TOLERANCE, msg=key)
    for name_, optimizer in compiled.optimizers().items():
        mine, theirs = optimizer.state_dict()["state"], eager.optimizers()[name_].state_dict()["state"]
        assert mine.keys() == theirs.keys()
        for index in mine:
            for key in mine[index]:
                torch.testing.assert_close(mine[index][key], theirs[index][key], **TOLERANCE, msg=f"{name_} {key}")
    if name in ("pseudo_label", "entmin", "enaet"):  # the ramp moved: the weight is read anew each step
        assert float(compiled.ramped_weight) == float(eager.ramped_weight) > 0


def test_ibot_draws_its_masks_before_the_step_and_compiles_whole():
    """iBOT's block masks are rejection-sampled in Python: drawn by before_step on the host, into a
    buffer the step reads, the encoder's step stays one graph and equals eager."""
    sets = ["method.encoder.width=16", "method.encoder.depth=1", "method.encoder.heads=2", "trainer.batch_size=8",
            "method.tasks=[{name: ibot, prototypes: 16, hidden: 16, bottleneck: 8}]",
            *[s.format("method.optim") for s in SGD]]
    eager, compiled = eager_and_compiled(load_config(CONFIGS / "ibot_shapes.yaml", sets))
    pool = torch.rand(STEPS, 8, 3, 32, 32) * 2 - 1
    torch._dynamo.utils.counters.clear()
    compiled_logs, eager_logs = run_steps(compiled, pool), run_steps(eager, pool)
    assert not torch._dynamo.utils.counters["graph_break"]
    (task,) = compiled.tasks
    assert task.step_masks.shape == (16, 64) and task.step_masks.any()  # 2 global views of 8, 8x8 patches
    for a, b in zip(compiled_logs, eager_logs):
        for key in a:
            torch.testing.assert_close(a[key], b[key], **TOLERANCE, msg=key)
    for (key, a), b in zip(compiled.state_dict().items(), eager.state_dict().values()):
        torch.testing.assert_close(a, b, **TOLERANCE, msg=key)
