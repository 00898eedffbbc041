"""Self-supervised losses (issue 14) against direct, loop-based computations of the papers'
formulas, and under two gloo processes against one process.

The two processes are plain `python` subprocesses meeting at a file:// rendezvous (not
torch.multiprocessing.spawn, whose children would have to import this test module by name,
which pytest's importlib mode and torch-fidelity's own `tests` package make unreliable)."""

import os
import signal
import subprocess
import sys
import textwrap
from collections import deque
from pathlib import Path

import pytest
import torch

from ssgen.losses.contrastive import in_batch_info_nce, info_nce, nt_xent
from ssgen.losses.distillation import DINOLoss, IBOTPatchLoss, byol_loss
from ssgen.losses.queue import Queue

ROOT = Path(__file__).resolve().parents[1]


def cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum() / (a.norm() * b.norm())


def nt_xent_by_loop(z1, z2, temperature):
    views = list(z1) + list(z2)
    n, losses = len(z1), []
    for i, anchor in enumerate(views):
        positive = (i + n) % (2 * n)
        denominator = sum(torch.exp(cos(anchor, other) / temperature) for j, other in enumerate(views) if j != i)
        losses.append(-torch.log(torch.exp(cos(anchor, views[positive]) / temperature) / denominator))
    return torch.stack(losses).mean()


def info_nce_by_loop(q, k, negatives, temperature):
    losses = []
    for query, key in zip(q, k):
        logits = [cos(query, key) / temperature] + [cos(query, neg) / temperature for neg in negatives]
        losses.append(-logits[0] + torch.log(sum(torch.exp(logit) for logit in logits)))
    return torch.stack(losses).mean()


def in_batch_info_nce_by_loop(q, k, temperature):
    """Without MoCo v3's 2 * temperature factor."""
    losses = []
    for i, query in enumerate(q):
        logits = [cos(query, key) / temperature for key in k]
        losses.append(-logits[i] + torch.log(sum(torch.exp(logit) for logit in logits)))
    return torch.stack(losses).mean()


def values_and_grads(loss_fn, *tensors):
    leaves = [t.clone().requires_grad_() for t in tensors]
    loss = loss_fn(*leaves)
    loss.backward()
    return loss.detach(), [leaf.grad for leaf in leaves]


def assert_same_values_and_grads(fast, slow, *tensors):
    fast_loss, fast_grads = values_and_grads(fast, *tensors)
    slow_loss, slow_grads = values_and_grads(slow, *tensors)
    torch.testing.assert_close(fast_loss, slow_loss)
    for fast_grad, slow_grad in zip(fast_grads, slow_grads):
        torch.testing.assert_close(fast_grad, slow_grad)


def test_nt_xent_matches_the_loop():
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    assert_same_values_and_grads(lambda a, b: nt_xent(a, b, 0.3), lambda a, b: nt_xent_by_loop(a, b, 0.3), z1, z2)
    # Cosine similarity: the scale of the projections does not matter.
    torch.testing.assert_close(nt_xent(3 * z1, 0.5 * z2, 0.3), nt_xent(z1, z2, 0.3))


def test_info_nce_matches_the_loop():
    torch.manual_seed(1)
    q, k, negatives = (torch.randn(n, 4, dtype=torch.float64) for n in (3, 3, 6))
    assert_same_values_and_grads(lambda *t: info_nce(*t, 0.2), lambda *t: info_nce_by_loop(*t, 0.2), q, k, negatives)


def test_in_batch_info_nce_matches_the_loop_times_two_temperatures():
    torch.manual_seed(2)
    q, k = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    assert_same_values_and_grads(lambda a, b: in_batch_info_nce(a, b, 0.2),
                                 lambda a, b: 0.4 * in_batch_info_nce_by_loop(a, b, 0.2), q, k)


