"""Data parallelism under torchrun, on CPU with two gloo processes (issue #5).

Two processes with a global batch B must train as one process with batch B: each takes its
slice of the same global batch and latents, gradients and logged figures are averaged, and
evaluation features are gathered from both. That holds exactly only without batch norm, whose
statistics each process takes over its own half of the batch (SyncBatchNorm needs NCCL; gloo,
the CPU backend, has none). So the exact comparison trains RotNet (the encoder method with the
rotation task, on D's trunk: convolutions, no batch norm); full SS-GAN, whose G has batch norm,
is only close.
Every launch runs under a timeout and in its own process group, so a hung run fails the test
instead of blocking CI.
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from ssgen.config import load_config
from ssgen.eval.metrics import read_metrics
from ssgen.checkpoint import list_checkpoints, read_checkpoint

from small_runs import QUICK, ROTNET, SMALL_GAN, quiet_train

pytestmark = pytest.mark.e2e  # every test here trains or runs a command

RUN = ["data.train_size=256", "data.test_size=128", "trainer.batch_size=16", "trainer.steps=6",
       "trainer.threads=1", "trainer.device=cpu", "trainer.log_every=1", "trainer.sample_every=100",
       "trainer.checkpoint_every=4", "trainer.keep_checkpoints=5", "eval.fid.every=0", "eval.probe.every=0"]
# The paper's Adam rates, not the quick demo's: Adam's first steps move a weight by about lr
# whatever its gradient's size, so gradients that the two layouts round apart near zero would
# move weights visibly at the demo's 2e-3.
PAPER_RATES = ["method.d_optim.lr=2e-4", "method.g_optim.lr=2e-4"]
SMALL = {QUICK: [*SMALL_GAN, *PAPER_RATES, *RUN],
         ROTNET: ["method.encoder.width=16", *RUN]}
TIMEOUT_S = 150


def launch(args: list[str], cache: Path, nproc: int = 2) -> str:
    """`python -m torch.distributed.run --standalone --nproc_per_node=N ARGS` (a free port is
    picked by the rendezvous); its output, or a failure with its tail."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    env = {**os.environ, "SSGEN_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
        output, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in {TIMEOUT_S} s:\n{output[-3000:]}")
    assert proc.returncode == 0, output[-4000:]
    return output


def train_two_processes(run_dir: Path, overrides: list[str], cache: Path, resume: bool = False,
                        config: Path = QUICK) -> str:
    args = ["-m", "ssgen", "train", "--no-progress"]
    if resume:
        return launch([*args, "--resume", str(run_dir)], cache)
    sets = [item for o in [*SMALL[config], *overrides, f"run_dir={run_dir}"] for item in ("--set", o)]
    return launch([*args, "--config", str(config), *sets], cache)


def train_one_process(run_dir: Path, overrides: list[str], cache: Path, monkeypatch, config: Path = QUICK) -> Path:
    monkeypatch.setenv("SSGEN_CACHE", str(cache))
    cfg = load_config(config, [*SMALL[config], *overrides, f"run_dir={run_dir}"])
    return quiet_train(cfg)


def figures(run_dir: Path) -> dict[tuple[int, str], float]:
    """{(step, name): value} of a run's metrics.jsonl, timings left out."""
    return {(r["step"], k): v for r in read_metrics(run_dir) for k, v in r["metrics"].items()
            if not k.startswith("perf/")}


HELPERS = textwrap.dedent("""
    import sys

    import torch
    from ssgen import parallel as d

    place = d.setup("cpu")
    rank = place.rank
    assert place.world_size == 2 and d.world() == (rank, 2)
    assert [d.shard(5), d.shard(1), d.shard(4)][rank] == [slice(0, 3), slice(1, 1), slice(2, 4)][rank]

    # gather_rows: uneven shares, and a process with none, come back whole in rank order.
    full = torch.arange(10.0).view(5, 2)
    assert torch.equal(d.gather_rows(full[d.shard(5)]), full)
    mine = full[:1] if rank == 0 else torch.empty(0, 0)
    assert torch.equal(d.gather_rows(mine), full[:1])

    # gather_with_grad: a loss over the global rows gives each process the one-process gradient
    # of its own rows, once summed over processes and divided by their number (average_gradients).
    rows = torch.arange(8.0).view(4, 2).requires_grad_()
    mine = rows[2 * rank: 2 * rank + 2]
    everyone = d.gather_with_grad(mine)
    assert torch.equal(everyone, rows.detach())
    (everyone.square().sum(1) * torch.arange(1.0, 5.0)).mean().backward()  # a mean over the global batch
    one_process = 2 * rows.detach() * torch.arange(1.0, 5.0)[:, None] / 4
    assert torch.allclose(rows.grad[2 * rank: 2 * rank + 2] / 2, one_process[2 * rank: 2 * rank + 2])

    # Logged figures: the mean over processes, the same in both.
    values = d.average_values({"loss/a": torch.tensor(float(rank + 1)), "acc": torch.tensor(rank * 1.0)})
    assert values == {"loss/a": 1.5, "acc": 0.5}, values
    assert d.any_rank(rank == 1) is True and d.all_ranks(rank == 1) is False and d.all_ranks(True) is True

    # Per-row random corruptions: each process gets its rows of one process's global draw.
    torch.manual_seed(3)
    reference = torch.ones(8, 3) + torch.randn(8, 3)
    torch.manual_seed(3)
    noisy = d.global_draw(lambda rows: rows + torch.randn(rows.shape), torch.ones(4, 3))
    assert torch.equal(noisy, reference[4 * rank: 4 * rank + 4])
    states = d.gather_rows(torch.get_rng_state().float()[None])  # and leaves the same RNG state in both
    assert torch.equal(states[0], states[1])

    # Buffers (batch-norm running statistics) come from rank 0.
    norm = torch.nn.BatchNorm2d(2)
    norm.running_mean.fill_(rank + 7.0)
    d.broadcast_buffers(norm)
    assert torch.equal(norm.running_mean, torch.full((2,), 7.0))
    d.teardown()
    open(sys.argv[1] + f"/ok-{rank}", "w").close()  # both outputs interleave in one pipe: a file each
""")


