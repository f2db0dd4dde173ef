"""Per-member collapse detection after training, and what ensemble.on_collapse does about it.

Every trained per-class member draws PROBE_SAMPLES samples (seeds.diversity_probe of its seed) and is
scored against as many of its class's real training images (raygan.metrics.collapse). Below
ensemble.collapse_threshold it is collapsed:
- warn: kept; a log warning; its entry says so.
- drop: its entry gets status "collapsed" and goes under the manifest's "diverged" section (the members
  given up), so synthesis leaves it out and renormalises its class's mixture as for a diverged member.
- retrain: MemberCollapsedError, which the divergence retries (raygan.ensemble.members.with_retries)
  treat as a divergence: the member trains again from scratch with its next seed (seeds.member_retry),
  and is given up (status "diverged", the collapse as its error) once train.divergence_retries are spent.
Every measured entry records "diversity" (the score) and "collapse" (threshold, collapsed, decision).
A conditional member (one model for every class) is measured class by class, its generator fixed to
each class in turn against that class's real images, and scores its lowest: a member that collapsed
one class is collapsed (:func:`measure_conditional`). Members trained under privacy (their real images
are private, and a decision made from them would shape the released set outside the ledger) are not
measured.
"""
from __future__ import annotations

import logging
from typing import Optional

import torch
import torch.nn as nn

from raygan import seeds
from raygan.config import Config
from raygan.gan.models import ConditionedGenerator
from raygan.gan.train import GANDivergedError
from raygan.metrics.collapse import PROBE_SAMPLES, member_diversity
from raygan.synthesis.generate import generate

logger = logging.getLogger(__name__)
COLLAPSED = "collapsed"  # the status of a dropped member


class MemberCollapsedError(GANDivergedError):
    """A collapsed member under ensemble.on_collapse=retrain: retried with its next seed like a
    diverged one."""


def measure(generator: nn.Module, real: Optional[torch.Tensor], *, seed: int, device) -> Optional[float]:
    """The member's diversity against ``real`` (its class's training images), or None when there is
    nothing to compare with (not measured, fewer than two images, or all of them alike)."""
    if real is None or len(real) < 2:
        return None
    n = min(PROBE_SAMPLES, len(real))
    probe = seeds.diversity_probe(seed)
    pick = torch.randperm(len(real), generator=torch.Generator().manual_seed(probe))[:n]
    samples = generate(generator, n, seed=probe, device=device)
    return member_diversity(samples, real[pick].cpu())


def measure_conditional(generator: nn.Module, real: torch.Tensor, labels: torch.Tensor, *, seed: int,
                        device) -> Optional[float]:
    """A conditional member's diversity: the lowest over its classes of :func:`measure` with the
    generator fixed to the class, against that class's images in ``real`` (``labels``: their class
    indices); None when no class can be measured."""
    scores = [measure(ConditionedGenerator(generator, k), real[labels == k], seed=seed, device=device)
              for k in labels.unique().tolist()]
    scores = [s for s in scores if s is not None]
    return min(scores) if scores else None


def judge(generator: nn.Module, real: Optional[torch.Tensor], cfg: Config, *, seed: int, device,
          who: str, labels: Optional[torch.Tensor] = None) -> dict:
    """The entry fields of a trained member's collapse check (empty when not measured); raises
    MemberCollapsedError for a collapsed member under on_collapse=retrain. ``labels``: a conditional
    member's, ``real`` its training split (measured class by class)."""
    threshold, action = cfg.ensemble.collapse_threshold, cfg.ensemble.on_collapse
    if threshold <= 0 or real is None:
        score = None
    elif labels is not None:
        score = measure_conditional(generator, real, labels, seed=seed, device=device)
    else:
        score = measure(generator, real, seed=seed, device=device)
    if score is None:
        return {}
    collapsed = score < threshold
    why = f"{who} collapsed: diversity {score:.3f} < ensemble.collapse_threshold={threshold:g}"
    if collapsed and action == "retrain":
        raise MemberCollapsedError(why)
    if collapsed:
        logger.warning(f"{why}; " + ("left out of the mixture (ensemble.on_collapse=drop)" if action == "drop"
                                     else "kept (ensemble.on_collapse=warn)"))
    decision = "kept" if not collapsed else {"warn": "warned", "drop": "dropped"}[action]
    return {"diversity": round(score, 6),
            "collapse": {"threshold": threshold, "collapsed": collapsed, "decision": decision}}


def kept_collapsed(entry: dict) -> bool:
    """A manifest entry of a member flagged collapsed and kept (on_collapse=warn): its rows are in the
    shards, which say so (raygan.synthesis.shards.collapse_flag), as an export does."""
    verdict = entry.get("collapse", {})
    return bool(verdict.get("collapsed")) and verdict.get("decision") == "warned"


def apply_verdict(entries: list[dict], verdict: dict) -> list[dict]:
    """The member's entries with its verdict; a dropped member's status "collapsed" (given up)."""
    dropped = verdict.get("collapse", {}).get("decision") == "dropped"
    extra = {"status": COLLAPSED, "error": f"collapsed: diversity {verdict['diversity']:.3f} < "
             f"{verdict['collapse']['threshold']:g} (ensemble.on_collapse=drop)"} if dropped else {}
    return [{**e, **verdict, **extra} for e in entries]


__all__ = ["COLLAPSED", "MemberCollapsedError", "apply_verdict", "judge", "kept_collapsed", "measure",
           "measure_conditional"]