def test_byol_loss_known_values_and_stop_gradient():
    v = torch.tensor([[1.0, 2.0, -2.0]])
    assert byol_loss(v, 3 * v).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(v, -v).item() == pytest.approx(4.0)
    assert byol_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 5.0]])).item() == pytest.approx(2.0)
    p, z = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3, requires_grad=True)
    byol_loss(p, z).backward()
    assert z.grad is None and p.grad.abs().sum() > 0


def test_queue_is_fifo_with_wrap_around_and_resumes_from_its_state_dict():
    torch.manual_seed(3)
    queue = Queue(size=5, dim=2)
    torch.testing.assert_close(queue.keys.norm(dim=1), torch.ones(5))  # random unit vectors, as MoCo
    slots, counter = deque(maxlen=5), 0  # the reference: the latest 5 keys, one at a time

    def enqueue(n):
        nonlocal counter
        keys = torch.arange(counter, counter + n, dtype=torch.float32)[:, None].repeat(1, 2)
        counter += n
        queue.enqueue(keys)
        slots.extend(keys)

    enqueue(2)  # slots 0-1
    torch.testing.assert_close(queue.keys[:2], torch.stack(list(slots)))
    assert int(queue.position) == 2
    enqueue(2)
    enqueue(2)  # slots 4 and 0: the oldest key (0) goes first
    assert int(queue.position) == 1
    assert queue.keys[:, 0].tolist() == [5, 1, 2, 3, 4]
    enqueue(7)  # longer than the queue: its last 5 keys, oldest at the position
    assert int(queue.position) == 3
    assert queue.keys[:, 0].tolist() == [10, 11, 12, 8, 9]
    oldest_first = torch.cat([queue.keys[int(queue.position):], queue.keys[:int(queue.position)]])
    torch.testing.assert_close(oldest_first, torch.stack(list(slots)))

    resumed = Queue(size=5, dim=2)
    resumed.load_state_dict(queue.state_dict())
    batch = torch.randn(3, 2)
    queue.enqueue(batch)
    resumed.enqueue(batch)
    assert torch.equal(resumed.keys, queue.keys) and torch.equal(resumed.position, queue.position)


def cross_entropy_by_formula(teacher_row, student_row, center, student_temp, teacher_temp):
    """-sum_d softmax((t - c) / teacher_temp)_d * log softmax(s / student_temp)_d, written out."""
    target = torch.exp((teacher_row - center) / teacher_temp)
    target = target / target.sum()
    log_p = student_row / student_temp - torch.log(torch.exp(student_row / student_temp).sum())
    return -(target * log_p).sum()


def dino_by_loop(student, teacher, center, student_temp, teacher_temp, same_view_pairs=False):
    terms = []
    for i, t in enumerate(teacher):
        for j, s in enumerate(student):
            if i == j and not same_view_pairs:
                continue
            terms.append(torch.stack([cross_entropy_by_formula(t_row, s_row, center, student_temp, teacher_temp)
                                      for t_row, s_row in zip(t, s)]).mean())
    return torch.stack(terms).mean()


def test_dino_teacher_temperature_warms_up_linearly():
    loss = DINOLoss(8, teacher_temp=0.07, warmup_teacher_temp=0.04, warmup_steps=100)
    assert loss.teacher_temperature(0) == pytest.approx(0.04)
    assert loss.teacher_temperature(50) == pytest.approx(0.055)
    assert loss.teacher_temperature(100) == pytest.approx(0.07)
    assert loss.teacher_temperature(10_000) == pytest.approx(0.07)
    assert DINOLoss(8, teacher_temp=0.07, warmup_steps=0).teacher_temperature(0) == pytest.approx(0.07)


