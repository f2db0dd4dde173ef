"""Evaluation of a trained run: synthetic sets from its members, the ensemble-size curve, TRTR/TRTS,
filtering, on-the-fly generation and the mixing-ratio table (no Ray; the cluster layer wraps these).

Seed 000 Figure 2: accuracy against T = 1..T_max from one trained ensemble (independent: the first T
members with p_t = 1/T; boosting: the mixture after step T), N_g = N real per class for every T.
Figure 3: test accuracy over classifier training epochs for each T.

``evaluate_run`` measures the shards as written (raygan.evaluation.measured: a run without complete
shards is refused before any work) and runs the units of work of raygan.evaluation.units one after
the other here; raygan.cluster.evaluation runs the same units as Ray tasks. This module holds what
the units draw from: the generators' mixtures and regenerated sets (a smaller T whose mixture the
shards cannot make, on-the-fly generation, recursive rounds) and the classifier fit.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from raygan import seeds
from raygan.config import Config
from raygan.data import RealDataset
from raygan.ensemble.counts import synthetic_count
from raygan.ensemble.mixture import Mixture, load_member_generator
from raygan.evaluation.measured import members_at, mixture_weights_at
from raygan.evaluation.protocols import Split, train_classifier
from raygan.progress import track
from raygan.runs import RunFolder

logger = logging.getLogger(__name__)


def mixture_at(run: RunFolder, cfg: Config, class_name: str, T: int) -> Mixture:
    """The class's mixture of size T: first T independent members, or boosting after step T (which
    members and weights: raygan.evaluation.measured.members_at / mixture_weights_at)."""
    gens = []
    for t in members_at(run, cfg, class_name, T):
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


def _fit(cfg: Config, dataset: RealDataset, train: Split, seed: int, **kwargs):
    """One downstream classifier, on the device train.device resolves to here (a GPU when this
    process has one); the model comes back on the CPU."""
    from raygan.gan.train import resolve_device

    e = cfg.eval
    kwargs.setdefault("device", str(resolve_device(cfg.train.device)))
    return train_classifier(*train, val=dataset.val, test=dataset.test,
                            n_classes=len(dataset.classes), arch=e.arch, epochs=e.epochs, lr=e.lr,
                            batch_size=e.batch_size, weight_decay=e.weight_decay, augment=e.augment,
                            seed=seed, **kwargs)


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
    """:func:`on_the_fly` for classes (in label order) of synthetic_count sizes."""
    mixtures = [mixture_at(run, cfg, name, T) for name in classes]
    block = cfg.eval.batch_size

    def epoch_data(epoch: int) -> Split:
        rng = np.random.default_rng([seed, epoch])
        xs, ys = [], []
        for k, (mix, n) in enumerate(zip(mixtures, sizes)):
            for start in range(0, n, block):
                t = int(rng.choice(len(mix.weights), p=mix.weights))
                count = min(block, n - start)
                one = Mixture([mix.generators[t]], np.ones(1), mix.truncation)  # keep synth.truncation
                xs.append(one.sample(count, seed=int(rng.integers(2**31)))[0])
                ys.append(torch.full((count,), k, dtype=torch.int64))
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


def write_json(path: Path, obj) -> None:
    from raygan.runs import atomic_write_text
    atomic_write_text(path, json.dumps(obj, indent=2))


def prepare_evaluation(cfg: Config, dataset: RealDataset, run: RunFolder):
    """Everything evaluate_run checks before any work: eval.metrics (a missing Inception weights file
    fails now, not after the training) and the shards (load_measured); returns the measured set."""
    from raygan.evaluation.measured import load_measured

    if cfg.eval.metrics:
        from raygan.metrics.quality import validate_metrics
        validate_metrics(cfg)
    return load_measured(cfg, dataset, run)


def ensemble_size_curve(run: RunFolder, cfg: Config, dataset: RealDataset, measured=None) -> list[dict]:
    """TSTR accuracy (mean +- std over R classifiers) for T = 1..T_max, with per-epoch histories."""
    from raygan.evaluation import units

    inputs = units.EvalInputs(cfg, dataset, measured or prepare_evaluation(cfg, dataset, run), run)
    tstr = [j for j in units.evaluation_jobs(cfg, dataset) if j.kind == "tstr"]
    needed = {key for j in tstr for key in j.needs}  # the reference classifier, when filtering
    jobs = [j for j in units.evaluation_jobs(cfg, dataset) if j.key in needed] + tstr
    results: dict = {}
    for job in track(jobs, "classifiers", unit="job"):
        results[job.key] = units.run_unit(inputs, job, *(results[k] for k in job.needs))
    return units.tstr_rows(cfg, jobs, results)


def finish_evaluation(run: RunFolder, result: dict) -> dict:
    """The driver's writes: eval/evaluation.json, then the manifest's evaluation entry."""
    write_json(run.path / "eval" / "evaluation.json", result)
    run.update_manifest(evaluation="eval/evaluation.json")
    return result


def evaluate_run(cfg: Config, dataset: RealDataset, run: RunFolder, *, mixing: bool = False) -> dict:
    """TRTR, the TSTR ensemble-size curve, TRTS (and the mixing table if asked) measured on the shards
    as written; eval/evaluation.json. The units of work (raygan.evaluation.units) run here in turn.

    With eval.metrics set, also the sample-quality metrics per T (``quality``) and, when "pca" is
    listed, the PCA baseline's TSTR accuracy (``pca_tstr``); eval.metrics and the shards are checked
    first. Every synthetic number carries its ``source`` (``trts_source`` for TRTS): "shards", or
    "regenerated" where the shards cannot make that set (raygan.evaluation.measured).
    """
    from raygan.evaluation import units

    measured = prepare_evaluation(cfg, dataset, run)
    inputs = units.EvalInputs(cfg, dataset, measured, run)
    jobs = units.evaluation_jobs(cfg, dataset, mixing=mixing)
    results: dict = {}
    for job in track(jobs, "classifiers", unit="job"):
        results[job.key] = units.run_unit(inputs, job, *(results[k] for k in job.needs))
    return finish_evaluation(run, units.assemble(cfg, dataset, jobs, results, mixing=mixing))
