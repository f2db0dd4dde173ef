"""Small, hard benchmark sets built from the data that ships inside scikit-image's wheel (issue 27): the
way medical data is hard (few images, classes that hold several sub-types, colour stains), with
nothing downloaded. scikit-image is in the test and bench extras, not the core: a missing one is a
one-line ConfigError naming the install.

- ``data.name: lfw_subset``: ``skimage.data.lfw_subset()``, 100 faces then 100 non-faces, 25 x 25
  grey, classes "face" and "non_face" (a small-data, 2-class set). 25 px does not halve to a DCGAN
  size: train it with data.image_size (e.g. 32).
- ``data.name: skimage_patches``: 32 x 32 RGB crops on a grid over skimage's colour photographs, two
  classes that each hold several sources: "tissue" (the immunohistochemistry slide; the retina fundus
  photograph at half scale) and "photo" (chelsea the cat, coffee, the astronaut). The groups are chosen
  so that their colours overlap (brown stain against brown fur and coffee, orange fundus against orange
  fur): a random forest on colour histograms reaches 0.86 (5-fold cross-validation), well short of a
  convolutional classifier on texture (docs/results.md). Crops darker than DARK (the fundus's black
  surround) are dropped.

Both are split by data.val_fraction / data.test_fraction (stratified, data.split_seed), as image folders.
"""
from __future__ import annotations

import numpy as np

from raygan.config import ConfigError, DataConfig
from raygan.data.base import RealDataset, split_per_class
from raygan.data.images import resize_uint8, set_channels

PATCH = 32
DARK = 25  # mean 8-bit value under which a crop is background
# class -> (photograph, scale before cropping): sources grouped so that colour does not give the class
PATCH_SOURCES = {"tissue": (("immunohistochemistry", 1.0), ("retina", 0.5)),
                 "photo": (("chelsea", 1.0), ("coffee", 1.0), ("astronaut", 1.0))}


def _skimage_data():
    try:
        import skimage.data
    except ImportError as err:
        raise ConfigError("this data.name reads scikit-image's bundled data, and scikit-image is not "
                          "installed; pip install 'raygan[bench]' (or scikit-image)") from err
    return skimage.data


def grid_crops(image: np.ndarray, scale: float, size: int = PATCH) -> np.ndarray:
    """uint8 (H, W, 3) photograph -> its non-overlapping size x size crops (N, 3, size, size), row by
    row, after an antialiased rescale by ``scale``; crops darker than DARK left out."""
    x = np.ascontiguousarray(image[..., :3].transpose(2, 0, 1))[None]
    if scale != 1.0:
        x = resize_uint8_rect(x, round(x.shape[2] * scale), round(x.shape[3] * scale))
    _, c, h, w = x.shape
    crops = np.stack([x[0, :, i:i + size, j:j + size] for i in range(0, h - size + 1, size)
                      for j in range(0, w - size + 1, size)])
    return crops[crops.reshape(len(crops), -1).mean(axis=1) > DARK]


def resize_uint8_rect(x: np.ndarray, h: int, w: int) -> np.ndarray:
    """uint8 (N, C, H, W) -> (N, C, h, w), antialiased bilinear (raygan.data.images.resize_uint8's
    arithmetic for a non-square target)."""
    import torch
    import torch.nn.functional as F

    part = F.interpolate(torch.from_numpy(x.astype(np.float32)), size=(h, w), mode="bilinear",
                         antialias=True, align_corners=False)
    return part.round_().clamp_(0, 255).to(torch.uint8).numpy()


def patch_set() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 crops (N, 3, 32, 32), labels (N,), class names) of data.name=skimage_patches."""
    data = _skimage_data()
    xs, ys = [], []
    for label, sources in enumerate(PATCH_SOURCES.values()):
        for name, scale in sources:
            crops = grid_crops(getattr(data, name)(), scale)
            xs.append(crops)
            ys.append(np.full(len(crops), label, dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys), list(PATCH_SOURCES)


def _finish(x: np.ndarray, labels: np.ndarray, names: list[str], cfg: DataConfig) -> RealDataset:
    x = resize_uint8(set_channels(x, cfg.channels), cfg.image_size)
    return split_per_class(x, labels, cfg, name=cfg.name, label_names=names)


def load_lfw_subset(cfg: DataConfig) -> RealDataset:
    """skimage's lfw_subset: 100 faces (label 0, "face") then 100 non-faces (1, "non_face"), 25 px grey."""
    faces = _skimage_data().lfw_subset()  # (200, 25, 25) float64 in [0, 1]
    x = np.round(faces * 255).clip(0, 255).astype(np.uint8)[:, None]
    labels = np.repeat(np.arange(2, dtype=np.int64), len(x) // 2)
    return _finish(x, labels, ["face", "non_face"], cfg)


def load_skimage_patches(cfg: DataConfig) -> RealDataset:
    x, labels, names = patch_set()
    return _finish(x, labels, names, cfg)


__all__ = ["DARK", "PATCH", "PATCH_SOURCES", "grid_crops", "load_lfw_subset", "load_skimage_patches",
           "patch_set"]
