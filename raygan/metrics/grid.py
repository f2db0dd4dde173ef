"""Mode coverage on the 25-Gaussian grid and the Table 1 bootstrap of seed 000 Supplement A.

A generated point is *high quality* if it lies within 3 sigma (Euclidean) of its nearest mode mean;
a mode is *covered* if at least one high-quality point has it as nearest mode.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def nearest_modes(points: np.ndarray, means: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(nearest mode index per point, whether the point is high quality)."""
    points = np.asarray(points, dtype=np.float64)
    d2 = ((points[:, None, :] - means[None, :, :]) ** 2).sum(-1)
    nearest = d2.argmin(1)
    high_quality = np.sqrt(d2[np.arange(len(points)), nearest]) <= 3.0 * sigma
    return nearest, high_quality


def grid_quality(points: np.ndarray, means: np.ndarray, sigma: float) -> tuple[int, float]:
    """(modes covered, fraction of high-quality points) of one generated set."""
    nearest, hq = nearest_modes(points, means, sigma)
    return int(len(np.unique(nearest[hq]))), float(hq.mean()) if len(points) else 0.0


@dataclass
class Table1Row:
    ensemble_size: int
    modes_mean: float
    modes_std: float
    high_quality_mean: float   # percent
    high_quality_std: float


def split_evenly(total: int, parts: int) -> list[int]:
    """total split into `parts` counts differing by at most one (2500 over 3 GANs: 834, 833, 833)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def table1_bootstrap(pools: list[tuple[np.ndarray, np.ndarray]], *, max_ensemble: int,
                     eval_points: int, repeats: int, seed: int, n_modes: int = 25) -> list[Table1Row]:
    """Supplement A's protocol on pre-classified pools.

    ``pools[m] = (nearest mode per point, high-quality flag per point)`` for GAN m's many samples. For
    each T, `repeats` times: choose T distinct GANs, take eval_points/T random points from each, and
    score the union. Returns mean and std over repeats per T.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for T in range(1, max_ensemble + 1):
        counts = split_evenly(eval_points, T)
        modes, hqs = np.empty(repeats), np.empty(repeats)
        for r in range(repeats):
            chosen = rng.choice(len(pools), size=T, replace=False)
            covered = np.zeros(n_modes, dtype=bool)
            n_hq = 0
            for m, count in zip(chosen, counts):
                nearest, hq = pools[m]
                pick = rng.choice(len(nearest), size=count, replace=False)
                covered[nearest[pick][hq[pick]]] = True
                n_hq += int(hq[pick].sum())
            modes[r], hqs[r] = covered.sum(), 100.0 * n_hq / eval_points
        rows.append(Table1Row(T, float(modes.mean()), float(modes.std()), float(hqs.mean()),
                              float(hqs.std())))
    return rows
