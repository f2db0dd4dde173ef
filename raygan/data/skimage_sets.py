"""Small, hard benchmark sets built from the data that ships inside scikit-image's wheel (issue 27): the
way medical data is hard (few images, classes that hold several sub-types, colour stains), with
nothing downloaded. scikit-image is in the test and bench extras, not the core: a missing one is a
one-line ConfigError naming the install.

- ``data.name: lfw_subset``: ``skimage.data.lfw_subset()``, 100 faces then 100 non-faces, 25 x 25
  grey, classes "face" and "non_face" (a small-data, 2-class set). 25 px does not halve to a DCGAN
  size: train it with data.image_size (e.g. 32).
- ``data.name: skimage_patches``: 32 x 32 RGB crops on a grid over skimage's colour photographs, two
  classes that each hold several sources: "tissue" (the immunohistochemistry slide; the retina fundus
  photograph at half scale) and "photo" (chelsea the cat, coffee, the astronaut). Crops darker than
  DARK (the fundus's black surround) are dropped. Left as they are, colour gives these classes away (a
  random forest on colour alone: 96 % on the test split), so every crop wears the colours of another
  crop drawn at random from the whole set, either class (:func:`recolour`: a colour transfer by
  luminance rank, as stains and scanners vary between labs): a crop keeps its own light-dark structure
  (edges, texture, shapes) and takes the other's colour histogram exactly, so colour alone is at chance
  by construction. :func:`colour_accuracy` checks it (docs/results.md gives it beside the CNN's TRTR).

Both are split by data.val_fraction / data.test_fraction (stratified, data.split_seed), as image folders.
"""
from __future__ import annotations

import numpy as np
import torch

from raygan.config import ConfigError, DataConfig
from raygan.data.base import RealDataset, split_per_class
from raygan.data.images import resize_uint8, set_channels

PATCH = 32
DARK = 25
# The donors of recolour are part of the set's definition (as a file's bytes are), not a run's seed.
RECOLOUR_SEED = 27  # mean 8-bit value under which a crop is background
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
    import torch.nn.functional as F

    part = F.interpolate(torch.from_numpy(x.astype(np.float32)), size=(h, w), mode="bilinear",
                         antialias=True, align_corners=False)
    return part.round_().clamp_(0, 255).to(torch.uint8).numpy()


def recolour(crops: np.ndarray, seed: int = RECOLOUR_SEED) -> np.ndarray:
    """uint8 crops (N, 3, H, W), each given the colours of a donor crop drawn at random from all N: its
    pixels ranked by luminance (ITU-R 601) take the donor's pixels of the same luminance rank."""
    flat = crops.reshape(len(crops), 3, -1).transpose(0, 2, 1)  # (N, HW, 3)
    luma = flat @ np.array([0.299, 0.587, 0.114])
    order = np.argsort(luma, axis=1, kind="stable")
    by_rank = np.take_along_axis(flat, order[..., None], axis=1)  # each crop's pixels, darkest first
    donors = np.random.default_rng(seed).integers(len(crops), size=len(crops))
    out = np.empty_like(flat)
    np.put_along_axis(out, order[..., None], by_rank[donors], axis=1)
    return out.transpose(0, 2, 1).reshape(crops.shape)


def patch_set() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(uint8 crops (N, 3, 32, 32), labels (N,), class names) of data.name=skimage_patches."""
    data = _skimage_data()
    xs, ys = [], []
    for label, sources in enumerate(PATCH_SOURCES.values()):
        for name, scale in sources:
            crops = grid_crops(getattr(data, name)(), scale)
            xs.append(crops)
            ys.append(np.full(len(crops), label, dtype=np.int64))
    return recolour(np.concatenate(xs)), np.concatenate(ys), list(PATCH_SOURCES)


def colour_features(x: torch.Tensor, bins: int = 4) -> np.ndarray:
    """Colour alone of images ``x`` (N, 3, H, W) in [-1, 1]: a joint histogram of ``bins`` levels per
    channel (bins^3 fractions) and each channel's mean and standard deviation; no spatial information."""
    pixels = ((x.flatten(2).transpose(1, 2).numpy() + 1) * 127.5).clip(0, 255)  # (N, HW, 3)
    q = np.minimum((pixels * bins / 256).astype(np.int64), bins - 1)
    cells = q[..., 0] * bins * bins + q[..., 1] * bins + q[..., 2]
    hist = np.stack([np.bincount(c, minlength=bins ** 3) for c in cells]) / cells.shape[1]
    return np.concatenate([hist, pixels.mean(1) / 255, pixels.std(1) / 255], axis=1)


def colour_accuracy(dataset: RealDataset, *, trees: int = 200, seed: int = 0) -> tuple[float, float]:
    """(val, test) accuracy of a random forest on :func:`colour_features`, trained on the train split: how
    far colour alone separates the classes (a TRTR that cannot see texture or shape)."""
    from sklearn.ensemble import RandomForestClassifier

    x, y = dataset.train_split()
    forest = RandomForestClassifier(trees, random_state=seed).fit(colour_features(x), y.numpy())
    return tuple(float((forest.predict(colour_features(xs)) == ys.numpy()).mean())
                 for xs, ys in (dataset.val, dataset.test))


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


__all__ = ["DARK", "PATCH", "PATCH_SOURCES", "RECOLOUR_SEED", "colour_accuracy", "colour_features", "grid_crops", "load_lfw_subset", "load_skimage_patches",
           "patch_set", "recolour"]
