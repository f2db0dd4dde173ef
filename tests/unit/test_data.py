import numpy as np
import pytest
import torch

from raygan.config import ConfigError, load_config
from raygan.data import check_batch_fits, load_dataset
from raygan.data.grid2d import grid_means, sample_grid
from raygan.metrics.grid import nearest_modes


def test_grid_has_25_means_two_apart_and_sigma():
    means = grid_means()
    assert means.shape == (25, 2)
    assert sorted(set(means[:, 0])) == [4.0, 6.0, 8.0, 10.0, 12.0]
    assert sorted(set(means[:, 1])) == [4.0, 6.0, 8.0, 10.0, 12.0]
    points = sample_grid(100_000, 0.05, seed=0)
    assert points.shape == (100_000, 2) and points.dtype == torch.float32
    nearest, _ = nearest_modes(points.numpy(), means, 0.05)
    counts = np.bincount(nearest, minlength=25)
    assert counts.min() > 3_600 and counts.max() < 4_400  # ~4,000 per mode
    residual = points.numpy() - means[nearest]
    assert residual.std(0) == pytest.approx([0.05, 0.05], rel=0.02)
    assert np.allclose(residual.mean(0), 0, atol=1e-3)


def test_grid_dataset_is_seeded():
    cfg = load_config(overrides=["data.name=grid2d", "gan.family=mlp2d", "data.grid_points=1000"])
    a, b = load_dataset(cfg.data), load_dataset(cfg.data)
    assert torch.equal(a.train["grid"], b.train["grid"])
    assert a.classes == ["grid"] and a.sample_shape == (2,)


def test_digits_splits_are_stratified_disjoint_and_deterministic():
    cfg = load_config()
    ds = load_dataset(cfg.data)
    assert ds.classes == [str(i) for i in range(10)]
    assert ds.sample_shape == (1, 8, 8)
    x_train = torch.cat(list(ds.train.values()))
    assert x_train.min() >= -1 and x_train.max() <= 1
    assert len(x_train) + len(ds.val[1]) + len(ds.test[1]) == 1797
    # stratified: every class appears in val and test in near-equal numbers
    assert np.bincount(ds.test[1].numpy()).min() >= 25
    # disjoint: no test image equals a training image of its class at the same index set
    flat = {tuple(row) for row in x_train.flatten(1).numpy().round(4).tolist()}
    overlap = sum(tuple(r) in flat for r in ds.test[0].flatten(1).numpy().round(4).tolist())
    assert overlap < 3  # the digits set has a few genuine duplicates, never a shared split
    again = load_dataset(cfg.data)
    assert all(torch.equal(ds.train[k], again.train[k]) for k in ds.classes)
    other = load_dataset(load_config(overrides=["data.split_seed=1"]).data)
    assert not torch.equal(ds.train["0"], other.train["0"])


def test_ii_grouping_and_custom_classes():
    ds = load_dataset(load_config(overrides=["data.grouping=II"]).data)
    assert ds.classes == ["0-4", "5-9"]
    assert ds.class_labels == {"0-4": [0, 1, 2, 3, 4], "5-9": [5, 6, 7, 8, 9]}
    assert abs(len(ds.train["0-4"]) - len(ds.train["5-9"])) < 20
    assert set(ds.test[1].tolist()) == {0, 1}
    ds = load_dataset(load_config(overrides=["data.classes={even: [0, 2], odd: [1, 3]}"]).data)
    assert ds.classes == ["even", "odd"]
    assert set(ds.val[1].tolist()) == {0, 1}  # labels outside the grouping are dropped
    with pytest.raises(ConfigError, match="source label 2 is in both"):
        load_dataset(load_config(overrides=["data.classes={a: [0, 2], b: [2]}"]).data)
    with pytest.raises(ConfigError, match="does not have"):
        load_dataset(load_config(overrides=["data.classes={a: [42]}"]).data)


def test_train_per_class_subsamples_and_batch_check():
    ds = load_dataset(load_config(overrides=["data.train_per_class=50"]).data)
    assert set(ds.train_sizes().values()) == {50}
    check_batch_fits(ds, 50)
    with pytest.raises(ConfigError, match="train.batch_size=64 is larger than class"):
        check_batch_fits(ds, 64)
    with pytest.raises(ConfigError, match="lower it"):
        load_dataset(load_config(overrides=["data.train_per_class=5000"]).data)
