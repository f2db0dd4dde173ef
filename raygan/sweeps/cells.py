"""The training data of a sweep's protocol cells (raygan.config.protocol_cells), built once, Ray-free.

For every ensemble size T and cell, what a classifier trains on (Slim, "Boosting generative networks
for incremental learning", Section 3.1), made only from the evaluation's own pieces:

- a fixed set: the size-T set of the sweep (the shards as written, by raygan.evaluation.measured's
  rule) when the cell's truncation is synth.truncation (the shards' own), else drawn anew from the
  generators with the cell's tau (raygan.evaluation.generated.synthetic_set: source "regenerated");
- on the fly: raygan.evaluation.generated.on_the_fly, with the cell's tau and the trial's batch size
  (one member per batch-sized block), always "regenerated";
- a filter (filter_rho): raygan.evaluation.protocols.filter_by_classifier with the evaluation's
  reference classifier (eval.* settings, repeat 0's seed, trained on the real training split), once
  on a fixed set (its kept fraction reported), on every epoch's fresh set on the fly
  (raygan.evaluation.protocols.FilteredEpochs).

The sweep (raygan.cluster.sweep) puts each CellSet in Ray's object store once and hands it to the
trials; ``TrialData`` is what one trial trains on, the sweep's plain sets included.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from raygan import seeds
from raygan.classifiers.fit import Split, fit_classifier
from raygan.config import Config
from raygan.data import RealDataset
from raygan.evaluation import generated
from raygan.evaluation.measured import REGENERATED
from raygan.evaluation.protocols import FilteredEpochs, filter_by_classifier
from raygan.runs import RunFolder

logger = logging.getLogger(__name__)


@dataclass
class CellSet:
    """A cell's data: a fixed (x, y), or ``epoch_data(epoch)`` drawing a fresh set every epoch."""
    source: str
    train: Optional[Split] = None
    epoch_data: Optional[Callable[[int], Split]] = None
    kept_fraction: Optional[float] = None


def set_key(config: dict) -> tuple:
    """The key of a trial's training set: (T, mixing ratio), then for a cell its name, and for an
    on-the-fly cell the batch size (its blocks are batch-sized)."""
    key = (int(config["T"]), float(config["mixing_ratio"]))
    cell = config.get("protocol")
    if cell is None:
        return key
    return (*key, cell["name"]) + ((int(config["batch_size"]),) if cell["on_the_fly"] else ())


def reference_classifier(cfg: Config, dataset: RealDataset):
    """The evaluation's reference (TRTR repeat 0: eval.* settings, the seed of repeat 0): the filter's
    classifier and Table 1's real baseline."""
    return fit_classifier(cfg, dataset, dataset.train_split(), seeds.offset(cfg.eval.seed, 0))


def _cell_cfg(cfg: Config, cell: dict, batch_size: Optional[int] = None) -> Config:
    """cfg with the cell's truncation (and an on-the-fly cell's batch size), what generated draws with."""
    changed = cfg.replace(synth={"truncation": cell["truncation"]})
    return changed if batch_size is None else changed.replace(eval={"batch_size": batch_size})


def _fixed(cfg, dataset, run, T, cell, base: tuple[Split, str], reference) -> CellSet:
    if cell["truncation"] == cfg.synth.truncation:
        train, source = base
    else:
        train = generated.synthetic_set(run, _cell_cfg(cfg, cell), dataset, T, seed=cfg.synth.seed)
        source = REGENERATED
    if cell["filter_rho"] is None:
        return CellSet(source=source, train=train)
    keep = filter_by_classifier(reference, *train, rho=cell["filter_rho"])
    return CellSet(source=source, train=(train[0][keep], train[1][keep]),
                   kept_fraction=float(keep.float().mean()))


def _on_the_fly(cfg, dataset, run, T, cell, batch_size: int, reference) -> CellSet:
    # loads its generators in the trial: a set put in the object store holds names, not modules
    make = generated.on_the_fly(run, _cell_cfg(cfg, cell, batch_size), dataset, T, seed=cfg.synth.seed)
    if cell["filter_rho"] is not None:
        make = FilteredEpochs(epoch_data=make, model=reference, rho=cell["filter_rho"])
    return CellSet(source=REGENERATED, epoch_data=make)


