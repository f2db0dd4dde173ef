"""The RealDataset container, split logic shared by every image dataset, and the dataset registry."""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from raygan.config import ConfigError, DataConfig
from raygan.config.names import check_class_names
from raygan.data.groupings import resolve_grouping
from raygan.data.split_checks import check_split_sizes, stratify_error


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
    canaries: dict | None = None        # data.canaries > 0: class name -> ClassCanaries (raygan.data.canaries)
    groups: dict | None = None          # data.group_column: class name -> (N_k,) group of each training row

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(next(iter(self.train.values())).shape[1:])

    def train_sizes(self) -> dict[str, int]:
        return {k: int(v.shape[0]) for k, v in self.train.items()}

    def train_split(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every class's training samples in class order, with their class indices: (x, y), what a
        conditional member or a classifier of the real training split sees."""
        xs = [self.train[name] for name in self.classes]
        ys = [torch.full((len(x),), k, dtype=torch.int64) for k, x in enumerate(xs)]
        return torch.cat(xs), torch.cat(ys)

    def summary(self) -> str:
        sizes = ", ".join(f"{k}: {n}" for k, n in self.train_sizes().items())
        return (f"{self.name} ({self.kind}, shape {self.sample_shape}); train per class {{{sizes}}}; "
                f"val {len(self.val[1])}, test {len(self.test[1])}")


@dataclass
class SplitPlan:
    """Which rows go where, decided from the labels alone (before any pixel is converted)."""
    train_idx: np.ndarray               # sorted; after data.train_per_class subsampling
    val_idx: np.ndarray
    test_idx: np.ndarray
    mapping: dict[str, list[int]]       # class name -> source labels it groups


def _stratified(idx: np.ndarray, labels: np.ndarray, test_size: float, cfg: DataConfig, what: str, *,
                mapping: dict[str, list[int]], official_test: bool) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(idx, test_size=test_size, stratify=labels[idx], random_state=cfg.split_seed)
    except ValueError as err:  # e.g. a label with a single example cannot be stratified
        class_of = {label: name for name, members in mapping.items() for label in members}
        raise stratify_error(err, labels, idx, class_of, mapping, cfg, what=what, test_size=test_size,
                             official_test=official_test) from None


def split_indices(labels: np.ndarray, cfg: DataConfig, *, official_test: np.ndarray | None = None,
                  official_val: np.ndarray | None = None,
                  mapping: dict[str, list[int]] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified (train, val, test) row indices; train is sorted.

    Without ``official_test`` both held-out splits are carved from all rows with data.val_fraction
    and data.test_fraction. With it (a boolean mask of the rows of a dataset's own test split, e.g.
    torchvision's) those rows are the test split, data.test_fraction is not used, and validation is
    carved from the remaining rows with data.val_fraction, unless ``official_val`` (a mask of the
    dataset's own validation rows, e.g. MedMNIST's) gives it too: then no fraction is used. ``mapping`` (class name -> source labels)
    names the classes in a refusal.
    """
    idx = np.arange(len(labels))
    stratified = functools.partial(_stratified, labels=labels, cfg=cfg, official_test=official_test is not None,
                                   mapping=mapping or {str(v): [int(v)] for v in np.unique(labels)})
    if official_test is not None:
        test_idx, pool = idx[official_test], idx[~official_test]
        if official_val is not None:
            return idx[~official_test & ~official_val], idx[official_val], test_idx
        if cfg.val_fraction > 0:
            train_idx, val_idx = stratified(pool, test_size=cfg.val_fraction, what="validation")
        else:
            train_idx, val_idx = pool, pool[:0]
        return np.sort(train_idx), val_idx, test_idx
    held = cfg.val_fraction + cfg.test_fraction
    if held > 0:
        train_idx, rest_idx = stratified(idx, test_size=held, what="held-out")
        if cfg.val_fraction > 0 and cfg.test_fraction > 0:
            val_idx, test_idx = stratified(rest_idx, test_size=cfg.test_fraction / held, what="test")
        elif cfg.val_fraction > 0:
            val_idx, test_idx = rest_idx, rest_idx[:0]
        else:
            val_idx, test_idx = rest_idx[:0], rest_idx
    else:
        train_idx, val_idx, test_idx = idx, idx[:0], idx[:0]
    return np.sort(train_idx), val_idx, test_idx


def _subsample(train_idx: np.ndarray, labels: np.ndarray, cfg: DataConfig) -> np.ndarray:
    """data.train_per_class examples of every source label, drawn without replacement, seeded."""
    rng = np.random.default_rng(cfg.split_seed)
    keep = []
    for label in np.unique(labels):
        members = train_idx[labels[train_idx] == label]
        if len(members) < cfg.train_per_class:
            raise ConfigError(f"data.train_per_class={cfg.train_per_class} but label {label} has "
                              f"only {len(members)} training examples; lower it")
        keep.append(np.sort(rng.choice(members, size=cfg.train_per_class, replace=False)))
    return np.concatenate(keep)


def plan_splits(labels: np.ndarray, cfg: DataConfig, *, official_test: np.ndarray | None = None,
                official_val: np.ndarray | None = None, label_names: list[str] | dict[int, str] | None = None) -> SplitPlan:
    """Splits, subsampling and grouping from the labels alone, so bad settings fail before pixel work.

    ``label_names[k]`` names source label k when neither data.grouping nor data.classes is set
    (image-folder sub-folders, parquet class_name); otherwise a class is named by its label.
    """
    source = sorted(int(v) for v in np.unique(labels))
    mapping = resolve_grouping(source, cfg.grouping, cfg.classes)
    if label_names is not None and cfg.grouping is None and cfg.classes is None:
        names = [label_names[label] for label in source]
        if len(set(names)) != len(names):
            raise ConfigError(f"labels {source} carry the class names {names}, which are not unique")
        mapping = {name: [label] for name, label in zip(names, source)}
        check_class_names(mapping, where=f"named by the data at data.root={cfg.root}", fix="rename that "
                          "sub-folder (or class_name value) to a plain name such as tumour_a, or name the "
                          "classes yourself with data.classes")
    train_idx, val_idx, test_idx = split_indices(labels, cfg, official_test=official_test,
                                                 official_val=official_val, mapping=mapping)
    check_split_sizes(labels, mapping, cfg, train_idx=train_idx, val_idx=val_idx, test_idx=test_idx,
                      official_test=official_test, official_val=official_val)
    if cfg.train_per_class is not None:
        train_idx = _subsample(train_idx, labels, cfg)
    return SplitPlan(train_idx=train_idx, val_idx=val_idx, test_idx=test_idx, mapping=mapping)


def compact_plan(plan: SplitPlan, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, SplitPlan]:
    """(rows, their labels, the plan re-indexed into just those rows): the rows some split uses.

    Loaders that decode files (imagefolder, parquet) decode only these rows, so data.train_per_class
    or a grouping that leaves labels out does not decode images that would be dropped.
    """
    wanted = [label for members in plan.mapping.values() for label in members]
    rows = np.unique(np.concatenate([plan.train_idx, plan.val_idx, plan.test_idx]))
    rows = rows[np.isin(labels[rows], wanted)]

    def remap(idx: np.ndarray) -> np.ndarray:
        return np.searchsorted(rows, idx[np.isin(idx, rows)])

    return rows, labels[rows], SplitPlan(train_idx=remap(plan.train_idx), val_idx=remap(plan.val_idx),
                                         test_idx=remap(plan.test_idx), mapping=plan.mapping)


def train_groups(groups: np.ndarray, labels: np.ndarray, plan: SplitPlan) -> dict[str, np.ndarray]:
    """Per class, the group (data.group_column) of each training row, in ``assemble``'s row order."""
    return {cls: groups[plan.train_idx[np.isin(labels[plan.train_idx], members)]]
            for cls, members in plan.mapping.items()}


def _as_float(x: np.ndarray) -> torch.Tensor:
    """uint8 pixels become float32 in [-1, 1] here, one split at a time, so one float copy exists."""
    if x.dtype == np.uint8:
        return torch.from_numpy(x).to(torch.float32).div_(127.5).sub_(1.0)
    return torch.from_numpy(x)


def assemble(x: np.ndarray, labels: np.ndarray, plan: SplitPlan, *, name: str) -> RealDataset:
    """Per-class training tensors and (x, class index) held-out splits from rows of ``x``.

    ``x`` is float32 already in [-1, 1], or uint8 pixels (N, C, H, W) that are scaled to [-1, 1].
    Rows whose label belongs to no class are dropped from every split.
    """
    classes = list(plan.mapping)
    label_to_class = {lab: i for i, cls in enumerate(classes) for lab in plan.mapping[cls]}
    used = np.array([lab in label_to_class for lab in labels.tolist()], dtype=bool)

    def view(sel: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        sel = sel[used[sel]]
        y = np.array([label_to_class[int(v)] for v in labels[sel]], dtype=np.int64)
        return _as_float(x[sel]), torch.from_numpy(y)

    train = {}
    for cls in classes:
        sel = plan.train_idx[np.isin(labels[plan.train_idx], plan.mapping[cls])]
        train[cls] = _as_float(x[sel])
    return RealDataset(name=name, kind="image", classes=classes, train=train, val=view(plan.val_idx),
                       test=view(plan.test_idx), class_labels=plan.mapping)


def split_per_class(x: np.ndarray, labels: np.ndarray, cfg: DataConfig, *, name: str = "",
                    official_test: np.ndarray | None = None,
                    label_names: list[str] | dict[int, str] | None = None) -> RealDataset:
    """Stratified train/val/test split over source labels, then grouping into classes."""
    plan = plan_splits(labels, cfg, official_test=official_test, label_names=label_names)
    return assemble(x, labels, plan, name=name)


def _load_digits(cfg: DataConfig) -> RealDataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0 * 2.0 - 1.0)[:, None, :, :]
    return split_per_class(x, bunch.target.astype(np.int64), cfg, name="digits")


def _load_grid2d(cfg: DataConfig) -> RealDataset:
    from raygan.data.grid2d import sample_grid

    points = sample_grid(cfg.grid_points, cfg.grid_sigma, seed=cfg.split_seed)
    empty = (points[:0], torch.zeros(0, dtype=torch.int64))
    return RealDataset(name="grid2d", kind="points", classes=["grid"], train={"grid": points},
                       val=empty, test=empty, class_labels={"grid": [0]})


def _lazy(module: str, function: str):
    """A loader imported on first use: torchvision, PIL and pyarrow load only when their data does."""
    def load(cfg: DataConfig) -> RealDataset:
        from importlib import import_module

        return getattr(import_module(f".{module}", __package__), function)(cfg)
    return load


_TORCHVISION = _lazy("images", "load_torchvision")
LOADERS = {"digits": _load_digits, "grid2d": _load_grid2d, "mnist": _TORCHVISION,
           "fashion_mnist": _TORCHVISION, "cifar10": _TORCHVISION, "svhn": _TORCHVISION,
           "imagefolder": _lazy("imagefolder", "load_imagefolder"),
           "parquet": _lazy("parquet", "load_parquet"), "medmnist": _lazy("medmnist", "load_medmnist"),
           "lfw_subset": _lazy("skimage_sets", "load_lfw_subset"),
           "skimage_patches": _lazy("skimage_sets", "load_skimage_patches")}


def load_dataset(cfg: DataConfig) -> RealDataset:
    """Load the configured real dataset as per-class training tensors plus held-out splits (with
    data.canaries planted in the training split: raygan.data.canaries)."""
    dataset = LOADERS[cfg.name](cfg)
    if cfg.canaries:
        from raygan.data.canaries import plant

        dataset = plant(dataset, cfg)
    return dataset


def check_batch_fits(dataset: RealDataset, batch_size: int) -> None:
    """A batch larger than a class cannot be drawn without repeating every image; refuse it early."""
    small = {k: n for k, n in dataset.train_sizes().items() if n < batch_size}
    if small:
        raise ConfigError(f"train.batch_size={batch_size} is larger than class(es) {small}; set "
                          f"train.batch_size <= {min(small.values())}")
