"""The synthetic sets drawn anew from a run's generators, where the shards as written cannot make them.

A smaller T whose mixture the shards cannot make (``synthetic_set``, and ``quality_draw`` for the
quality metrics), seed 001's on-the-fly generation (``on_the_fly``: a fresh set every epoch, each
batch-sized block from one member t ~ p_t), and seed 002's recursive-training rounds
(``recursive_set``). Every set is labelled by class index and seeded from raygan.seeds; the mixture of
a class at size T follows the one rule of raygan.ensemble.mixture_weights. Which sets come from the
shards and which from here: raygan.evaluation.measured.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from raygan import seeds
from raygan.classifiers.fit import Split
from raygan.config import Config
from raygan.data import RealDataset
from raygan.ensemble.counts import synthetic_count
from raygan.ensemble.mixture import Mixture, load_member_generator
from raygan.ensemble.mixture_weights import members_at, mixture_weights_at
from raygan.runs import RunFolder


def mixture_at(run: RunFolder, cfg: Config, class_name: str, T: int) -> Mixture:
    """The class's mixture of size T: first T independent members, or boosting after step T (which
    members and weights: raygan.ensemble.mixture_weights)."""
    gens = []
    for t in members_at(run, class_name, T):
        entry = run.member_entry(class_name, t)
        gens.append(load_member_generator(run, entry))
    if not gens:
        raise FileNotFoundError(f"class {class_name} has no complete member among 0..{T - 1} in {run.path}; "
                                "train the ensemble first (raygan train)")
    weights = mixture_weights_at(run, cfg, class_name, T)
    if weights is None:
        return Mixture.uniform(gens, cfg.synth.truncation)
    return Mixture(gens, np.asarray(weights, dtype=np.float64) / np.sum(weights), cfg.synth.truncation)


def synthetic_set(run: RunFolder, cfg: Config, dataset: RealDataset, T: int, seed: int) -> Split:
    """N_g = N real samples per class from each class's size-T mixture, labelled by class index."""
    xs, ys = [], []
    for k, name in enumerate(dataset.classes):
        n = synthetic_count(cfg, dataset.train_sizes()[name])
        x, _ = mixture_at(run, cfg, name, T).sample(n, seed=seeds.per_class(seed, k))
        xs.append(x)
        ys.append(torch.full((n,), k, dtype=torch.int64))
    return torch.cat(xs), torch.cat(ys)


def on_the_fly(run: RunFolder, cfg: Config, dataset: RealDataset, T: int, seed: int) -> "LazyOnTheFly":
    """Seed 001's on-the-fly generation: every epoch a fresh synthetic set in which each batch-sized
    block comes from one member t ~ p_t (the same t for every class of the block)."""
    sizes = [synthetic_count(cfg, dataset.train_sizes()[n]) for n in dataset.classes]
    return LazyOnTheFly(run=run, cfg=cfg, classes=list(dataset.classes), sizes=sizes, T=T, seed=seed)


@dataclass
class LazyOnTheFly:
    """:func:`on_the_fly`'s epoch data, which loads its generators where it is first called, so that it
    pickles as a few names and numbers (a Ray trial receives it; a spectrally normalised generator,
    biggan's, cannot be pickled at all, and none needs to travel)."""
    run: RunFolder
    cfg: Config
    classes: list
    sizes: list
    T: int
    seed: int
    _draw: Optional[Callable[[int], Split]] = field(default=None, repr=False, compare=False)

    def __call__(self, epoch: int) -> Split:
        if self._draw is None:
            self._draw = on_the_fly_sets(self.run, self.cfg, self.classes, self.sizes, self.T, self.seed)
        return self._draw(epoch)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_draw": None}


