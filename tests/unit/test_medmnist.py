"""data.name=medmnist: tiny .npz files in MedMNIST's layout, written here, loaded through load_dataset."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from raygan.config import ConfigError, load_config
from raygan.data import load_dataset

SIZES = {"train": 6, "val": 3, "test": 3}  # images per label; the mark pixel (0, 0) says the split
MARK = {"train": 0, "val": 100, "test": 200}


def write_medmnist(path, *, size=28, rgb=False, one_hot=False, labels=3):
    """Image of label k is filled with 20k + 10 (+ 1 in RGB channel c for c); pixel (0, 0) marks its split."""
    arrays = {}
    for split, n in SIZES.items():
        y = np.repeat(np.arange(labels, dtype=np.uint8), n)
        x = np.repeat((20 * y + 10)[:, None, None], size, axis=1).repeat(size, axis=2).astype(np.uint8)
        if rgb:
            x = np.stack([x + c for c in range(3)], axis=-1)
        x[:, 0, 0] = MARK[split]
        arrays[f"{split}_images"] = x
        arrays[f"{split}_labels"] = np.eye(labels, dtype=np.uint8)[y] if one_hot else y[:, None]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def medmnist(root, *overrides):
    cfg = load_config(overrides=["data.name=medmnist", f"data.root={root}", "data.medmnist_flag=pathmnist",
                                 *overrides])
    return load_dataset(cfg.data)


def pixel(value):
    return torch.tensor(float(value)).div(127.5).sub(1.0).item()


def test_gray_28_uses_the_files_own_splits(tmp_path):
    write_medmnist(tmp_path / "pathmnist.npz")
    ds = medmnist(tmp_path)
    assert ds.classes == ["0", "1", "2"] and ds.sample_shape == (1, 28, 28)
    assert ds.train_sizes() == {"0": 6, "1": 6, "2": 6}
    assert len(ds.val[1]) == 9 and len(ds.test[1]) == 9
    assert set(ds.train["1"][:, 0, 0, 0].tolist()) == {pixel(0)}
    assert set(ds.val[0][:, 0, 0, 0].tolist()) == {pixel(100)}
    assert set(ds.test[0][:, 0, 0, 0].tolist()) == {pixel(200)}
    assert set(ds.train["2"][:, 0, 5, 5].tolist()) == {pixel(50)}
    assert ds.test[1].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_rgb_64_one_hot_labels_and_channels(tmp_path):
    write_medmnist(tmp_path / "pathmnist_64.npz", size=64, rgb=True, one_hot=True)
    ds = medmnist(tmp_path, "data.medmnist_size=64")
    assert ds.sample_shape == (3, 64, 64)
    assert [pixel(v) for v in (50, 51, 52)] == ds.train["2"][0, :, 5, 5].tolist()
    assert medmnist(tmp_path, "data.medmnist_size=64", "data.channels=1",
                    "data.image_size=32").sample_shape == (1, 32, 32)


def test_missing_file_names_it_and_where_to_get_it(tmp_path):
    with pytest.raises(ConfigError) as err:
        medmnist(tmp_path, "data.medmnist_size=128")
    msg = str(err.value)
    assert "pathmnist_128.npz" in msg and "medmnist.com" in msg and "\n" not in msg


def test_pickled_objects_and_multi_label_are_refused(tmp_path):
    arrays = {f"{s}_{k}": np.zeros((2, 28, 28) if k == "images" else (2, 1), np.uint8)
              for s in SIZES for k in ("images", "labels")}
    arrays["train_labels"] = np.array([[{"x": 1}], [0]], dtype=object)
    np.savez(tmp_path / "pathmnist.npz", **arrays)
    with pytest.raises(ConfigError, match="pickled objects"):
        medmnist(tmp_path)
    write_medmnist(tmp_path / "chest" / "pathmnist.npz", one_hot=True)
    arrays = dict(np.load(tmp_path / "chest" / "pathmnist.npz"))
    arrays["val_labels"][0] = 1  # a row with every label set
    np.savez(tmp_path / "chest" / "pathmnist.npz", **arrays)
    with pytest.raises(ConfigError, match="multi-label"):
        medmnist(tmp_path / "chest")


def test_config_needs_the_flag_and_refuses_download(tmp_path):
    with pytest.raises(ConfigError, match="needs data.medmnist_flag"):
        load_config(overrides=["data.name=medmnist", f"data.root={tmp_path}"])
    with pytest.raises(ConfigError, match="medmnist.com"):
        load_config(overrides=["data.name=medmnist", f"data.root={tmp_path}", "data.medmnist_flag=pathmnist",
                               "data.download=true"])
    with pytest.raises(ConfigError, match="data.medmnist_flag=null"):
        load_config(overrides=["data.medmnist_flag=pathmnist"])
