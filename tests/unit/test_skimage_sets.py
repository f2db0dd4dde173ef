"""scikit-image's bundled benchmark sets (raygan.data.skimage_sets): lfw_subset and skimage_patches load
as raygan datasets (classes, shapes, splits), the crops leave the dark surround out, and a missing
scikit-image is one line naming the install."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from raygan.config import ConfigError, DataConfig
from raygan.data import load_dataset
from raygan.data.skimage_sets import DARK, colour_accuracy, grid_crops, recolour

pytest.importorskip("skimage")


def _count(ds) -> dict:
    total = {c: len(x) for c, x in ds.train.items()}
    for _, y in (ds.val, ds.test):
        for k, c in enumerate(ds.classes):
            total[c] += int((y == k).sum())
    return total


def test_lfw_subset_is_100_faces_and_100_non_faces_in_grey():
    ds = load_dataset(DataConfig(name="lfw_subset", image_size=32))
    assert ds.classes == ["face", "non_face"] and ds.sample_shape == (1, 32, 32)
    assert _count(ds) == {"face": 100, "non_face": 100} and len(ds.test[0]) == 30
    assert -1 <= ds.train["face"].min() and ds.train["face"].max() <= 1
    assert load_dataset(DataConfig(name="lfw_subset")).sample_shape == (1, 25, 25)


def test_skimage_patches_are_two_rgb_classes_of_several_photographs():
    ds = load_dataset(DataConfig(name="skimage_patches"))
    assert ds.classes == ["tissue", "photo"] and ds.sample_shape == (3, 32, 32)
    counts = _count(ds)
    assert counts["tissue"] > 500 and counts["photo"] > 500
    x = ds.train["tissue"]  # no crop darker than DARK (a recoloured crop has its donor's mean, no darker)
    assert ((x.flatten(1).mean(1) + 1) * 127.5 > DARK - 1).all()
    val, test = colour_accuracy(ds, trees=30)  # colour alone is at chance
    assert val < 0.65 and test < 0.65


def test_recolour_gives_each_crop_its_donors_colours_in_its_own_light_dark_order():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, size=(6, 3, 4, 4), dtype=np.uint8)
    out = recolour(crops, seed=1)
    donors = np.random.default_rng(1).integers(6, size=6)
    for i, d in enumerate(donors):
        mine, theirs = (c.reshape(3, -1).T for c in (out[i], crops[d]))
        assert sorted(map(tuple, mine)) == sorted(map(tuple, theirs))  # the donor's colour histogram
        luma_in, luma_out = (c.reshape(3, -1).T @ np.array([0.299, 0.587, 0.114]) for c in (crops[i], out[i]))
        assert np.all(np.diff(luma_out[np.argsort(luma_in, kind="stable")]) >= -1e-9)  # same order


def test_grid_crops_cover_the_image_and_drop_the_dark_ones():
    image = np.full((64, 96, 3), 200, dtype=np.uint8)
    image[:32, :32] = 0  # one black crop
    crops = grid_crops(image, 1.0)
    assert crops.shape == (5, 3, 32, 32) and crops.min() == 200
    assert grid_crops(image, 0.5).shape == (1, 3, 32, 32)


def test_without_scikit_image_the_loader_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "skimage", None)
    monkeypatch.setitem(sys.modules, "skimage.data", None)
    with pytest.raises(ConfigError, match="pip install"):
        load_dataset(DataConfig(name="lfw_subset", image_size=32))
