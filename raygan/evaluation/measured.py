"""The measured set: the synthetic shards as written, decoded once, and the rule that picks a T's set.

The report certifies the set that is shipped (DESIGN principle 13), so the evaluation reads
<run>/shards/ (raygan.data.shards, the one PNG decoder) instead of drawing new float samples.
``load_measured`` refuses, before any work, a run whose manifest lists no shards, whose shards were
made with other settings than the config's shard plan (raygan.synthesis.shards.shard_plan), or whose
files are missing or changed (sha256 against the manifest): each a one-line ConfigError naming
``raygan synthesize``.

The rule for the set of an ensemble of T members with n samples per class (n = N_g for the downstream
classifiers, min(N_g, eval.metric_samples) for the quality metrics), per class, deterministic:

- the shipped ensemble (T = ensemble.members): the members' shares are the shards' own row counts, so
  with n = N_g the set is every row of the shards; a smaller n takes allocate(counts, n) rows of each
  member (never more than it has);
- a smaller T: the size-T mixture's weights p_t (independent: ensemble.weights[:T] or uniform 1/T;
  boosting: the mixture after step T) give allocate(p_t, n) rows of member t;
- a member's rows are its first rows by ``index`` (the shard's position, which synthesis fills from
  synth.seed's chunk streams): its draws are i.i.d., so a prefix is a fair sample and the same seed
  always picks the same rows;
- the set comes from the shards (``"source": "shards"``) when every class's members hold enough rows,
  else the whole set is drawn anew from the generators (``"source": "regenerated"``, floats, seeded as
  before: raygan.evaluation.generated) and the report says so beside its number.

``shards_else_regenerated`` applies the rule: the evaluation's units and the classifier sweep's
training sets both take a T's set from it.

With uniform members a smaller T needs N_g / T rows of a member that shipped N_g / T_max, so the TSTR
curve below T_max is regenerated; the quality metrics' smaller sets usually fit in the shards.
Rows keep the reader's order, sorted by (label, member, index).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from raygan.config import Config, ConfigError
from raygan.data import RealDataset
from raygan.data.shards import ShardRows, read_shard_rows
from raygan.ensemble.counts import synthetic_count
from raygan.ensemble.mixture import allocate
from raygan.ensemble.mixture_weights import members_at, mixture_weights_at
from raygan.evaluation import generated
from raygan.runs import RunFolder

logger = logging.getLogger(__name__)

SHARDS, REGENERATED = "shards", "regenerated"
SYNTHESIZE = "make them with `raygan synthesize --config CONFIG` (this command's config and --set options)"


@dataclass
class MeasuredSet:
    """The decoded shards of a run (x, y, member and index per row) and the rows per class and member."""
    rows: ShardRows
    counts: dict[str, dict[int, int]]

    def member_rows(self, class_index: int, member: int) -> torch.Tensor:
        """Positions of a member's rows of one class, ascending by index."""
        return torch.nonzero((self.rows.y == class_index) & (self.rows.member == member)).flatten()

    def split(self, positions: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of the given rows (all of them when None)."""
        if positions is None:
            return self.rows.x, self.rows.y
        return self.rows.x[positions], self.rows.y[positions]


def check_shards(cfg: Config, dataset: RealDataset, run: RunFolder) -> dict:
    """The manifest's shards section, refused unless it is complete and made by this config's plan."""
    from raygan.synthesis.shards import complete, mixture_weights, shard_plan

    section = run.manifest().get("shards")
    if not section:
        raise ConfigError(f"{run.path} has no synthetic shards to evaluate (manifest.json lists none); "
                          f"{SYNTHESIZE}")
    _, spec = shard_plan(cfg, dataset, run, mixture_weights(cfg, dataset, run))
    if section.get("spec") != spec:
        raise ConfigError(f"the shards of {run.path} do not match this config's shard plan (synth.*, "
                          f"ensemble.*, members); {SYNTHESIZE}")
    if not complete(run, spec):
        raise ConfigError(f"the shards of {run.path} are incomplete or changed since they were written "
                          f"(a file missing or its checksum unlike manifest.json's); {SYNTHESIZE}")
    return section


def load_measured(cfg: Config, dataset: RealDataset, run: RunFolder) -> MeasuredSet:
    """Check the run's shards (check_shards), then read and decode them once."""
    section = check_shards(cfg, dataset, run)
    rows = read_shard_rows(run.path / "shards", classes=dataset.classes)
    if tuple(rows.x.shape[1:]) != tuple(dataset.sample_shape):
        raise ConfigError(f"the shards of {run.path} hold samples of shape {tuple(rows.x.shape[1:])}, the "
                          f"data {tuple(dataset.sample_shape)}; {SYNTHESIZE}")
    counts: dict[str, dict[int, int]] = {name: {} for name in dataset.classes}
    for (k, t), n in zip(*np.unique(np.stack([rows.y.numpy(), rows.member.numpy()], axis=1), axis=0,
                                    return_counts=True)):
        counts[dataset.classes[int(k)]][int(t)] = int(n)
    expected = {name: {int(t): c for t, c in per.items()} for name, per in section["counts"].items()}
    if counts != expected:
        raise ConfigError(f"the shards of {run.path} hold {counts} rows per class and member, the manifest "
                          f"{expected}; {SYNTHESIZE}")
    logger.info(f"evaluate: the measured set is the shards as written ({len(rows.y)} rows, decoded from PNG)")
    return MeasuredSet(rows=rows, counts=counts)


def rows_per_member(run: RunFolder, cfg: Config, dataset: RealDataset, counts: dict[str, dict[int, int]],
                    T: int, sizes: dict[str, int]) -> Optional[dict[tuple[int, int], int]]:
    """{(class index, member): n} of the size-T set with sizes[class] rows per class by the module's
    rule, given the shards' rows per class and member (``counts``: decoded, or the manifest's); a
    member's n rows are its first n by index. None when some class's shards hold too few rows of a
    member (the set must be regenerated)."""
    need_of: dict[tuple[int, int], int] = {}
    for k, name in enumerate(dataset.classes):
        have = counts[name]
        if T == cfg.ensemble.members:
            members = sorted(have)
            weights = [have[t] for t in members]
        else:
            members = members_at(run, name, T)
            weights = mixture_weights_at(run, cfg, name, T) or [1.0] * len(members)
        need = allocate(weights, sizes[name])
        if any(n > have.get(t, 0) for t, n in zip(members, need)):
            return None
        need_of.update({(k, t): n for t, n in zip(members, need) if n})
    return need_of


def pick_rows(run: RunFolder, cfg: Config, dataset: RealDataset, measured: MeasuredSet, T: int,
              sizes: dict[str, int]) -> Optional[torch.Tensor]:
    """Positions of the size-T set with sizes[class] rows per class by the module's rule
    (rows_per_member); None when some class's shards hold too few rows of a member."""
    need = rows_per_member(run, cfg, dataset, measured.counts, T, sizes)
    if need is None:
        return None
    return torch.cat([measured.member_rows(k, t)[:n] for (k, t), n in need.items()])


def set_sizes(cfg: Config, dataset: RealDataset, *, quality: bool = False) -> dict[str, int]:
    """n per class of a T's set: N_g (raygan.ensemble.counts), or with ``quality`` the quality
    metrics' size (raygan.metrics.quality.samples_per_class)."""
    if quality:
        from raygan.metrics.quality import samples_per_class

        return {n: samples_per_class(cfg, dataset, n) for n in dataset.classes}
    return {n: synthetic_count(cfg, dataset.train_sizes()[n]) for n in dataset.classes}


def shards_else_regenerated(run: RunFolder, cfg: Config, dataset: RealDataset, measured: MeasuredSet, T: int,
                            *, quality: bool = False) -> tuple[tuple[torch.Tensor, torch.Tensor], str]:
    """The size-T set of set_sizes' n per class and its source, by the module's rule: the shards' rows
    (``SHARDS``) where every class's members hold enough, else the whole set drawn anew from the
    generators (``REGENERATED``, seeded by synth.seed)."""
    rows = pick_rows(run, cfg, dataset, measured, T, set_sizes(cfg, dataset, quality=quality))
    if rows is not None:
        return measured.split(rows), SHARDS
    if quality:
        return generated.quality_draw(run, cfg, dataset, T), REGENERATED
    return generated.synthetic_set(run, cfg, dataset, T, seed=cfg.synth.seed), REGENERATED


__all__ = ["MeasuredSet", "check_shards", "load_measured", "pick_rows", "rows_per_member", "set_sizes",
           "shards_else_regenerated",
           "SHARDS", "REGENERATED", "SYNTHESIZE"]
