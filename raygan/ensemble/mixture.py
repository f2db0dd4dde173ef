"""Ensembles of GANs: one member per (class, member index), member seeds, and the mixture of generators.

Seed 000 Section 2: the ensemble of T GANs is the mixture G_T = sum_t p_t G_t, trained separately per
class k; a synthetic set of N_g samples holds p_t N_g samples from member t (N_g = N real by default).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from raygan import seeds
from raygan.gan.train import load_generator
from raygan.runs import RunFolder
from raygan.synthesis.generate import generate


def allocate(weights: Sequence[float], n: int) -> list[int]:
    """Split n samples over members in proportion to weights (largest remainder; sums to n)."""
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    exact = w * n
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


@dataclass
class Mixture:
    """A mixture of generators G_T = sum_t p_t G_t for one class (latents truncated at tau if set)."""
    generators: list[nn.Module]
    weights: np.ndarray
    truncation: Optional[float] = None

    @classmethod
    def uniform(cls, generators: list[nn.Module], truncation: Optional[float] = None) -> "Mixture":
        return cls(list(generators), np.full(len(generators), 1.0 / len(generators)), truncation)

    def first(self, T: int) -> "Mixture":
        """The first T members, weights renormalised: any T <= T_max without retraining."""
        if not 1 <= T <= len(self.generators):
            raise ValueError(f"T must be in 1..{len(self.generators)}, got {T}")
        w = self.weights[:T]
        return Mixture(self.generators[:T], w / w.sum(), self.truncation)

    def sample(self, n: int, *, seed: int, device: torch.device | str = "cpu"
               ) -> tuple[torch.Tensor, np.ndarray]:
        """n samples, p_t n of them from member t; returns (samples, member index per sample)."""
        counts = allocate(self.weights, n)
        xs, ids = [], []
        extra = {"truncation": self.truncation} if self.truncation is not None else {}
        for t, (G, count) in enumerate(zip(self.generators, counts)):
            if count:
                xs.append(generate(G, count, seed=seeds.mixture_member(seed, t), device=device, **extra))
                ids.append(np.full(count, t))
        return torch.cat(xs), np.concatenate(ids)


def load_member_generator(run: RunFolder, entry: dict, device: str | torch.device = "cpu") -> nn.Module:
    """The generator of a manifest entry; a conditional member comes back fixed to its class."""
    # A URI run's copy is fetched and checked against the manifest's sha256 here; a local run's file
    # is checked by load_generator itself (raygan.runs.manifest.verify_member_file), so not twice.
    path = run.fetch(entry["generator"], sha256=entry.get("generator_sha256") if run.is_remote else None)
    if entry.get("condition") is not None:
        return load_generator(path, device=device, condition=entry["condition"])
    return load_generator(path, device=device)


def load_mixture(run: RunFolder, class_name: str, members: int,
                 weights: Optional[Sequence[float]] = None, device: str = "cpu",
                 truncation: Optional[float] = None) -> Mixture:
    """Mixture of the first `members` complete members of a class from a run folder."""
    gens = []
    for t in range(members):
        entry = run.member_entry(class_name, t)
        if entry is None:
            raise FileNotFoundError(f"member {t} of class {class_name} is not complete in {run.path}; "
                                    "train the ensemble first (raygan train)")
        gens.append(load_member_generator(run, entry, device=device))
    if weights is None:
        return Mixture.uniform(gens, truncation)
    return Mixture(gens, np.asarray(weights, dtype=np.float64) / np.sum(weights), truncation)