def test_helpers_under_two_gloo_processes(tmp_path):
    script = tmp_path / "helpers.py"
    script.write_text(HELPERS)
    launch([str(script), str(tmp_path)], tmp_path / "cache")
    assert (tmp_path / "ok-0").exists() and (tmp_path / "ok-1").exists()


def test_rotnet_two_processes_match_one_process(tmp_path, monkeypatch):
    """No batch norm anywhere: losses, rotation accuracy, the probe (features gathered from
    both processes) and the final weights of 2 x 8 images equal those of 1 x 16."""
    # Rotating the whole batch (fraction 1, as RotNet does): each process rotates its own slice,
    # which only then is the subset one process rotates. Uneven shares on purpose: the probe's
    # 101 test images split 51/50 between the processes.
    overrides = ["eval.probe.every=3", "eval.probe.train_size=200", "eval.probe.test_size=101"]
    one = train_one_process(tmp_path / "one", overrides, tmp_path / "cache-one", monkeypatch, ROTNET)
    train_two_processes(tmp_path / "two", overrides, tmp_path / "cache-two", config=ROTNET)

    expected, got = figures(one), figures(tmp_path / "two")
    assert expected.keys() == got.keys()
    assert {name for _, name in got} >= {"loss/rotation", "rotation/acc_real", "probe/encoder"}
    for (step, name), value in expected.items():
        # Weights agree to float rounding; a probe near chance may flip one of its 101 test images.
        tolerance = 1.01 / 101 if name.startswith("probe/") else 1e-6
        assert got[step, name] == pytest.approx(value, rel=1e-4, abs=tolerance), (step, name)
    # Only the main process wrote: one line per step and evaluation, no duplicates.
    assert len(read_metrics(tmp_path / "two")) == len(read_metrics(one))
    # The batches' labels and rows travel with the images: the two processes' slices make one batch.
    final_one = read_checkpoint(list_checkpoints(one)[-1])
    final_two = read_checkpoint(list_checkpoints(tmp_path / "two")[-1])
    assert torch.equal(final_one["batches"]["order"], final_two["batches"]["order"])
    for name, tensor in final_one["method"].items():
        # Adam divides by the root of tiny second moments: gradients equal to float rounding
        # may move a few weights by a small part of one step (lr 1e-3) apart.
        if tensor.is_floating_point():
            torch.testing.assert_close(final_two["method"][name], tensor, rtol=1e-4, atol=1e-4,
                                       msg=lambda m, name=name: f"{name}: {m}")


def test_fd_two_processes_match_one_process(tmp_path, monkeypatch, extractor_file):
    """FD with real and generated features gathered from both processes (uneven shares: FD's 5
    batches split 3/2) equals one process's. G is held still (lr 1e-30): its batch norm, which
    normalises each process's half batch, would otherwise make the two runs' G differ; D has none."""
    overrides = ["method.rotation_fraction=1.0", "method.g_optim.lr=1e-30", "trainer.steps=3",
                 "eval.fid.every=3", "eval.fid.num_samples=70", "eval.fid.batch_size=16",
                 f"eval.fid.extractor={extractor_file}"]
    one = train_one_process(tmp_path / "one", overrides, tmp_path / "cache-one", monkeypatch)
    # A cache of its own, so that the real images' statistics are computed across processes too.
    train_two_processes(tmp_path / "two", overrides, tmp_path / "cache-two")
    expected, got = figures(one), figures(tmp_path / "two")
    assert got[3, "fd/tiny-fd"] == pytest.approx(expected[3, "fd/tiny-fd"], rel=1e-4)
    for key, value in expected.items():  # D (no batch norm) trains alike: its losses agree too
        if key[1].startswith("loss/d"):
            assert got[key] == pytest.approx(value, rel=1e-4, abs=1e-6), key
    assert (tmp_path / "two" / "checkpoints" / "best.pt").exists()


