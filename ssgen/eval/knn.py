"""Weighted k-nearest-neighbour classification of frozen features: the monitor that
self-supervised libraries report beside the linear probe (InstDisc, Wu et al. 2018; DINO's
eval_knn). No training, so it is cheap enough to run often.

A test image's k most similar training images (cosine similarity of L2-normalised features)
vote for their classes with weight exp(similarity / temperature); the most voted class is the
prediction.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ssgen.config import KNNConfig
from ssgen.eval.probe import ProbeData, frozen_features
from ssgen.parallel import world


@torch.no_grad()
def knn_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, num_classes: int, k: int = 200, temperature: float = 0.1,
                 chunk: int = 256) -> float:
    """Top-1 of the weighted kNN classifier on the test features [M, F], neighbours drawn from the
    train features [N, F] (k is capped at N). Computed on the train features' device, `chunk` test
    rows at a time: the similarities take chunk x N floats (50k train rows: 51 MB at 256)."""
    if len(train_features) == 0 or len(test_features) == 0:
        raise ValueError(f"knn_accuracy needs train and test features, got {len(train_features)} "
                         f"and {len(test_features)} rows")
    train = F.normalize(train_features.float(), dim=1)
    train_labels, test_labels = train_labels.to(train.device), test_labels.to(train.device)
    k = min(k, len(train))
    correct = torch.zeros((), dtype=torch.long, device=train.device)
    for rows, labels in zip(test_features.split(chunk), test_labels.split(chunk)):
        similarity = F.normalize(rows.to(train.device).float(), dim=1) @ train.T  # [chunk, N]
        nearest, index = similarity.topk(k, dim=1)  # [chunk, k]
        votes = torch.zeros(len(rows), num_classes, device=train.device)
        votes.scatter_add_(1, train_labels[index], (nearest / temperature).exp())
        correct += (votes.argmax(1) == labels).sum()
    return correct.item() / len(test_features)


def protocol(k: int, temperature: float, train_size: int, test_size: int) -> dict:
    """How a knn_accuracy figure was measured; the caller adds the dataset and splits."""
    k = min(k, train_size)
    return {"metric": "kNN top-1", "train_size": train_size, "test_size": test_size, "k": k,
            "temperature": temperature,
            "classifier": f"weighted kNN, k={k}, cosine similarity, votes exp(sim / {temperature:g})"}


def knn_probe(method, data: ProbeData, cfg: KNNConfig, device: torch.device,
              layers: Sequence[str] | None = None, log=None) -> dict[str, float]:
    """{layer: kNN top-1} of the method's frozen features (the main process alone classifies
    under torchrun; the others get {})."""
    layers = method.check_features(layers or cfg.layers)
    train, test = frozen_features(method, data, layers, cfg.batch_size, device, log)
    if world().rank != 0:
        return {}
    return {layer: knn_accuracy(train[layer], data.train_labels, test[layer], data.test_labels,
                                data.num_classes, cfg.k, cfg.temperature)
            for layer in layers}


def knn_protocol(data: ProbeData, cfg: KNNConfig) -> dict:
    return {**data.description("kNN top-1"),
            **{k: v for k, v in protocol(cfg.k, cfg.temperature, len(data.train_labels),
                                         len(data.test_labels)).items() if k != "metric"}}
