"""The 2D grid of seed 000 Supplement A: 25 Gaussians, means (4 + 2i, 4 + 2j), sigma 0.05."""
from __future__ import annotations

import numpy as np
import torch


def grid_means() -> np.ndarray:
    """The 25 mode centres, shape (25, 2), row-major over (i, j) in {0..4}^2."""
    ij = np.array([(i, j) for i in range(5) for j in range(5)], dtype=np.float64)
    return 4.0 + 2.0 * ij


def sample_grid(n_points: int, sigma: float, seed: int) -> torch.Tensor:
    """n_points drawn uniformly over the 25 modes, each an isotropic Gaussian of std sigma."""
    rng = np.random.default_rng(seed)
    means = grid_means()
    modes = rng.integers(0, len(means), size=n_points)
    points = means[modes] + sigma * rng.standard_normal((n_points, 2))
    return torch.from_numpy(points.astype(np.float32))
