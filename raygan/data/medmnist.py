"""MedMNIST's 2D datasets from the .npz files the MedMNIST project distributes (https://medmnist.com,
which links the files on Zenodo), with their own train, validation and test splits.

A file holds train_images, train_labels, val_images, val_labels, test_images and test_labels; images
are uint8 (N, H, W) grey or (N, H, W, 3) RGB at 28, 64, 128 or 224 px, labels (N, 1) class indices (or
(N, k) one-hot). It is read with np.load(allow_pickle=False): an object array (a pickle) in it is
refused, never unpickled. Nothing is downloaded. data.channels and data.image_size apply to the 8-bit
pixels as for every image dataset (raygan.data.images); data.val_fraction and data.test_fraction are
not used, since the file's own splits are.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from raygan.config import ConfigError, DataConfig
from raygan.data.base import RealDataset, assemble, plan_splits
from raygan.data.images import resize_uint8, set_channels

SPLITS = ("train", "val", "test")
WHERE = "get the file from https://medmnist.com (its download links lead to Zenodo) and put it in data.root"


def medmnist_file(root: Path, flag: str, size: int) -> list[Path]:
    """The file names MedMNIST publishes for ``flag`` at ``size`` px, the preferred one first:
    <flag>.npz is the 28 px file (MedMNIST v2), <flag>_<size>.npz every size's (MedMNIST+)."""
    sized = root / f"{flag}_{size}.npz"
    return [root / f"{flag}.npz", sized] if size == 28 else [sized]


def _labels(path: Path, split: str, labels: np.ndarray, n: int) -> np.ndarray:
    """(N, 1) class indices or (N, k) one-hot rows -> N int64 labels; multi-label rows are refused."""
    if labels.ndim == 1:
        labels = labels[:, None]
    if labels.ndim != 2 or len(labels) != n or labels.dtype.kind not in "iub":
        raise ConfigError(f"{path}: {split}_labels is {labels.dtype} {labels.shape}, not integer labels (N, 1) "
                          f"or (N, k) for its {n} images; {WHERE}")
    if labels.shape[1] == 1:
        return labels[:, 0].astype(np.int64)
    if not np.isin(labels, (0, 1)).all() or not (labels.sum(axis=1) == 1).all():
        raise ConfigError(f"{path}: {split}_labels has rows with several (or no) labels set (multi-label, "
                          "like chestmnist); raygan trains one GAN ensemble per class, so it reads "
                          "single-label MedMNIST datasets only; pick another data.medmnist_flag")
    return labels.argmax(axis=1).astype(np.int64)


def _images(path: Path, split: str, images: np.ndarray, size: int) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, 3) at ``size`` px -> uint8 (N, C, H, W)."""
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or images.shape[1:3] != (size, size) or \
            (images.ndim == 4 and images.shape[3] != 3):
        raise ConfigError(f"{path}: {split}_images is {images.dtype} {images.shape}; a MedMNIST file at "
                          f"data.medmnist_size={size} holds uint8 (N, {size}, {size}) or "
                          f"(N, {size}, {size}, 3); check the size or {WHERE}")
    return images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)


def read_npz(path: Path, size: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(uint8 (N, C, H, W), int64 labels)] for train, val and test, or a one-line ConfigError."""
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"{path} is not an .npz (zip) file; {WHERE}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            arrays = {key: npz[key] for key in keys if key.split("_")[0] in SPLITS}
    except ValueError as err:  # numpy refuses a pickle (object arrays, or a pickle file) this way
        raise ConfigError(f"{path} holds pickled objects ({err}); raygan never unpickles data files; "
                          f"{WHERE}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as err:
        raise ConfigError(f"{path} is not a readable .npz file ({err}); {WHERE}") from None
    missing = [f"{split}_{kind}" for split in SPLITS for kind in ("images", "labels")
               if f"{split}_{kind}" not in keys]
    if missing:
        raise ConfigError(f"{path} lacks {', '.join(missing)}, so it is not a MedMNIST file; {WHERE}")
    splits = []
    for split in SPLITS:
        images = _images(path, split, arrays[f"{split}_images"], size)
        splits.append((images, _labels(path, split, arrays[f"{split}_labels"], len(images))))
    return splits


def load_medmnist(cfg: DataConfig) -> RealDataset:
    """data.medmnist_flag at data.medmnist_size from data.root, split as the file splits it."""
    if cfg.root is None or cfg.medmnist_flag is None:
        raise ConfigError("data.name=medmnist needs data.root (the folder holding the .npz) and "
                          "data.medmnist_flag (e.g. pathmnist)")
    candidates = medmnist_file(Path(cfg.root).expanduser(), cfg.medmnist_flag, cfg.medmnist_size)
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        also = f" (nor {candidates[1].name})" if len(candidates) > 1 else ""
        raise ConfigError(f"data.name=medmnist: {candidates[0]}{also} is not there, and raygan downloads "
                          f"nothing; {WHERE}")
    splits = read_npz(path, cfg.medmnist_size)
    labels = np.concatenate([y for _, y in splits])
    which = np.repeat(np.arange(3), [len(y) for _, y in splits])
    plan = plan_splits(labels, cfg, official_test=which == 2, official_val=which == 1)
    x = np.concatenate([x for x, _ in splits])
    del splits
    x = resize_uint8(set_channels(x, cfg.channels), cfg.image_size)
    return assemble(x, labels, plan, name=cfg.medmnist_flag)
