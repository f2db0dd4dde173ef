"""Memorisation measures, pure torch/numpy: exhaustive chunked nearest neighbours, per-member
segments, the membership-inference AUROC and the null distribution of the fraction below a holdout's
1st percentile. raygan.audit builds the audit (reference, verdict, figure, privacy.json) on them.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from raygan.gan.train import resolve_device


@torch.no_grad()
def nearest(queries: torch.Tensor, reference: torch.Tensor, *, chunk_size: int = 2048,
            device: str | torch.device = "cpu", segments: Optional[list[tuple[int, int]]] = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Exhaustive nearest neighbour by mean squared difference, chunk_size x chunk_size at a time.

    Returns (distance, index) for every query row: shape (Q,), or (Q, S) with ``segments``, a list of
    S [start, stop) row ranges of ``reference`` searched separately (an ensemble's members). Memory is
    the inputs plus one block, never Q x M. The block uses |q|^2 + |r|^2 - 2 q.r, which loses precision
    when q and r are almost equal, so the winning pair's distance is recomputed from the difference: an
    exact copy measures 0. An empty segment gives distance inf and index -1.
    """
    q_all = queries.reshape(len(queries), -1).float()
    r_all = reference.reshape(len(reference), -1).float()
    if q_all.shape[1] != r_all.shape[1]:
        raise ValueError(f"queries have {q_all.shape[1]} values per row, reference {r_all.shape[1]}")
    segs = [(0, len(r_all))] if segments is None else list(segments)
    dist = torch.full((len(q_all), len(segs)), float("inf"))
    index = torch.full((len(q_all), len(segs)), -1, dtype=torch.int64)
    dev = resolve_device(device)
    r_dev = r_all.to(dev)
    r_sq = (r_dev * r_dev).sum(1)
    for qs in range(0, len(q_all), chunk_size):
        q = q_all[qs:qs + chunk_size].to(dev)
        q_sq = (q * q).sum(1)
        for s, (lo, hi) in enumerate(segs):
            best = torch.full((len(q),), float("inf"), device=dev)
            arg = torch.full((len(q),), -1, dtype=torch.int64, device=dev)
            for rs in range(lo, hi, chunk_size):
                re = min(rs + chunk_size, hi)
                block = torch.addmm(r_sq[rs:re], q, r_dev[rs:re].T, alpha=-2.0)  # |r|^2 - 2 q.r
                val, idx = block.min(1)
                val = val + q_sq  # |q|^2 is constant along a row: added after the min
                better = val < best
                best, arg = torch.where(better, val, best), torch.where(better, idx + rs, arg)
            index[qs:qs + len(q), s] = arg.cpu()
        for s in range(len(segs)):
            rows = torch.arange(qs, qs + len(q))
            found = index[rows, s] >= 0
            chosen = r_dev[index[rows[found], s].to(dev)]
            dist[rows[found], s] = ((q[found.to(dev)] - chosen) ** 2).mean(1).cpu()
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
