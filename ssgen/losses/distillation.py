"""Self-distillation losses: BYOL's regression onto a momentum target, DINO's cross-entropy
between a centred, sharpened teacher and the student over views, iBOT's over masked patches.

DINO and iBOT share their teacher side (`CentredTeacher`): the targets are the teacher's outputs
minus a running centre, through a softmax at a low temperature. Centring alone would drive the
targets towards uniform and sharpening alone towards one dimension; together they avoid collapse.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ssgen.parallel import world


def byol_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's loss of online predictions p [N, D] against target projections z [N, D]: the squared
    distance of the L2-normalised vectors, 2 - 2 cos(p, z), averaged over rows. z is a target and
    gets no gradient. BYOL sums this over its two (prediction, other view's target) pairs."""
    return (2 - 2 * (F.normalize(p, dim=-1) * F.normalize(z.detach(), dim=-1)).sum(-1)).mean()


class CentredTeacher(nn.Module):
    """The teacher's targets and the student's cross-entropy against them, for DINO and iBOT.

    The teacher temperature rises linearly from `warmup_teacher_temp` at step 0 to `teacher_temp`
    at `warmup_steps`, and stays there (DINO: a high temperature early makes training unstable;
    DINO's per-epoch np.linspace reaches the end one epoch before `warmup_steps`, this at it).
    The centre (a buffer, so checkpoints resume it) is an EMA of the teacher outputs' mean over
    the global batch."""

    def __init__(self, dim: int, student_temp: float, teacher_temp: float, warmup_teacher_temp: float,
                 warmup_steps: int, center_momentum: float):
        super().__init__()
        self.student_temp, self.teacher_temp = student_temp, teacher_temp
        self.warmup_teacher_temp, self.warmup_steps = warmup_teacher_temp, warmup_steps
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(dim))

    def teacher_temperature(self, step: int) -> float:
        progress = min(step / self.warmup_steps, 1.0) if self.warmup_steps > 0 else 1.0
        return self.warmup_teacher_temp + (self.teacher_temp - self.warmup_teacher_temp) * progress

    def targets(self, teacher_out: torch.Tensor, step: int) -> torch.Tensor:
        """Softmax of the centred teacher outputs [..., dim] at the step's teacher temperature."""
        return F.softmax((teacher_out.detach() - self.center) / self.teacher_temperature(step), dim=-1)

    def cross_entropy(self, targets: torch.Tensor, student_out: torch.Tensor) -> torch.Tensor:
        """[...] cross-entropy of the student's softmax at `student_temp` against the targets."""
        return -(targets * F.log_softmax(student_out / self.student_temp, dim=-1)).sum(-1)

    @torch.no_grad()
    def update_center(self, teacher_out: torch.Tensor) -> None:
        """EMA of the centre towards the mean of the teacher's output rows [..., dim], over every
        process's rows under torchrun (one all-reduce of their sum and count)."""
        rows = teacher_out.detach().reshape(-1, teacher_out.shape[-1]).to(self.center.dtype)
        sum_and_count = torch.cat([rows.sum(0), rows.new_tensor([len(rows)])])
        if world().size > 1:
            dist.all_reduce(sum_and_count)
        batch_mean = sum_and_count[:-1] / sum_and_count[-1]
        self.center.mul_(self.center_momentum).add_(batch_mean, alpha=1 - self.center_momentum)


class DINOLoss(CentredTeacher):
    """DINO's loss: the mean, over every (teacher view i, student view j) pair with i != j, of the
    cross-entropy between the teacher's targets and the student's softmax, averaged over images.

    The teacher sees the global views only: teacher_out[i] and student_out[i] are the same view
    (the global views first among the student's, then the local ones)."""

    def __init__(self, dim: int, student_temp: float = 0.1, teacher_temp: float = 0.04,
                 warmup_teacher_temp: float = 0.04, warmup_steps: int = 0, center_momentum: float = 0.9):
        super().__init__(dim, student_temp, teacher_temp, warmup_teacher_temp, warmup_steps, center_momentum)

    def forward(self, student_out: list[torch.Tensor], teacher_out: list[torch.Tensor], step: int) -> torch.Tensor:
        """student_out: V views' outputs [B, dim]; teacher_out: the first G <= V views' [B, dim]."""
        if not 0 < len(teacher_out) <= len(student_out) or len(student_out) < 2:
            raise ValueError(f"DINOLoss needs 2 or more student views and 1 to that many teacher views, "
                             f"got {len(student_out)} student and {len(teacher_out)} teacher views")
        targets = [self.targets(view, step) for view in teacher_out]
        loss = torch.stack([self.cross_entropy(target, student).mean()
                            for i, target in enumerate(targets)
                            for j, student in enumerate(student_out) if i != j]).mean()
        # After the loss, as in DINO: a batch's targets are centred by the earlier batches' mean,
        # so each row's target depends on that row alone, and the all-reduce waits for no one.
        self.update_center(torch.cat(teacher_out))
        return loss


class IBOTPatchLoss(CentredTeacher):
    """iBOT's masked-image-modelling loss: on each patch the student saw masked, the cross-entropy
    between the teacher's targets (the teacher saw the view unmasked) and the student's softmax;
    averaged over an image's masked patches, then over images. An image with no masked patch
    counts as 0 in the mean over images, as in iBOT. The patch centre is an EMA of the mean over
    all the teacher's patches, masked or not, also as in iBOT.

    Several views may be stacked along the batch: with equal-size views the mean over all of them
    is iBOT's mean over views of the mean over images."""

    def __init__(self, dim: int, student_temp: float = 0.1, teacher_temp: float = 0.07,
                 warmup_teacher_temp: float = 0.04, warmup_steps: int = 0, center_momentum: float = 0.9):
        super().__init__(dim, student_temp, teacher_temp, warmup_teacher_temp, warmup_steps, center_momentum)

    def forward(self, student_patches: torch.Tensor, teacher_patches: torch.Tensor, mask: torch.Tensor,
                step: int) -> torch.Tensor:
        """student_patches, teacher_patches: [B, P, dim]; mask: [B, P] (or [B, h, w]) bool, True
        where the student's patch was masked."""
        mask = mask.flatten(1).bool()
        per_patch = self.cross_entropy(self.targets(teacher_patches, step), student_patches)  # [B, P]
        # torch.where, not boolean indexing: no host sync and static shapes (compiled steps), and
        # unmasked patches give exactly 0 and no gradient.
        masked = torch.where(mask, per_patch, torch.zeros_like(per_patch))
        loss = (masked.sum(1) / mask.sum(1).clamp(min=1)).mean()
        self.update_center(teacher_patches)
        return loss
