"""The one rule for a class's mixture of size T: which members form it, and their weights p_t.

Seed 000 Section 2: G_T = sum_t p_t G_t. Independent members take ensemble.weights[:T] (none given:
uniform); boosted ones (AdaGAN, seed 001's reweighting) the mixture after step T, from the class's
boosting state (raygan.ensemble.boosting_loop). A member that diverged in every attempt has no manifest
entry and is left out, the others' weights renormalised without it: the shards give it p_t = 0
(raygan.synthesis.shards.mixture_weights), the regenerated sets and the shard-row rule of
raygan.evaluation.measured draw only from the members recorded.

A module of its own rather than part of raygan.ensemble.mixture: the boosting state's path lives in
boosting_loop, which builds on the Mixture.
"""
from __future__ import annotations

import json
from typing import Optional

from raygan.config import Config
from raygan.ensemble.boosting_loop import state_path
from raygan.runs import RunFolder


def members_at(run: RunFolder, class_name: str, T: int) -> list[int]:
    """The member indices of a class's size-T mixture: those of 0..T-1 that the manifest records."""
    recorded = run.manifest()["members"]
    return [t for t in range(T) if f"{class_name}/{t}" in recorded]


def mixture_weights_at(run: RunFolder, cfg: Config, class_name: str, T: int) -> Optional[list[float]]:
    """p_t of members_at's members, not renormalised (None: uniform): boosting after step T, else the
    configured ones."""
    members = members_at(run, class_name, T)
    if cfg.ensemble.method != "independent":
        # fetched: on a URI run the driver's mirror may not hold the boosting state its tasks wrote
        state = json.loads(run.fetch(state_path(run, class_name).relative_to(run.path)).read_text())
        weights = state["steps"][T - 1]["mixture_weights"]
    elif cfg.ensemble.weights is not None:
        weights = list(cfg.ensemble.weights[:T])
    else:
        return None
    return [weights[t] for t in members]


__all__ = ["members_at", "mixture_weights_at"]
