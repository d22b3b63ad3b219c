"""The cell finder: rank every cell by how well it tracks each feature of the text.

A yes/no feature is scored by the AUC of the cell's value as a classifier of it, a numeric one by
the Pearson correlation; the score is max(AUC, 1 - AUC) or |r|, so a cell that is low where the
feature holds counts as much as one that is high (`sign` says which). Everything is a matmul over
all cells at once; the ranks AUC needs are taken for blocks of cells, to bound the memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from charrnn.inside.features import Feature

RANK_BLOCK = 256  # cells whose ranks are held at once: T x RANK_BLOCK x 24 bytes (argsort, ranks, values)


@dataclass
class Ranking:
    """Every cell's score for one feature, best first."""

    feature: str
    metric: str  # "auc" or "r"
    cells: list[tuple[int, int, str]]  # (layer, index, kind), best first
    scores: np.ndarray  # in [0.5, 1] for AUC, [0, 1] for |r|
    signs: np.ndarray  # +1: the cell is higher where the feature holds (or grows with it); -1: lower


def _ranks(values: torch.Tensor) -> torch.Tensor:
    """The 0-based rank of each value in its column (T, C), as float64, ties broken by position."""
    order = values.argsort(dim=0)
    ranks = torch.empty(values.shape, dtype=torch.float64)
    ranks.scatter_(0, order, torch.arange(len(values), dtype=torch.float64).unsqueeze(1).expand_as(order))
    return ranks


def auc(ranks: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """The AUC of each column, given its ranks (T, C), as a score for the boolean positive (T,): (C,)."""
    n_pos = float(positive.sum())
    n_neg = len(positive) - n_pos
    # Mann-Whitney: the (positive, negative) pairs in the right order are the positives' rank sum
    # less the pairs among the positives themselves.
    return (positive.to(torch.float64) @ ranks - n_pos * (n_pos - 1) / 2) / (n_pos * n_neg)


def pearson(values: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pearson's r of each column of values (T, C) with target (T,); 0 for a constant column: (C,)."""
    v = values.double()
    v = v - v.mean(0)
    t = target.double() - target.double().mean()
    norms = v.norm(dim=0) * t.norm()
    return torch.where(norms > 0, (t @ v) / norms.clamp_min(1e-300), 0.0)


def rank_cells(series: dict[tuple[int, str], torch.Tensor], features: list[Feature]) -> list[Ranking]:
    """A ranking of all the cells in `series` ((layer, kind) -> (T, H)) for each non-constant feature."""
    features = [f for f in features if not f.constant()]
    targets = [torch.from_numpy(f.values) for f in features]
    names, raw = [], [[] for _ in features]
    for layer, kind in sorted(series):
        block_all = series[layer, kind].float().cpu()
        names += [(layer, i, kind) for i in range(block_all.shape[1])]
        for lo in range(0, block_all.shape[1], RANK_BLOCK):
            block = block_all[:, lo : lo + RANK_BLOCK]
            ranks = _ranks(block) if any(f.binary for f in features) else None
            for j, (f, target) in enumerate(zip(features, targets, strict=True)):
                raw[j].append(auc(ranks, target) if f.binary else pearson(block, target))
    found = []
    for f, parts in zip(features, raw, strict=True):
        r = torch.cat(parts)
        middle = 0.5 if f.binary else 0.0  # what a cell that knows nothing of the feature scores
        score = (r - middle).abs() + middle
        sign = torch.where(r >= middle, 1, -1)
        order = score.argsort(descending=True)
        found.append(Ranking(f.name, "auc" if f.binary else "r", [names[i] for i in order.tolist()],
                             score[order].numpy(), sign[order].numpy()))
    return found
