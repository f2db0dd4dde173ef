"""Evaluation of a trained run: synthetic sets from its members, the ensemble-size curve, TRTR/TRTS,
filtering, on-the-fly generation and the mixing-ratio table (no Ray; the cluster layer wraps these).

Seed 000 Figure 2: accuracy against T = 1..T_max from one trained ensemble (independent: the first T
members with p_t = 1/T; boosting: the mixture after step T), N_g = N real per class for every T.
Figure 3: test accuracy over classifier training epochs for each T.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from raygan import seeds
from raygan.config import Config
from raygan.data import RealDataset
from raygan.ensemble.boosting_loop import state_path
from raygan.ensemble.mixture import Mixture, load_mixture
from raygan.evaluation.protocols import (
    ProtocolResult,
    Split,
    filter_by_classifier,
    mix_real_synthetic,
    repeat,
    train_classifier,
    trts,
)
from raygan.runs import RunFolder

logger = logging.getLogger(__name__)


def mixture_at(run: RunFolder, cfg: Config, class_name: str, T: int) -> Mixture:
    """The class's mixture of size T: first T independent members, or boosting after step T."""
    weights = None
    if cfg.ensemble.method != "independent":
        state = json.loads(state_path(run, class_name).read_text())
        weights = state["steps"][T - 1]["mixture_weights"]
    elif cfg.ensemble.weights is not None:
        weights = cfg.ensemble.weights[:T]
    return load_mixture(run, class_name, T, weights, truncation=cfg.synth.truncation)


def synthetic_set(run: RunFolder, cfg: Config, dataset: RealDataset, T: int, seed: int) -> Split:
    """N_g = N real samples per class from each class's size-T mixture, labelled by class index."""
    xs, ys = [], []
    for k, name in enumerate(dataset.classes):
        n = cfg.ensemble.samples_per_class or dataset.train_sizes()[name]
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


def trtr(cfg: Config, dataset: RealDataset) -> ProtocolResult:
    """The reference line: train on the real training split, test on real."""
    train = dataset.train_split()
    return repeat("TRTR", lambda s, train=train: _fit(cfg, dataset, train, s), cfg.eval.repeats, cfg.eval.seed)


def on_the_fly(run: RunFolder, cfg: Config, dataset: RealDataset, T: int, seed: int):
    """Seed 001's on-the-fly generation: every epoch a fresh synthetic set in which each batch-sized
    block comes from one member t ~ p_t (the same t for every class of the block)."""
    mixtures = [mixture_at(run, cfg, name, T) for name in dataset.classes]
    sizes = [cfg.ensemble.samples_per_class or dataset.train_sizes()[n] for n in dataset.classes]
    block = cfg.eval.batch_size

    def epoch_data(epoch: int) -> Split:
        rng = np.random.default_rng([seed, epoch])
        xs, ys = [], []
        for k, (mix, n) in enumerate(zip(mixtures, sizes)):
            for start in range(0, n, block):
                t = int(rng.choice(len(mix.weights), p=mix.weights))
                count = min(block, n - start)
                one = Mixture([mix.generators[t]], np.ones(1))
                xs.append(one.sample(count, seed=int(rng.integers(2**31)))[0])
                ys.append(torch.full((count,), k, dtype=torch.int64))
        return torch.cat(xs), torch.cat(ys)
    return epoch_data