def on_the_fly_sets(run: RunFolder, cfg: Config, classes: list, sizes: list, T: int, seed: int):
    """:func:`on_the_fly` for classes (in label order) of synthetic_count sizes.

    Each batch-sized block's member and latents are drawn as one block at a time would draw them (its
    own seed), but the blocks a member makes in an epoch go through its generator as one batch, on
    the evaluation's device (train.device: a GPU where there is one), and come back to the CPU once
    per class: a generator call per (class, member) and epoch, not per block. The samples are the
    block-at-a-time samples (tests/unit/test_curves.py checks every block)."""
    from raygan.gan.train import resolve_device
    from raygan.synthesis.generate import latents

    device = resolve_device(cfg.train.device)
    mixtures = [mixture_at(run, cfg, name, T) for name in classes]
    for mix in mixtures:
        for G in mix.generators:
            G.to(device)
    block = cfg.eval.batch_size

    @torch.no_grad()
    def epoch_data(epoch: int) -> Split:
        rng = np.random.default_rng([seed, epoch])
        xs, ys = [], []
        for k, (mix, n) in enumerate(zip(mixtures, sizes)):
            blocks: dict[int, list] = {}  # member -> [(start, latents)]
            for start in range(0, n, block):
                t = int(rng.choice(len(mix.weights), p=mix.weights))
                count = min(block, n - start)
                # what Mixture([G_t]).sample(count, seed=s) draws: member 0's stream of seed s
                s = seeds.mixture_member(int(rng.integers(2**31)), 0)
                blocks.setdefault(t, []).append((start, latents(mix.generators[t], count, seed=s, device=device,
                                                                 truncation=mix.truncation)))
            x = None
            for t, parts in blocks.items():
                made = mix.generators[t](torch.cat([z for _, z in parts]))
                if x is None:
                    x = made.new_empty((n, *made.shape[1:]))
                at = 0
                for start, z in parts:
                    x[start:start + len(z)] = made[at:at + len(z)]
                    at += len(z)
            xs.append(x.cpu())
            ys.append(torch.full((n,), k, dtype=torch.int64))
        return torch.cat(xs), torch.cat(ys)
    return epoch_data


def quality_draw(run: RunFolder, cfg: Config, dataset: RealDataset, T: int) -> Split:
    """A regenerated quality set: samples_per_class per class from its size-T mixture."""
    from raygan.metrics.quality import samples_per_class

    xs, ys = [], []
    for k, name in enumerate(dataset.classes):
        n = samples_per_class(cfg, dataset, name)
        xs.append(mixture_at(run, cfg, name, T).sample(n, seed=seeds.per_class(cfg.synth.seed, k))[0])
        ys.append(torch.full((n,), k, dtype=torch.int64))
    return torch.cat(xs), torch.cat(ys)


def recursive_set(run: RunFolder, cfg: Config, dataset: RealDataset, r: int) -> tuple[Split, list]:
    """Seed 002 Figure 3: the set of recursive-training round r and the GANs' training-set sizes.

    Round r < R is the member's round<r>.pt checkpoint, round R its final generator; each round's set
    holds N_g samples per class from the first T members (T = eval.max_ensemble or all) of that round.
    """
    from raygan.gan.train import load_generator

    T = cfg.eval.max_ensemble or cfg.ensemble.members
    rounds = cfg.train.recursive_rounds
    xs, ys, sizes = [], [], []
    for k, name in enumerate(dataset.classes):
        gens = []
        for t in range(T):
            entry = run.member_entry(name, t)
            if entry is None:
                raise FileNotFoundError(f"member {t} of class {name} is not complete in {run.path}")
            folder = run.member_dir(name, t)
            gens.append(load_generator(folder / (f"round{r}.pt" if r < rounds else "generator.pt")))
            sizes.append(entry.get("recursive_train_sizes", [None] * (rounds + 1))[r])
        n = synthetic_count(cfg, dataset.train_sizes()[name])
        x, _ = Mixture.uniform(gens, cfg.synth.truncation).sample(n, seed=seeds.per_class(cfg.synth.seed, k))
        xs.append(x)
        ys.append(torch.full((n,), k, dtype=torch.int64))
    return (torch.cat(xs), torch.cat(ys)), sizes
