"""N_g, the number of synthetic samples a class gets: the one rule (``synthetic_count``) that the shard
plan, the evaluations, the quality sets, the planner and the sweeps all read."""
from __future__ import annotations

from raygan.config import Config

__all__ = ["synthetic_count"]


def synthetic_count(cfg: Config, n_real: int) -> int:
    """N_g for a class of ``n_real`` real training samples: ensemble.samples_per_class when set, else
    round(ensemble.samples_ratio * n_real) when that is set (Python's round: halves to even), else
    n_real (N_g = N). The config check refuses both keys together."""
    e = cfg.ensemble
    if e.samples_per_class is not None:
        return int(e.samples_per_class)
    if e.samples_ratio is not None:
        return int(round(e.samples_ratio * n_real))
    return int(n_real)
