"""Precision, recall, density and coverage (Naeem et al. 2020, "Reliable fidelity and diversity
metrics for generative models"), from k-nearest-neighbour balls in a feature space.

With real features X (N) and fake features Y (M), r_k(x) the distance from x to its k-th nearest
neighbour within its own set and B(x, r) the closed ball:
  precision = 1/M  sum_j 1[Y_j in some B(X_i, r_k(X_i))]          (Kynkaanniemi et al. 2019)
  recall    = 1/N  sum_i 1[X_i in some B(Y_j, r_k(Y_j))]
  density   = 1/(kM) sum_j sum_i 1[Y_j in B(X_i, r_k(X_i))]       (Naeem eq. 2; about 1 when Y ~ X)
  coverage  = 1/N  sum_i 1[the nearest Y to X_i lies in B(X_i, r_k(X_i))]   (Naeem eq. 3)
raygan computes them in the domain feature space; distances are Euclidean in float64 and computed in
blocks of chunk_size x chunk_size (raygan.metrics.neighbours), so memory never holds an N x M matrix.
"""
from __future__ import annotations

import torch

from raygan.metrics.neighbours import as_rows, distance_blocks, search

DEFAULT_K = 5  # Naeem et al.'s recommended k


def _as_f64(x) -> torch.Tensor:
    return as_rows(x, torch.float64).cpu()


def kth_neighbour_radii(x: torch.Tensor, k: int, *, chunk_size: int = 2048) -> torch.Tensor:
    """Distance from every row of x to its k-th nearest other row (itself excluded)."""
    x = _as_f64(x)
    n = len(x)
    if not 1 <= k < n:
        raise ValueError(f"k={k} needs 1 <= k < the number of samples ({n})")
    found = search(x, x, k=k, dtype=torch.float64, chunk_size=chunk_size, exclude_self=True)
    return found.distances[:, 0, k - 1]


def prdc(real_features, fake_features, *, k: int = DEFAULT_K, chunk_size: int = 2048) -> dict:
    """Precision, recall, density and coverage of fake features against real ones (see module doc).

    k is lowered to (smallest set size - 1) for tiny sets; the k used is returned as ``k``.
    """
    real, fake = _as_f64(real_features), _as_f64(fake_features)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"feature dimensions differ: {real.shape[1]} vs {fake.shape[1]}")
    k = min(k, len(real) - 1, len(fake) - 1)
    if k < 1:
        raise ValueError("PRDC needs at least two real and two fake samples")
    r_real = kth_neighbour_radii(real, k, chunk_size=chunk_size)
    r_fake = kth_neighbour_radii(fake, k, chunk_size=chunk_size)
    inside_count = torch.zeros(len(fake), dtype=torch.float64)   # real balls containing fake j
    real_recalled = torch.zeros(len(real), dtype=torch.bool)     # real i inside some fake ball
    nearest_fake = torch.full((len(real),), float("inf"), dtype=torch.float64)
    for i, j, d in distance_blocks(real, fake, chunk_size=chunk_size):  # d: (real block, fake block)
        rows, cols = slice(i, i + d.shape[0]), slice(j, j + d.shape[1])
        inside_count[cols] += (d <= r_real[rows, None]).sum(0).to(torch.float64)
        real_recalled[rows] |= (d <= r_fake[None, cols]).any(1)
        nearest_fake[rows] = torch.minimum(nearest_fake[rows], d.min(1).values)
    return {"precision": float((inside_count > 0).double().mean()),
            "recall": float(real_recalled.double().mean()),
            "density": float(inside_count.sum() / (k * len(fake))),
            "coverage": float((nearest_fake <= r_real).double().mean()),
            "k": int(k), "n_real": len(real), "n_fake": len(fake)}


__all__ = ["prdc", "kth_neighbour_radii", "DEFAULT_K"]
