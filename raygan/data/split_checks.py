"""What the splits must hold before any work, said per class: a classifier needs two classes, and every
class needs training images and, where its data config asks for them, validation and test images.

A class without test images makes its TSTR and TRTR look perfect (nothing is misclassified where
nothing is tested) and the audit fail late; a stratified split that cannot be carved fails in
scikit-learn with label numbers. Both are refused here as one line naming the class, how many images
it has and how many it needs at the configured fractions (or what else to change).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from raygan.config import ConfigError, DataConfig


def _fractions(cfg: DataConfig, official_test: bool) -> dict[str, float]:
    """The share of a label's examples each split gets (the training split included); an official test
    split is the dataset's own and takes no share."""
    shares = {"validation": cfg.val_fraction}
    if not official_test:
        shares["test"] = cfg.test_fraction
    shares["training"] = 1.0 - sum(shares.values())
    return {split: f for split, f in shares.items() if f > 0}


def minimum_per_label(cfg: DataConfig, official_test: bool = False) -> int:
    """The examples a source label needs so that every split it is stratified into gets one of them
    (about 1 / the smallest fraction; a stratified split needs at least two)."""
    shares = _fractions(cfg, official_test)
    return max(len(shares), 2 if len(shares) > 1 else 1,
               *(math.ceil(1 / f - 1e-9) for f in shares.values()))


def _fraction_key(split: str) -> str:
    return {"validation": "data.val_fraction", "test": "data.test_fraction"}.get(split, "")


def _images(n: int) -> str:
    return f"{n} image" + ("" if n == 1 else "s")


def _who(name: str, labels: list[int]) -> str:
    return f"class {name!r}" + (f" (source labels {labels})" if len(labels) > 1 else "")


def check_split_sizes(labels: np.ndarray, mapping: dict[str, list[int]], cfg: DataConfig, *,
                      train_idx: np.ndarray, val_idx: np.ndarray, test_idx: np.ndarray,
                      official_test: Optional[np.ndarray] = None,
                      official_val: Optional[np.ndarray] = None) -> None:
    """Every class has training images, validation images when data.val_fraction > 0 (or the dataset
    has its own validation split) and test images when data.test_fraction > 0 (or the dataset has its
    own test split); else a one-line ConfigError."""
    need = {"training": True, "validation": official_val is not None or cfg.val_fraction > 0,
            "test": official_test is not None or cfg.test_fraction > 0}
    own = {"training": official_val is not None, "validation": official_val is not None,
           "test": official_test is not None}
    minimum = minimum_per_label(cfg, official_test is not None)
    for name, members in mapping.items():
        n = int(np.isin(labels, members).sum())
        for split, idx in (("training", train_idx), ("validation", val_idx), ("test", test_idx)):
            if not need[split] or np.isin(labels[idx], members).any():
                continue
            if own[split]:
                raise ConfigError(f"{_who(name, members)} has no images in the dataset's own {split} split "
                                  f"(the {split} files under data.root); use the complete {split} files, "
                                  f"or leave the class out with data.classes")
            key = _fraction_key(split)
            if split == "training":
                fix = "lower data.val_fraction and data.test_fraction"
            else:
                fix = f"raise {key} (to at least {1 / max(n, 1):.2f} for {n} images)"
            raise ConfigError(f"{_who(name, members)} has {_images(n)}, and the split leaves none of them "
                              f"in the {split} split, where every class needs some; give the class more "
                              f"images (about {max(minimum, n + 1)} at these fractions), {fix}, or merge it "
                              f"into another class with data.classes")


def stratify_error(err: ValueError, labels: np.ndarray, idx: np.ndarray, class_of: dict[int, str],
                   mapping: dict[str, list[int]], cfg: DataConfig, *, what: str, test_size: float,
                   official_test: bool) -> ConfigError:
    """scikit-learn's refusal to carve a stratified split, as one raygan line: the class of the smallest
    label with its count and the minimum it needs, or (when every label has enough) the split's size."""
    values, counts = np.unique(labels[idx], return_counts=True)
    label = int(values[int(np.argmin(counts))])
    n = int((labels == label).sum())  # all its examples: a second split sees only the held-out ones
    minimum = minimum_per_label(cfg, official_test)
    name = class_of.get(label, str(label))
    if n < minimum:
        return ConfigError(f"{_who(name, mapping.get(name, [label]))} has {_images(n)}, too few to split "
                           f"with data.val_fraction={cfg.val_fraction:g} and data.test_fraction="
                           f"{cfg.test_fraction:g}: every split needs one image of each label, about "
                           f"{minimum} images a label at these fractions; add images to the class, or merge "
                           f"it into another class with data.classes")
    return ConfigError(f"cannot carve a stratified {what} split of fraction {test_size:g} from {len(idx)} "
                       f"examples of {len(values)} labels (scikit-learn: {str(err)[:160]}); every split "
                       f"needs at least one example of each label: raise data.val_fraction / "
                       f"data.test_fraction, or add examples")


def check_classifiable(classes: list[str], kind: str) -> None:
    """A downstream classifier (TRTR, TSTR, TRTS) needs at least two classes: with one, every
    prediction is right and the accuracy is 1.000 whatever the images."""
    if kind == "image" and len(classes) < 2:
        raise ConfigError(f"the data has one class ({', '.join(map(repr, classes))}), and a classifier needs "
                          "at least two (its accuracy would be 1.000 whatever the synthetic data); add "
                          "classes (data.classes, or more sub-folders for imagefolder), or run `raygan "
                          "train` and `raygan synthesize` without evaluating")