def test_dino_loss_skips_same_view_pairs_and_centres_after_the_loss():
    torch.manual_seed(4)
    student = [torch.randn(3, 6, dtype=torch.float64) for _ in range(4)]  # 2 global + 2 local views
    teacher = [torch.randn(3, 6, dtype=torch.float64) for _ in range(2)]
    loss = DINOLoss(6, student_temp=0.1, teacher_temp=0.07, warmup_teacher_temp=0.04, warmup_steps=10,
                    center_momentum=0.9).double()
    initial_center = torch.randn(6, dtype=torch.float64)
    loss.center.copy_(initial_center)
    value = loss(student, teacher, step=5)  # teacher temperature 0.055
    # The loss uses the centre before this batch's update; 6 pairs, same-view pairs left out.
    torch.testing.assert_close(value, dino_by_loop(student, teacher, initial_center, 0.1, 0.055))
    assert not torch.isclose(value, dino_by_loop(student, teacher, initial_center, 0.1, 0.055, same_view_pairs=True))
    # The centre: EMA of the mean of every teacher row (both global views).
    torch.testing.assert_close(loss.center, 0.9 * initial_center + 0.1 * torch.cat(teacher).mean(0))


def test_dino_loss_gradient_reaches_the_student_only():
    student = [torch.randn(2, 5, requires_grad=True) for _ in range(3)]
    teacher = [torch.randn(2, 5, requires_grad=True) for _ in range(2)]
    DINOLoss(5)(student, teacher, 0).backward()
    assert all(s.grad.abs().sum() > 0 for s in student) and all(t.grad is None for t in teacher)


def test_ibot_patch_loss_uses_masked_patches_only_averaged_per_image():
    torch.manual_seed(5)
    student, teacher = torch.randn(3, 4, 6, dtype=torch.float64), torch.randn(3, 4, 6, dtype=torch.float64)
    mask = torch.tensor([[True, False, False, False],  # image 0: one masked patch
                         [True, True, True, False],  # image 1: three
                         [False, False, False, False]])  # image 2: none, counts as 0
    loss = IBOTPatchLoss(6, student_temp=0.1, teacher_temp=0.07).double()
    center = torch.randn(6, dtype=torch.float64)
    loss.center.copy_(center)
    value = loss(student, teacher, mask, step=0)

    def patch_ce(b, p):
        return cross_entropy_by_formula(teacher[b, p], student[b, p], center, 0.1, 0.07)

    expected = (patch_ce(0, 0) + (patch_ce(1, 0) + patch_ce(1, 1) + patch_ce(1, 2)) / 3 + 0) / 3
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(loss.center, 0.9 * center + 0.1 * teacher.reshape(-1, 6).mean(0))

    # Unmasked patches' outputs, student's or teacher's, do not enter the loss nor get a gradient.
    loss.center.copy_(center)
    changed_student, changed_teacher = student.clone(), teacher.clone()
    changed_student[~mask] = 1e3 * torch.randn_like(changed_student[~mask])
    changed_teacher[~mask] = torch.randn_like(changed_teacher[~mask])
    changed_student.requires_grad_()
    changed_value = loss(changed_student, changed_teacher, mask, step=0)
    torch.testing.assert_close(changed_value, value)
    changed_value.backward()
    assert changed_student.grad[~mask].abs().sum() == 0 and changed_student.grad[mask].abs().sum() > 0


DISTRIBUTED = textwrap.dedent("""
    import sys

    import torch
    import torch.distributed as dist

    from ssgen.losses.contrastive import in_batch_info_nce, nt_xent
    from ssgen.losses.distillation import DINOLoss, IBOTPatchLoss
    from ssgen.losses.queue import Queue

    rank, folder = int(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2)
    inputs = torch.load(f"{folder}/inputs.pt")
    mine = slice(rank * len(inputs["x1"]) // 2, (rank + 1) * len(inputs["x1"]) // 2)
    out = {}
    for name, loss_fn in [("nt_xent", nt_xent), ("in_batch_info_nce", in_batch_info_nce)]:
        weight = inputs["weight"].clone().requires_grad_()
        x1, x2 = (inputs[x][mine].clone().requires_grad_() for x in ("x1", "x2"))
        loss = loss_fn(x1 @ weight, x2 @ weight, 0.3)
        loss.backward()
        out[name] = (loss.detach(), weight.grad, x1.grad, x2.grad)
    dino = DINOLoss(6)
    out["dino"] = (dino([v[mine] for v in inputs["student"]], [v[mine] for v in inputs["teacher"]], 0), dino.center)
    ibot = IBOTPatchLoss(6)
    out["ibot"] = (ibot(inputs["patches"][mine], inputs["patches"][mine], inputs["mask"][mine], 0), ibot.center)
    queue = Queue(5, 6)
    queue.load_state_dict(inputs["queue"])
    queue.enqueue(inputs["x1"][mine])
    out["queue"] = queue.state_dict()
    torch.save(out, f"{folder}/out-{rank}.pt")
    dist.destroy_process_group()
""")