def test_ssgan_two_processes_close_to_one_and_resume_exactly(tmp_path, monkeypatch):
    """Full SS-GAN: G's batch norm normalises each process's half batch, so the losses are only
    close to one process's (D's, rotation-only above, has none). A two-process run stopped after
    step 4 and resumed under two
    processes ends with the uninterrupted run's weights and logs the same losses."""
    overrides = ["method.rotation_fraction=1.0"]  # the same rotated images: G's batch norm is all that differs
    one = train_one_process(tmp_path / "one", overrides, tmp_path / "cache", monkeypatch)
    run = tmp_path / "two"
    train_two_processes(run, overrides, tmp_path / "cache")

    expected, got = figures(one), figures(run)
    assert expected.keys() == got.keys()
    # Measured: within 3% over these 6 steps (G's updates differ from step 1 on).
    for (step, name), value in expected.items():
        if name.startswith("loss/"):
            assert got[step, name] == pytest.approx(value, rel=0.1), (step, name)

    uninterrupted = read_checkpoint(list_checkpoints(run)[-1])
    logged = figures(run)
    shutil.move(list_checkpoints(run)[-1], tmp_path / "step-6.pt")  # as if killed after step 4's checkpoint
    output = train_two_processes(run, [], tmp_path / "cache", resume=True)
    assert output.count("resuming") == 1  # the main process alone speaks
    resumed = read_checkpoint(list_checkpoints(run)[-1])
    assert resumed["step"] == 6
    for name, tensor in uninterrupted["method"].items():
        assert torch.equal(resumed["method"][name], tensor), name
    assert figures(run) == logged


@pytest.mark.skipif(not Path("/proc/self/environ").exists() or shutil.which("pgrep") is None,
                    reason="finds the rank-1 worker through pgrep and /proc")
def test_sigterm_to_one_process_stops_both_at_the_same_step(tmp_path):
    """A stop request seen by any process stops all of them after the same step (else the
    others would wait forever in the next all-reduce); the main process writes the checkpoint."""
    run = tmp_path / "run"
    # No periodic checkpoint: the only one must be the stop's, whenever the signal lands.
    sets = [item for o in [*SMALL[QUICK], "trainer.steps=100000", "trainer.checkpoint_every=100000", f"run_dir={run}"]
            for item in ("--set", o)]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "ssgen", "train", "--no-progress", "--config", str(QUICK), *sets]
    env = {**os.environ, "SSGEN_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while len(read_metrics(run)) < 2:  # both processes are in the training loop
            assert proc.poll() is None and time.monotonic() < deadline, "the run ended or hung before step 2"
            time.sleep(0.2)
        workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        rank1 = [pid for pid in workers if "RANK=1" in Path(f"/proc/{pid}/environ").read_text().split("\0")]
        assert len(rank1) == 1, workers
        os.kill(int(rank1[0]), signal.SIGTERM)
        output, _ = proc.communicate(timeout=TIMEOUT_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode != 0, output[-4000:]  # stopped, not finished: the launcher reports the 143
    assert output.count("stopped at step") == 1
    checkpoints = list_checkpoints(run)
    assert len(checkpoints) == 1
    step = read_checkpoint(checkpoints[0])["step"]
    assert read_metrics(run)[-1]["step"] == step and f"stopped at step {step};" in output


def test_joint_embedding_objectives_under_two_processes(tmp_path, monkeypatch):
    """SimCLR (negatives gathered), MoCo (queue of the global batch's keys), BYOL and DINO
    (centre all-reduced) on one encoder, two gloo processes: they run and log finite losses;
    the queue advanced by the global batch's keys, not one process's; the centre moved. (The
    gathers themselves are checked against one process in tests/test_losses_ssl.py.)"""
    tasks = ("[{name: simclr, hidden: 16, dim: 8}, {name: moco, hidden: 16, dim: 8, queue: 32}, "
             "{name: byol, hidden: 16, dim: 8, predictor_hidden: 16}, "
             "{name: dino, prototypes: 16, hidden: 16, bottleneck: 8}]")
    overrides = [f"method.tasks={tasks}", "trainer.steps=2", "trainer.checkpoint_every=2"]
    run = tmp_path / "two"
    train_two_processes(run, overrides, tmp_path / "cache", config=ROTNET)
    losses = {name: v for (_, name), v in figures(run).items() if name.startswith("loss/")}
    assert {"loss/simclr", "loss/moco", "loss/byol", "loss/dino"} <= set(losses)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    state = read_checkpoint(list_checkpoints(run)[-1])["method"]
    assert int(state["tasks.1.queue.position"]) == 2 * 2 * 16 % 32  # 2 steps x 2 views x the global batch
    assert state["tasks.3.criterion.center"].abs().sum() > 0
