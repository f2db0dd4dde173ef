"""Per-member mode collapse: a member's spread of samples relative to its class's real images.

diversity = mean Euclidean distance between distinct pairs of n of the member's samples
            / the same over n of the class's real training images (n = min(PROBE_SAMPLES, N_k)),
in pixel space ([-1, 1]; 2-D points as they are). A generator that draws one image whatever z scores 0;
one that spreads as much as the real class scores about 1 (more for noisy, undertrained members). Below
ensemble.collapse_threshold (default 0.1: a member whose samples lie ten times closer together than the
class's real images) the member is collapsed. Partial collapse to a few far-apart modes keeps the mean
distance up and is not what this flags: it catches a member whose samples are (nearly) all alike.
"""
from __future__ import annotations

from typing import Optional

import torch

from raygan.metrics.neighbours import as_rows

PROBE_SAMPLES = 256  # samples per side: n^2 distances, milliseconds even at 128 px


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean Euclidean distance over the distinct pairs of rows of ``x`` (any sample shape)."""
    rows = as_rows(x, torch.float64)
    if len(rows) < 2:
        raise ValueError("a pairwise distance needs at least two samples")
    d = torch.cdist(rows, rows)
    return float(d.sum() / (len(rows) * (len(rows) - 1)))


def member_diversity(samples: torch.Tensor, real: torch.Tensor) -> Optional[float]:
    """The member's diversity relative to its class's real images (see the module docstring); the
    caller draws ``samples`` and picks ``real`` (the same number of each). None when the real images
    are all alike (no spread to compare with: the member is not measured)."""
    spread = mean_pairwise_distance(real)
    return mean_pairwise_distance(samples) / spread if spread > 0 else None


__all__ = ["PROBE_SAMPLES", "mean_pairwise_distance", "member_diversity"]