def cell_sets(cfg: Config, dataset: RealDataset, run: RunFolder, *, cells: list[dict], Ts: list[int],
              batch_sizes: list[int], base: dict[int, tuple[Split, str]]) -> tuple[dict, dict]:
    """({set_key: CellSet} of every (T, cell) the grid needs, the real baseline's figures).

    ``base`` maps T to the sweep's size-T set and its source. Cells with the same data (they differ
    in augment only) share one CellSet object, which the sweep puts in the object store once."""
    fit = reference_classifier(cfg, dataset)
    baseline = {"test_acc": fit.test_acc, "best_test_acc": fit.best_test_acc, "val_acc": fit.val_acc,
                "arch": cfg.eval.arch, "epochs": cfg.eval.epochs, "augment": cfg.eval.augment}
    logger.info(f"sweep: reference classifier on the real training split (the filter; Table 1's "
                f"baseline): test {fit.test_acc:.3f} at its best validation epoch {fit.best_val_epoch}")
    made: dict[tuple, CellSet] = {}
    sets: dict[tuple, CellSet] = {}
    for T in sorted(set(Ts)):
        for cell in cells:
            data = (cell["truncation"], cell["filter_rho"])
            if cell["on_the_fly"]:
                for b in sorted(set(batch_sizes)):
                    made_key = (T, "otf", b, *data)
                    if made_key not in made:
                        made[made_key] = _on_the_fly(cfg, dataset, run, T, cell, b, fit.model)
                    sets[(T, 0.0, cell["name"], b)] = made[made_key]
            else:
                made_key = (T, "fixed", *data)
                if made_key not in made:
                    made[made_key] = _fixed(cfg, dataset, run, T, cell, base[T], fit.model)
                sets[(T, 0.0, cell["name"])] = made[made_key]
    logger.info(f"sweep: {len(made)} protocol set(s) for {len(cells)} cell(s) x T in {sorted(set(Ts))}")
    return sets, baseline


@dataclass
class TrialData:
    """What one trial trains on: a fixed set, or a placeholder of the samples' shape and epoch_data."""
    train: Split
    augment: str
    source: str
    epoch_data: Optional[Callable[[int], Split]] = None
    kept_fraction: Optional[float] = None
    train_size: int = field(default=0)

    def __post_init__(self):
        if self.epoch_data is None:
            self.train_size = len(self.train[1])
        else:
            draw = self.epoch_data

            def counted(epoch: int) -> Split:
                x, y = draw(epoch)
                self.train_size = len(y)
                self.kept_fraction = getattr(draw, "kept_fraction", self.kept_fraction)
                return x, y
            self.epoch_data = counted

    def figures(self) -> dict:
        """What a trial reports beside its metrics every epoch."""
        out = {"train_size": self.train_size, "train_source": self.source}
        if self.kept_fraction is not None:
            out["kept_fraction"] = self.kept_fraction
        return out


def trial_data(config: dict, cfg: Config, dataset: RealDataset, got, sources: dict) -> TrialData:
    """A trial's TrialData from its config and the set the sweep handed it (None: the real split)."""
    cell = config.get("protocol")
    if cell is None:
        train = got if got is not None else dataset.train_split()
        return TrialData(train=train, augment=cfg.eval.augment,
                         source=sources.get(set_key(config), "real"))
    if got.epoch_data is None:
        return TrialData(train=got.train, augment=cell["augment"], source=got.source,
                         kept_fraction=got.kept_fraction)
    # The classifier is built from the samples' shape; every epoch's data comes from epoch_data.
    empty = (torch.empty((0, *dataset.sample_shape)), torch.empty((0,), dtype=torch.int64))
    return TrialData(train=empty, augment=cell["augment"], source=got.source, epoch_data=got.epoch_data)


__all__ = ["CellSet", "TrialData", "cell_sets", "reference_classifier", "set_key", "trial_data"]
