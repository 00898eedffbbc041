"""The losses of the semi-supervised methods (ssgen/methods/semisup), on logits [N, classes].

Each is a plain function of tensors, so a test can hold it to hand-computed values:
    linear_ramp          the weight schedule of an unlabelled loss (Lee 2013's alpha(t))
    pseudo_label_loss    CE against the model's own confident argmax (Lee 2013)
    entropy              the mean entropy of the predictions (Grandvalet & Bengio 2005)
    consistency_kl       KL(p(target) || p(prediction)), the target detached (EnAET)
    soft_cross_entropy   CE against a distribution (Noisy Student's soft pseudo-labels)
    distillation_loss    CE of the student against the teacher, both at a temperature (SimCLRv2)
    mpl_feedback         Meta Pseudo Labels' first-order teacher signal
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def linear_ramp(fraction: float, start: float, end: float) -> float:
    """0 before `start`, rising linearly to 1 at `end`, 1 after (fractions of the run). Lee 2013
    ramps the pseudo-label weight this way so that the first, mostly wrong, predictions do not
    teach the network their own mistakes; start == end is a step at `start`."""
    if fraction < start:
        return 0.0
    if fraction >= end:
        return 1.0
    return (fraction - start) / (end - start)


def pseudo_label_loss(logits: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean over all rows of CE(logits, argmax) on the rows whose top probability is at least
    `threshold` (others count 0), the share of rows kept). The labels are hard and carry no
    gradient: the network is pulled towards what it already believes, where it believes it."""
    probabilities = logits.detach().float().softmax(1)
    confidence, labels = probabilities.max(1)
    kept = (confidence >= threshold).float()
    loss = (F.cross_entropy(logits.float(), labels, reduction="none") * kept).mean()
    return loss, kept.mean()


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum p log p (nats): low where predictions are confident."""
    log_p = logits.float().log_softmax(1)
    return -(log_p.exp() * log_p).sum(1).mean()


def consistency_kl(target_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Mean over rows of KL(softmax(target) || softmax(logits)); the target gets no gradient,
    so the prediction on the transformed image moves towards the one on the original."""
    target = target_logits.detach().float().log_softmax(1)
    return (target.exp() * (target - logits.float().log_softmax(1))).sum(1).mean()


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum targets * log softmax(logits); targets [N, classes] sum to 1."""
    return -(targets.detach().float() * logits.float().log_softmax(1)).sum(1).mean()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """SimCLRv2's distillation loss (Chen et al. 2020, eq. 2): -sum P_T(y|x; tau) log P_S(y|x; tau),
    both softmaxes of logits / tau, averaged over images. A higher tau softens the teacher's
    targets (towards uniform), so the student also learns the teacher's ranking of wrong classes.
    No tau^2 factor (Hinton et al. add one when mixing with a hard-label loss; SimCLRv2 does not)."""
    return soft_cross_entropy(student_logits / temperature, (teacher_logits.detach().float() / temperature).softmax(1))


def mpl_feedback(student_loss_before: torch.Tensor, student_loss_after: torch.Tensor) -> torch.Tensor:
    """Meta Pseudo Labels' teacher signal h (Pham et al. 2021, first-order form): the drop of the
    student's labelled loss over its update on the teacher's pseudo-labels. By a first-order
    Taylor expansion it is lr * (grad of the labelled loss) . (grad of the pseudo-label loss), and the
    teacher's gradient is h * grad CE(pseudo-label, teacher logits): h > 0 (the pseudo-labels
    helped) makes the teacher more sure of them, h < 0 less."""
    return (student_loss_before - student_loss_after).detach()
