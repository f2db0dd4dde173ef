"""Memorisation measures, pure torch/numpy: exhaustive chunked nearest neighbours, per-member
segments, the membership-inference AUROC and the null distribution of the fraction below a holdout's
1st percentile. raygan.audit builds the audit (reference, verdict, figure, privacy.json) on them.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from raygan.metrics.neighbours import search


def nearest(queries: torch.Tensor, reference: torch.Tensor, *, chunk_size: int = 2048,
            device: str | torch.device = "cpu", segments: Optional[list[tuple[int, int]]] = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exhaustive nearest neighbour by mean squared difference (raygan.metrics.neighbours, "mse").

    Returns (distance, index) for every query row: shape (Q,), or (Q, S) with ``segments``, a list of
    S [start, stop) row ranges of ``reference`` searched separately (an ensemble's members). Memory is
    the inputs plus one chunk_size x chunk_size block, never Q x M; an exact copy measures 0. An empty
    segment gives distance inf and index -1.
    """
    found = search(queries, reference, metric="mse", chunk_size=chunk_size, device=device,
                   segments=segments)
    dist, index = found.distances[:, :, 0], found.indices[:, :, 0]
    return (dist[:, 0], index[:, 0]) if segments is None else (dist, index)


def member_segments(members: np.ndarray) -> tuple[list[int], list[tuple[int, int]]]:
    """Member ids and their [start, stop) row ranges; rows must be sorted by member."""
    members = np.asarray(members)
    if len(members) and np.any(np.diff(members) < 0):
        raise ValueError("synthetic rows must be sorted by member")
    ids, starts = np.unique(members, return_index=True)
    stops = list(starts[1:]) + [len(members)]
    return [int(i) for i in ids], [(int(a), int(b)) for a, b in zip(starts, stops)]


def mia_auroc(train_dist: np.ndarray, holdout_dist: np.ndarray) -> Optional[float]:
    """AUROC of training (1) vs holdout (0) membership scored by closeness to the synthetic set."""
    from sklearn.metrics import roc_auc_score

    if not len(train_dist) or not len(holdout_dist):
        return None
    labels = np.r_[np.ones(len(train_dist)), np.zeros(len(holdout_dist))]
    return float(roc_auc_score(labels, -np.r_[train_dist, holdout_dist]))


def null_fraction_below_p1(n: int, level: float = 0.99) -> float:
    """How far the fraction below the holdout's p1 reaches when nothing is copied (its ``level``
    quantile): a fresh sample falls below the k-th smallest of n holdout distances with probability
    ~ Beta(k, n + 1 - k); np.quantile's p1 interpolates between the k-th and the (k+1)-th."""
    from scipy.stats import beta

    h = 0.01 * (n - 1)
    k = int(np.floor(h)) + 1
    upper = min(k + 1, n)
    return float((1 - (h - k + 1)) * beta.ppf(level, k, n + 1 - k)
                 + (h - k + 1) * beta.ppf(level, upper, n + 1 - upper))
