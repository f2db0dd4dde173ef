"""The training sets of sweep trials that train as a TorchTrainer (sweep.trainer_min_rows), Ray-free: which
rows of the synthetic shards a trial reads, and those rows decoded from one batch of a shard table.

A trial's set is the sweep's set of its key (T, mixing ratio) (raygan.sweeps.classifier.training_sets),
described without decoding any image so that the driver never holds a large set: the size-T set is
the first n rows by ``index`` of every (class, member) that raygan.evaluation.measured.rows_per_member
gives for the manifest's row counts (the shards as written, checked against the manifest first); a
mixed set adds the real training split and the synthetic rows raygan.evaluation.protocols.mix_picks
draws from those labels, each as many times as it was drawn. So a trial that reads the shards with
``selection.decode`` trains on the same rows (in another order) as one that trains in its Tune trial.
A key whose set would be regenerated from the generators, or smaller than sweep.trainer_min_rows, is
left to the Tune trial.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

from raygan.config import Config
from raygan.data import RealDataset
from raygan.data.shards import decode_image_column
from raygan.evaluation.measured import SHARDS, check_shards, rows_per_member, set_sizes
from raygan.evaluation.protocols import mix_picks
from raygan.runs import RunFolder

COLUMNS = ["image", "label", "member", "index"]  # what a trial reads of the shards


@dataclass(frozen=True)
class ShardSelection:
    """A trial's training set as rows of the shards: row ``index`` of (class index, member) is taken
    ``repeats[class, member][index]`` times (rows past the array's end: never), plus the real
    training split when ``real``; ``files``: the shards' parquet files (names in <run>/shards)."""
    files: tuple[str, ...]
    repeats: dict[tuple[int, int], np.ndarray]
    real: bool
    size: int
    sample_shape: tuple[int, ...]
    source: str = SHARDS

    def decode(self, table: pa.Table) -> dict[str, np.ndarray]:
        """The selected rows of one batch of shard rows (COLUMNS), each as often as selected:
        {"x": float32 (N, C, H, W) in [-1, 1], "y": int64} (raygan.data.shards' PNG decoder)."""
        labels, members, index = (table[c].to_numpy() for c in ("label", "member", "index"))
        times = np.zeros(len(labels), dtype=np.int64)
        for (k, t), repeats in self.repeats.items():
            rows = (labels == k) & (members == t) & (index < len(repeats))
            times[rows] = repeats[index[rows]]
        take = np.repeat(np.arange(len(labels)), times)
        x = decode_image_column(table["image"].take(pa.array(take, type=pa.int64()))).numpy() if len(take) \
            else np.zeros((0, *self.sample_shape), np.float32)
        return {"x": x, "y": labels[take].astype(np.int64)}


def _selection(cfg: Config, dataset: RealDataset, files: tuple[str, ...], need: dict[tuple[int, int], int],
               ratio: float) -> ShardSelection:
    shape = tuple(dataset.sample_shape)
    if cfg.sweep.synthetic_only:
        return ShardSelection(files=files, repeats={kt: np.ones(n, np.int64) for kt, n in need.items()},
                              real=False, size=sum(need.values()), sample_shape=shape)
    # The size-T set's rows in the order training_sets holds them: (class, member) as ``need``, then index.
    labels = torch.cat([torch.full((n,), k, dtype=torch.int64) for (k, _), n in need.items()])
    real_y = dataset.train_split()[1]
    picks = mix_picks(real_y, labels, ratio, seed=cfg.synth.seed)
    drawn = np.bincount(picks, minlength=len(labels))
    ends = np.cumsum(list(need.values()))
    repeats = dict(zip(need, np.split(drawn, ends[:-1])))
    return ShardSelection(files=files, repeats=repeats, real=True, size=len(real_y) + len(picks),
                          sample_shape=shape)


def trainer_selections(cfg: Config, dataset: RealDataset, run: RunFolder, keys: list[tuple[int, float]]
                       ) -> dict[tuple[int, float], ShardSelection]:
    """{(T, ratio): ShardSelection} of the sweep's set keys that train as a TorchTrainer: sets read from
    the shards as written with at least sweep.trainer_min_rows rows. Empty when the setting is null."""
    if cfg.sweep.trainer_min_rows is None or not keys:
        return {}
    section = check_shards(cfg, dataset, run)  # complete and unchanged (sha256), before any trial reads it
    counts = {name: {int(t): int(n) for t, n in per.items()} for name, per in section["counts"].items()}
    files = tuple(sorted(section["files"]))
    sizes = set_sizes(cfg, dataset)
    out = {}
    for T, ratio in keys:
        need = rows_per_member(run, cfg, dataset, counts, T, sizes)
        if need is None:  # regenerated from the generators: in the Tune trial
            continue
        selection = _selection(cfg, dataset, files, need, ratio)
        if selection.size >= cfg.sweep.trainer_min_rows:
            out[T, ratio] = selection
    return out


__all__ = ["COLUMNS", "ShardSelection", "trainer_selections"]
