"""The RealDataset container, split logic shared by every image dataset, and the dataset registry."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import ConfigError, DataConfig
from .groupings import resolve_grouping


@dataclass
class RealDataset:
    """Per-class training tensors plus held-out real splits.

    Images are float32 in [-1, 1] with shape (C, H, W); grid points are float32 (2,).
    ``val`` and ``test`` are (x, y) with y the index of the class in ``classes``.
    """
    name: str
    kind: str                       # "points" or "image"
    classes: list[str]
    train: dict[str, torch.Tensor]  # class name -> (N_k, *sample_shape)
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    class_labels: dict[str, list[int]]  # class name -> source labels it groups

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(next(iter(self.train.values())).shape[1:])

    def train_sizes(self) -> dict[str, int]:
        return {k: int(v.shape[0]) for k, v in self.train.items()}

    def summary(self) -> str:
        sizes = ", ".join(f"{k}: {n}" for k, n in self.train_sizes().items())
        return (f"{self.name} ({self.kind}, shape {self.sample_shape}); train per class {{{sizes}}}; "
                f"val {len(self.val[1])}, test {len(self.test[1])}")


def split_per_class(x: np.ndarray, labels: np.ndarray, cfg: DataConfig) -> RealDataset:
    """Stratified train/val/test split over source labels, then grouping into classes."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    held = cfg.val_fraction + cfg.test_fraction
    if held > 0:
        train_idx, rest_idx = train_test_split(idx, test_size=held, stratify=labels,
                                               random_state=cfg.split_seed)
        if cfg.val_fraction > 0 and cfg.test_fraction > 0:
            val_idx, test_idx = train_test_split(rest_idx, test_size=cfg.test_fraction / held,
                                                 stratify=labels[rest_idx],
                                                 random_state=cfg.split_seed)
        elif cfg.val_fraction > 0:
            val_idx, test_idx = rest_idx, rest_idx[:0]
        else:
            val_idx, test_idx = rest_idx[:0], rest_idx
    else:
        train_idx, val_idx, test_idx = idx, idx[:0], idx[:0]
    train_idx = np.sort(train_idx)
    if cfg.train_per_class is not None:
        rng = np.random.default_rng(cfg.split_seed)
        keep = []
        for label in np.unique(labels):
            members = train_idx[labels[train_idx] == label]
            if len(members) < cfg.train_per_class:
                raise ConfigError(f"data.train_per_class={cfg.train_per_class} but label {label} has "
                                  f"only {len(members)} training examples; lower it")
            keep.append(np.sort(rng.choice(members, size=cfg.train_per_class, replace=False)))
        train_idx = np.concatenate(keep)

    source = sorted(int(v) for v in np.unique(labels))
    mapping = resolve_grouping(source, cfg.grouping, cfg.classes)
    classes = list(mapping)
    label_to_class = {lab: i for i, name in enumerate(classes) for lab in mapping[name]}
    used = np.array([lab in label_to_class for lab in labels])

    def view(sel: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        sel = sel[used[sel]]
        y = np.array([label_to_class[int(v)] for v in labels[sel]], dtype=np.int64)
        return torch.from_numpy(x[sel]), torch.from_numpy(y)

    train = {}
    for i, name in enumerate(classes):
        sel = train_idx[np.isin(labels[train_idx], mapping[name])]
        train[name] = torch.from_numpy(x[sel])
    return RealDataset(name="", kind="image", classes=classes, train=train, val=view(val_idx),
                       test=view(test_idx), class_labels=mapping)


def _load_digits(cfg: DataConfig) -> RealDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0 * 2.0 - 1.0)[:, None, :, :]
    ds = split_per_class(x, bunch.target.astype(np.int64), cfg)
    ds.name = "digits"
    return ds


def _load_grid2d(cfg: DataConfig) -> RealDataset:
    from .grid2d import sample_grid

    points = sample_grid(cfg.grid_points, cfg.grid_sigma, seed=cfg.split_seed)
    empty = (points[:0], torch.zeros(0, dtype=torch.int64))
    return RealDataset(name="grid2d", kind="points", classes=["grid"], train={"grid": points},
                       val=empty, test=empty, class_labels={"grid": [0]})


LOADERS = {"digits": _load_digits, "grid2d": _load_grid2d}


def load_dataset(cfg: DataConfig) -> RealDataset:
    """Load the configured real dataset as per-class training tensors plus held-out splits."""
    return LOADERS[cfg.name](cfg)


def check_batch_fits(dataset: RealDataset, batch_size: int) -> None:
    """A batch larger than a class cannot be drawn without repeating every image; refuse it early."""
    small = {k: n for k, n in dataset.train_sizes().items() if n < batch_size}
    if small:
        raise ConfigError(f"train.batch_size={batch_size} is larger than class(es) {small}; set "
                          f"train.batch_size <= {min(small.values())}")
