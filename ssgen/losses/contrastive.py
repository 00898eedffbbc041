"""Contrastive losses: SimCLR's NT-Xent, MoCo's InfoNCE against a queue (v1/v2) or against the
batch's keys (v3). Every similarity is the cosine of L2-normalised vectors over a temperature.

Under torchrun each process holds a slice of the global batch: its anchors (queries) are its own
rows, their candidates come from every process, and its loss is the mean over its own anchors.
The trainer averages the processes' losses, which gives the one-process loss; `gather_with_grad`
sums the candidates' gradients over processes and the trainer divides parameter gradients by the
number of processes, which gives the one-process gradients.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssgen.parallel import gather_with_grad, world


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float, gather: bool = True) -> torch.Tensor:
    """SimCLR's NT-Xent of two views' projections z1, z2 [N, D] (row i of both: one image).

    Each of the 2N views is an anchor: its positive is the other view of its image, its negatives
    the other 2N - 2 views (itself excluded); the loss is the cross-entropy of the positive among
    them, averaged over the anchors. With `gather` (the default) the candidates under torchrun
    are the global batch's views, else this process's alone."""
    n = z1.shape[0]
    views = F.normalize(torch.cat([z1, z2]), dim=1)  # [2n, D]: this process's anchors
    candidates = gather_with_grad(views) if gather else views  # [2n * processes, D], rank order
    offset = world().rank * 2 * n if gather else 0  # where this process's views sit among them
    anchor = torch.arange(2 * n, device=views.device)
    itself = offset + anchor
    positive = offset + (anchor + n) % (2 * n)  # view 1 of image i <-> view 2 of image i
    logits = views @ candidates.T / temperature  # [2n, 2n * processes]
    logits = logits.scatter(1, itself[:, None], float("-inf"))  # a view is not its own negative
    return F.cross_entropy(logits, positive)


def info_nce(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo v1/v2's InfoNCE: each query q [N, D] against its own key k [N, D] (the positive) and
    the queue's keys `negatives` [Q, D]; cross-entropy of the positive, averaged over queries.

    Nothing is detached here: MoCo's keys come from the momentum encoder under no_grad, and the
    queue is a buffer. The queue is the same in every process, so nothing is gathered."""
    q, k, negatives = (F.normalize(t, dim=1) for t in (q, k, negatives))
    positive = (q * k).sum(1, keepdim=True)  # [N, 1]
    logits = torch.cat([positive, q @ negatives.T], dim=1) / temperature  # [N, 1 + Q]
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def in_batch_info_nce(q: torch.Tensor, k: torch.Tensor, temperature: float) -> torch.Tensor:
    """MoCo v3's InfoNCE: each query q [N, D] against the keys of the global batch (gathered in
    rank order under torchrun), its own key k [N, D] the positive; the cross-entropy averaged
    over queries, times 2 * temperature.

    The factor is MoCo v3's (Algorithm 1 and its reference code): the gradient of the
    cross-entropy with respect to the cosines scales as 1 / temperature, and the factor takes
    that away, so the paper's learning rates hold at any temperature. MoCo v3 sums this over the
    two (q1, k2), (q2, k1) pairs. Keys carry gradients if they have them (MoCo's have none)."""
    q, k = F.normalize(q, dim=1), F.normalize(k, dim=1)
    keys = gather_with_grad(k)  # [N * processes, D]
    own_key = world().rank * len(q) + torch.arange(len(q), device=q.device)
    return F.cross_entropy(q @ keys.T / temperature, own_key) * (2 * temperature)