@pytest.mark.e2e
def test_two_gloo_processes_give_the_one_process_losses_gradients_and_buffers(tmp_path):
    torch.manual_seed(6)
    inputs = {"x1": torch.randn(8, 6, dtype=torch.float64), "x2": torch.randn(8, 6, dtype=torch.float64),
              "weight": torch.randn(6, 6, dtype=torch.float64),
              "student": [torch.randn(8, 6) for _ in range(3)], "teacher": [torch.randn(8, 6) for _ in range(2)],
              "patches": torch.randn(8, 4, 6), "mask": torch.rand(8, 4) < 0.5, "queue": Queue(5, 6).state_dict()}
    torch.save(inputs, tmp_path / "inputs.pt")
    (tmp_path / "worker.py").write_text(DISTRIBUTED)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, str(tmp_path / "worker.py"), str(rank), str(tmp_path)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
               for rank in range(2)]
    try:
        for worker in workers:
            output, _ = worker.communicate(timeout=60)
            assert worker.returncode == 0, output[-3000:]
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
    outs = [torch.load(tmp_path / f"out-{rank}.pt") for rank in range(2)]

    for name, loss_fn in [("nt_xent", nt_xent), ("in_batch_info_nce", in_batch_info_nce)]:
        weight = inputs["weight"].clone().requires_grad_()
        x1, x2 = inputs["x1"].clone().requires_grad_(), inputs["x2"].clone().requires_grad_()
        loss = loss_fn(x1 @ weight, x2 @ weight, 0.3)
        loss.backward()
        (loss_0, weight_grad_0, *input_grads_0), (loss_1, weight_grad_1, *input_grads_1) = outs[0][name], outs[1][name]
        # The trainer averages the losses and the parameter gradients over the processes.
        torch.testing.assert_close((loss_0 + loss_1) / 2, loss.detach(), msg=name)
        torch.testing.assert_close((weight_grad_0 + weight_grad_1) / 2, weight.grad, msg=name)
        for one, two_0, two_1 in zip((x1.grad, x2.grad), input_grads_0, input_grads_1):
            torch.testing.assert_close(torch.cat([two_0, two_1]) / 2, one, msg=name)

    dino = DINOLoss(6)
    dino_loss = dino(inputs["student"], inputs["teacher"], 0)
    torch.testing.assert_close((outs[0]["dino"][0] + outs[1]["dino"][0]) / 2, dino_loss)
    ibot = IBOTPatchLoss(6)
    ibot_loss = ibot(inputs["patches"], inputs["patches"], inputs["mask"], 0)
    torch.testing.assert_close((outs[0]["ibot"][0] + outs[1]["ibot"][0]) / 2, ibot_loss)
    queue = Queue(5, 6)
    queue.load_state_dict(inputs["queue"])
    queue.enqueue(inputs["x1"])
    for out in outs:  # every process holds the global batch's centres and queue
        torch.testing.assert_close(out["dino"][1], dino.center)
        torch.testing.assert_close(out["ibot"][1], ibot.center)
        torch.testing.assert_close(out["queue"]["keys"], queue.keys)
        assert torch.equal(out["queue"]["position"], queue.position)