def ensemble_size_curve(run: RunFolder, cfg: Config, dataset: RealDataset) -> list[dict]:
    """TSTR accuracy (mean +- std over R classifiers) for T = 1..T_max, with per-epoch histories."""
    t_max = cfg.eval.max_ensemble or cfg.ensemble.members
    rows = []
    filter_model = None
    if cfg.eval.filter_rho is not None:
        filter_model = trtr(cfg.replace(eval={"repeats": 1}), dataset).runs[0].model
    for T in range(1, t_max + 1):
        extra = {"T": T, "method": cfg.ensemble.method}
        if cfg.eval.on_the_fly:
            make = on_the_fly(run, cfg, dataset, T, seed=cfg.synth.seed)
            train = make(0)
            result = repeat("TSTR", lambda s, train=train, make=make: _fit(cfg, dataset, train, s, epoch_data=make),
                            cfg.eval.repeats, cfg.eval.seed, on_the_fly=True, **extra)
        else:
            train = synthetic_set(run, cfg, dataset, T, seed=cfg.synth.seed)
            if filter_model is not None:
                keep = filter_by_classifier(filter_model, *train, rho=cfg.eval.filter_rho)
                extra["kept_fraction"] = float(keep.float().mean())
                train = (train[0][keep], train[1][keep])
            result = repeat("TSTR", lambda s, train=train: _fit(cfg, dataset, train, s), cfg.eval.repeats,
                            cfg.eval.seed, **extra)
        summary = result.summary()
        summary["histories"] = [[h["test_acc"] for h in r.history] for r in result.runs]
        summary["confusion"] = result.runs[0].confusion
        rows.append(summary)
        logger.info(f"TSTR T={T}: test {summary['test_acc_mean']:.3f} ± {summary['test_acc_std']:.3f} "
            f"(best-test-epoch {summary['best_test_acc_mean']:.3f})")
    return rows


def trts_score(run: RunFolder, cfg: Config, dataset: RealDataset, reference: ProtocolResult) -> float:
    """TRTS: the first TRTR classifier scored on the full ensemble's synthetic set."""
    synthetic = synthetic_set(run, cfg, dataset, cfg.ensemble.members, seed=cfg.synth.seed)
    return trts(reference.runs[0].model, synthetic)


def mixing_table(run: RunFolder, cfg: Config, dataset: RealDataset) -> list[dict]:
    """Seed 002 Figure 2: accuracy of real + ratio x synthetic, for every configured ratio."""
    real = dataset.train_split()
    synthetic = synthetic_set(run, cfg, dataset, cfg.ensemble.members, seed=cfg.synth.seed)
    rows = []
    for ratio in cfg.eval.mixing_ratios:
        train = mix_real_synthetic(real, synthetic, float(ratio), seed=cfg.synth.seed)
        summary = repeat("mixed", lambda s, train=train: _fit(cfg, dataset, train, s), cfg.eval.repeats,
                         cfg.eval.seed, ratio=float(ratio)).summary()
        rows.append(summary)
        logger.info(f"mixed ratio {ratio}: test {summary['test_acc_mean']:.3f} ± "
            f"{summary['test_acc_std']:.3f}")
    return rows


def write_json(path: Path, obj) -> None:
    from raygan.runs import atomic_write_text
    atomic_write_text(path, json.dumps(obj, indent=2))


def quality_curve(run: RunFolder, cfg: Config, dataset: RealDataset) -> dict:
    """The sample-quality metrics of cfg.eval.metrics for T = 1..T_max (and the PCA baseline when
    listed), each class's set drawn from its size-T mixture; see raygan.metrics.quality."""
    from raygan.gan.train import resolve_device
    from raygan.metrics.quality import compute_quality, samples_per_class

    def draw(T: int):
        def images() -> dict[str, torch.Tensor]:
            return {name: mixture_at(run, cfg, name, T).sample(
                        samples_per_class(cfg, dataset, name), seed=seeds.per_class(cfg.synth.seed, k))[0]
                    for k, name in enumerate(dataset.classes)}
        return images

    t_max = cfg.eval.max_ensemble or cfg.ensemble.members
    sets = {f"T={T}": draw(T) for T in range(1, t_max + 1)}
    device = str(resolve_device(cfg.train.device))
    return compute_quality(cfg, dataset, sets, run_dir=run.path, device=device)


def pca_tstr(cfg: Config, dataset: RealDataset) -> dict:
    """Seed 003's PCA baseline through the TSTR protocol: N_g samples per class from per-class PCA."""
    from raygan.evaluation.pca import pca_synthetic_set

    train = pca_synthetic_set(dataset, n_per_class=cfg.ensemble.samples_per_class, seed=cfg.synth.seed)
    summary = repeat("TSTR", lambda s, train=train: _fit(cfg, dataset, train, s), cfg.eval.repeats, cfg.eval.seed,
                     generator="pca").summary()
    logger.info(f"TSTR PCA baseline: test {summary['test_acc_mean']:.3f} ± {summary['test_acc_std']:.3f}")
    return summary


def recursive_curve(run: RunFolder, cfg: Config, dataset: RealDataset) -> list[dict]:
    """Seed 002 Figure 3: TSTR of every recursive-training round's generators.

    Round r < R is the member's round<r>.pt checkpoint, round R its final generator; each round's set
    holds N_g samples per class from the first T members (T = eval.max_ensemble or all) of that round.
    """
    from raygan.gan.train import load_generator

    T = cfg.eval.max_ensemble or cfg.ensemble.members
    rounds = cfg.train.recursive_rounds
    curve = []
    for r in range(rounds + 1):
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
            n = cfg.ensemble.samples_per_class or dataset.train_sizes()[name]
            mixture = Mixture.uniform(gens, cfg.synth.truncation)
            x, _ = mixture.sample(n, seed=seeds.per_class(cfg.synth.seed, k))
            xs.append(x)
            ys.append(torch.full((n,), k, dtype=torch.int64))
        train = (torch.cat(xs), torch.cat(ys))
        summary = repeat("TSTR", lambda s, train=train: _fit(cfg, dataset, train, s), cfg.eval.repeats,
                         cfg.eval.seed, round=r).summary()
        known = [v for v in sizes if v is not None]
        summary.update({"round": r, "train_size_mean": float(np.mean(known)) if known else None})
        size = "" if summary["train_size_mean"] is None else \
            f" (GANs trained on {summary['train_size_mean']:.0f} images per class on average)"
        logger.info(f"TSTR recursive round {r}{size}: test {summary['test_acc_mean']:.3f} ± "
            f"{summary['test_acc_std']:.3f}")
        curve.append(summary)
    return curve


def evaluate_run(cfg: Config, dataset: RealDataset, run: RunFolder, *, mixing: bool = False) -> dict:
    """TRTR, the TSTR ensemble-size curve, TRTS (and the mixing table if asked); eval/evaluation.json.

    With eval.metrics set, also the sample-quality metrics per T (``quality``) and, when "pca" is
    listed, the PCA baseline's TSTR accuracy (``pca_tstr``); eval.metrics is checked first.
    """
    if cfg.eval.metrics:
        from raygan.metrics.quality import validate_metrics
        validate_metrics(cfg)  # a missing Inception weights file fails now, not after the training
    reference = trtr(cfg, dataset)
    ref = reference.summary()
    logger.info(f"TRTR (real training split): test {ref['test_acc_mean']:.3f} ± {ref['test_acc_std']:.3f}")
    result = {"dataset": dataset.name, "classes": dataset.classes, "method": cfg.ensemble.method,
              "classifier": cfg.eval.arch, "epochs": cfg.eval.epochs, "repeats": cfg.eval.repeats,
              "trtr": {**ref, "histories": [[h["test_acc"] for h in r.history] for r in reference.runs],
                       "confusion": reference.runs[0].confusion},
              "tstr_curve": ensemble_size_curve(run, cfg, dataset)}
    result["trts"] = trts_score(run, cfg, dataset, reference)
    logger.info(f"TRTS (real-trained classifier on synthetic samples): {result['trts']:.3f}")
    if mixing:
        result["mixing"] = mixing_table(run, cfg, dataset)
    if cfg.train.recursive_rounds:
        result["recursive"] = recursive_curve(run, cfg, dataset)
    if cfg.eval.metrics:
        if "pca" in cfg.eval.metrics:
            result["pca_tstr"] = pca_tstr(cfg, dataset)
        result["quality"] = quality_curve(run, cfg, dataset)
    write_json(run.path / "eval" / "evaluation.json", result)
    run.update_manifest(evaluation="eval/evaluation.json")
    return result
