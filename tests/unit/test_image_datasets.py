"""Real image datasets from local files: tiny copies written in torchvision's on-disk formats, image
folders of PNGs and parquet files, loaded through raygan.data.load_dataset."""
from __future__ import annotations

import gzip
import io
import pickle
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from raygan.config import ConfigError, load_config
from raygan.data import load_dataset
from raygan.synthesis.records import encode_png


def data_cfg(*overrides):
    return load_config(overrides=list(overrides)).data


def unit(value) -> float:
    """The [-1, 1] value raygan gives an 8-bit pixel value (computed in float32, as raygan does)."""
    return torch.tensor(float(value)).div(127.5).sub(1.0).item()


def class_values(ds) -> dict[str, set]:
    """{class: the set of values at pixel (0, 2, 2) over its training images}."""
    return {k: set(v[:, 0, 2, 2].tolist()) for k, v in ds.train.items()}


# ---------------------------------------------------------------------------- writers

def write_idx(path, array: np.ndarray) -> None:
    data = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def mnist_split(per_label: int, split_mark: int) -> tuple[np.ndarray, np.ndarray]:
    """Image i of label k is filled with 20k + 5; pixel (row 0, col 1) is 255 (orientation) and
    pixel (27, 27) marks the split."""
    labels = np.repeat(np.arange(10, dtype=np.uint8), per_label)
    images = np.repeat((20 * labels + 5)[:, None, None], 28, axis=1).repeat(28, axis=2).astype(np.uint8)
    images[:, 0, 1] = 255
    images[:, 27, 27] = split_mark
    return images, labels


def write_mnist(root, folder="MNIST", gz=False):
    raw = root / folder / "raw"
    suffix = ".gz" if gz else ""
    for split, per_label, mark in (("train", 4, 0), ("t10k", 2, 255)):
        images, labels = mnist_split(per_label, mark)
        write_idx(raw / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte{suffix}", labels)


def cifar_batch(labels: list[int], split_mark: int) -> dict:
    """Plane c of an image of label k is 40c + 10k; red (row 0, col 1) is 255; blue (31, 31) marks
    the split. Rows are 1024 red, 1024 green, 1024 blue values, each plane row-major."""
    planes = np.stack([np.full((len(labels), 32, 32), 40 * c, np.uint8) for c in range(3)], axis=1)
    planes += (10 * np.array(labels, np.uint8))[:, None, None, None]
    planes[:, 0, 0, 1] = 255
    planes[:, 2, 31, 31] = split_mark
    return {"data": planes.reshape(len(labels), 3072), "labels": labels, "batch_label": "x"}


def write_cifar(root, skip=()):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {f"data_batch_{b}": cifar_batch(list(range(10)), 0) for b in range(1, 6)}  # 5 per label
    batches["test_batch"] = cifar_batch(list(range(10)) * 2, 255)
    batches["batches.meta"] = {"label_names": [f"class{k}" for k in range(10)]}
    for name, entry in batches.items():
        if name not in skip:
            (folder / name).write_bytes(pickle.dumps(entry))


def write_svhn(root, per_digit_train=4, per_digit_test=2):
    from scipy.io import savemat

    for split, per_digit in (("train", per_digit_train), ("test", per_digit_test)):
        digits = np.repeat(np.arange(10), per_digit)
        x = np.zeros((32, 32, 3, len(digits)), np.uint8)  # (row, col, channel, image)
        for c in range(3):
            x[:, :, c, :] = 20 * digits + c
        x[0, 1, 0, :] = 255
        y = np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]  # the .mat label of 0 is 10
        savemat(str(root / f"{split}_32x32.mat"), {"X": x, "y": y})


def png(array: np.ndarray, mode: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def write_folder(root, classes=("eel", "cat", "dog"), per_class=10, size=(12, 12), mode="RGB"):
    """Class j (sorted order) has every pixel 50j + 10, channel c adding c for RGB."""
    for j, name in enumerate(sorted(classes)):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
            pixels = np.full(shape, 50 * j + 10, np.uint8)
            if mode == "RGB":
                pixels += np.arange(3, dtype=np.uint8)
            (folder / f"{i:03d}.png").write_bytes(png(pixels, mode))


# ---------------------------------------------------------------------------- torchvision sets

@pytest.mark.parametrize("name,folder,gz", [("mnist", "MNIST", False),
                                             ("fashion_mnist", "FashionMNIST", True)])
def test_mnist_formats_round_trip_with_official_test_split(tmp_path, name, folder, gz):
    write_mnist(tmp_path, folder, gz=gz)
    ds = load_dataset(data_cfg(f"data.name={name}", f"data.root={tmp_path}", "data.val_fraction=0.25"))
    assert ds.name == name and ds.kind == "image"
    assert ds.classes == [str(k) for k in range(10)] and ds.sample_shape == (1, 28, 28)
    # 40 official training images: 10 (one per label) go to validation, 3 per label train
    assert ds.train_sizes() == {str(k): 3 for k in range(10)}
    assert len(ds.val[1]) == 10 and sorted(ds.val[1].tolist()) == list(range(10))
    # the official test split is the test split, untouched
    assert len(ds.test[1]) == 20 and np.bincount(ds.test[1].numpy()).tolist() == [2] * 10
    assert torch.all(ds.test[0][:, 0, 27, 27] == 1.0)
    assert torch.all(ds.val[0][:, 0, 27, 27] == -1.0)
    for k in range(10):
        images = ds.train[str(k)]
        assert images.dtype == torch.float32
        assert torch.all(images[:, 0, 27, 27] == -1.0)
        assert torch.allclose(images[:, 0, 5, 5], torch.tensor(unit(20 * k + 5)))
        assert torch.all(images[:, 0, 0, 1] == 1.0) and torch.all(images[:, 0, 1, 0] != 1.0)
    for x, y in (ds.val, ds.test):
        assert torch.allclose(x[:, 0, 5, 5], (20 * y.float() + 5) / 127.5 - 1)
    everything = torch.cat([*ds.train.values(), ds.val[0], ds.test[0]])
    assert everything.min() >= -1 and everything.max() <= 1


def test_grouping_ii_and_train_per_class_on_mnist(tmp_path):
    write_mnist(tmp_path)
    base = ["data.name=mnist", f"data.root={tmp_path}", "data.val_fraction=0.25"]
    ds = load_dataset(data_cfg(*base, "data.grouping=II"))
    assert ds.classes == ["0-4", "5-9"]
    assert ds.train_sizes() == {"0-4": 15, "5-9": 15}
    assert torch.allclose(ds.train["5-9"][:, 0, 5, 5].unique().sort().values,
                          torch.tensor([unit(20 * k + 5) for k in range(5, 10)]))
    assert np.bincount(ds.test[1].numpy()).tolist() == [10, 10]
    ds = load_dataset(data_cfg(*base, "data.train_per_class=2"))
    assert ds.train_sizes() == {str(k): 2 for k in range(10)}
    ds = load_dataset(data_cfg(*base, "data.train_per_class=2", "data.grouping=II"))
    assert ds.train_sizes() == {"0-4": 10, "5-9": 10}  # train_per_class counts each source label
    with pytest.raises(ConfigError, match="only 3 training examples"):
        load_dataset(data_cfg(*base, "data.train_per_class=4"))


def test_cifar10_pickles_round_trip_resize_and_grouping(tmp_path):
    write_cifar(tmp_path)
    base = ["data.name=cifar10", f"data.root={tmp_path}", "data.val_fraction=0.2"]
    ds = load_dataset(data_cfg(*base))
    assert ds.name == "cifar10" and ds.sample_shape == (3, 32, 32)
    assert ds.train_sizes() == {str(k): 4 for k in range(10)} and len(ds.val[1]) == 10
    assert len(ds.test[1]) == 20 and torch.all(ds.test[0][:, 2, 31, 31] == 1.0)
    for k in range(10):
        for c in range(3):
            assert torch.all(ds.train[str(k)][:, c, 16, 16] == unit(40 * c + 10 * k))
        assert torch.all(ds.train[str(k)][:, 0, 0, 1] == 1.0)  # red plane, row 0, column 1
        assert torch.all(ds.train[str(k)][:, 2, 31, 31] == -1.0)  # the training split's mark
    ds = load_dataset(data_cfg(*base, "data.grouping=II", "data.image_size=16"))
    assert ds.classes == ["0-4", "5-9"] and ds.sample_shape == (3, 16, 16)
    assert ds.train_sizes() == {"0-4": 20, "5-9": 20} and ds.test[0].shape == (20, 3, 16, 16)
    # a constant plane stays constant through the antialiased resize
    assert set(ds.train["5-9"][:, 1, 8, 8].tolist()) == {unit(40 + 10 * k) for k in range(5, 10)}
    up = load_dataset(data_cfg(*base, "data.image_size=64", "data.channels=1"))
    assert up.sample_shape == (1, 64, 64)
    assert up.train["0"].min() >= -1 and up.train["0"].max() <= 1


def test_svhn_mat_files_map_label_10_to_digit_0(tmp_path):
    write_svhn(tmp_path)
    ds = load_dataset(data_cfg("data.name=svhn", f"data.root={tmp_path}", "data.val_fraction=0.25"))
    assert ds.classes == [str(k) for k in range(10)] and ds.sample_shape == (3, 32, 32)
    assert ds.train_sizes() == {str(k): 3 for k in range(10)} and len(ds.test[1]) == 20
    for k in range(10):  # the images stored with y=10 are digit 0's (value 20 * 0 + c)
        for c in range(3):
            assert torch.all(ds.train[str(k)][:, c, 9, 9] == unit(20 * k + c))
        assert torch.all(ds.train[str(k)][:, 0, 0, 1] == 1.0) and torch.all(ds.train[str(k)][:, 0, 1, 0] < 1)
    x, y = ds.test
    assert torch.allclose(x[:, 0, 9, 9], (20 * y.float()) / 127.5 - 1)
    ds = load_dataset(data_cfg("data.name=svhn", f"data.root={tmp_path}", "data.val_fraction=0.25",
                               "data.grouping=II"))
    assert ds.train_sizes() == {"0-4": 15, "5-9": 15}


@pytest.mark.parametrize("name,expected", [
    ("mnist", ["MNIST/raw/train-images-idx3-ubyte", "MNIST/raw/t10k-labels-idx1-ubyte"]),
    ("fashion_mnist", ["FashionMNIST/raw/train-labels-idx1-ubyte"]),
    ("cifar10", ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"]),
    ("svhn", ["train_32x32.mat", "test_32x32.mat"]),
])
def test_missing_files_raise_config_error_naming_them(tmp_path, name, expected):
    with pytest.raises(ConfigError) as err:
        load_dataset(data_cfg(f"data.name={name}", f"data.root={tmp_path}"))
    message = str(err.value)
    assert "data.root" in message and "data.download: true" in message
    for path in expected:
        assert str(tmp_path / path) in message


def test_download_goes_through_torchvision(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class MNIST:  # offline stand-in with torchvision's name and signature; "downloads" the files
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            write_mnist(tmp_path)

    monkeypatch.setattr(torchvision.datasets, "MNIST", MNIST)
    ds = load_dataset(data_cfg("data.name=mnist", f"data.root={tmp_path}", "data.download=true",
                               "data.val_fraction=0.25"))
    assert calls == [(str(tmp_path), True, True)] and ds.sample_shape == (1, 28, 28)
    load_dataset(data_cfg("data.name=mnist", f"data.root={tmp_path}", "data.download=true",
                          "data.val_fraction=0.25"))
    assert len(calls) == 1  # files present: nothing to download

    class FashionMNIST:  # a stand-in whose download fails
        def __init__(self, root, train=True, download=False):
            raise RuntimeError("network unreachable")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FashionMNIST)
    with pytest.raises(ConfigError, match="could not download fashion_mnist.*network unreachable"):
        load_dataset(data_cfg("data.name=fashion_mnist", f"data.root={tmp_path}", "data.download=true"))


def test_only_the_missing_file_is_named_and_unset_root_is_an_error(tmp_path):
    write_cifar(tmp_path, skip=("test_batch",))
    with pytest.raises(ConfigError) as err:
        load_dataset(data_cfg("data.name=cifar10", f"data.root={tmp_path}"))
    assert str(tmp_path / "cifar-10-batches-py" / "test_batch") in str(err.value)
    assert "data_batch_1" not in str(err.value)
    with pytest.raises(ConfigError, match="data.root"):
        load_dataset(data_cfg("data.name=mnist"))


# ---------------------------------------------------------------------------- image folders

def test_imagefolder_classes_are_sorted_sub_folders(tmp_path):
    write_folder(tmp_path)
    (tmp_path / ".ipynb_checkpoints").mkdir()  # hidden folders are not classes
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    cfg = ["data.name=imagefolder", f"data.root={tmp_path}", "data.val_fraction=0.2",
           "data.test_fraction=0.2"]
    ds = load_dataset(data_cfg(*cfg))
    assert ds.name == "imagefolder" and ds.classes == ["cat", "dog", "eel"]
    assert ds.sample_shape == (3, 12, 12)
    assert ds.train_sizes() == {"cat": 6, "dog": 6, "eel": 6}
    assert np.bincount(ds.val[1].numpy()).tolist() == [2, 2, 2]
    assert np.bincount(ds.test[1].numpy()).tolist() == [2, 2, 2]
    for j, name in enumerate(ds.classes):
        for c in range(3):
            assert torch.all(ds.train[name][:, c] == unit(50 * j + 10 + c))
    for x, y in (ds.val, ds.test):
        assert torch.allclose(x[:, 0, 3, 3], (50 * y.float() + 10) / 127.5 - 1)
    ds = load_dataset(data_cfg(*cfg, "data.classes={pets: [0, 1], fish: [2]}", "data.image_size=8"))
    assert ds.classes == ["pets", "fish"] and ds.train_sizes() == {"pets": 12, "fish": 6}
    assert ds.sample_shape == (3, 8, 8) and torch.all(ds.train["fish"][:, 0] == unit(110))
    ds = load_dataset(data_cfg(*cfg, "data.train_per_class=3", "data.channels=1"))
    assert ds.train_sizes() == {"cat": 3, "dog": 3, "eel": 3} and ds.sample_shape == (1, 12, 12)


def test_imagefolder_channels_follow_the_files(tmp_path):
    write_folder(tmp_path / "grey", classes=("a", "b"), per_class=4, mode="L")
    cfg = ["data.name=imagefolder", "data.val_fraction=0", "data.test_fraction=0"]
    ds = load_dataset(data_cfg(*cfg, f"data.root={tmp_path / 'grey'}"))
    assert ds.sample_shape == (1, 12, 12) and torch.all(ds.train["b"] == unit(60))
    rgb = load_dataset(data_cfg(*cfg, f"data.root={tmp_path / 'grey'}", "data.channels=3"))
    assert rgb.sample_shape == (3, 12, 12) and torch.all(rgb.train["b"] == unit(60))
    # one colour file makes the whole set RGB
    (tmp_path / "grey" / "a" / "colour.png").write_bytes(png(np.zeros((12, 12, 3), np.uint8), "RGB"))
    assert load_dataset(data_cfg(*cfg, f"data.root={tmp_path / 'grey'}")).sample_shape == (3, 12, 12)


def test_imagefolder_errors_are_clear(tmp_path):
    cfg = ["data.name=imagefolder", "data.val_fraction=0", "data.test_fraction=0"]
    with pytest.raises(ConfigError, match="does not exist"):
        load_dataset(data_cfg(*cfg, f"data.root={tmp_path / 'nowhere'}"))
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "x.png").write_bytes(png(np.zeros((4, 4), np.uint8), "L"))
    with pytest.raises(ConfigError, match="no sub-folders"):
        load_dataset(data_cfg(*cfg, f"data.root={tmp_path / 'flat'}"))
    write_folder(tmp_path / "sets", classes=("a",), per_class=2)
    (tmp_path / "sets" / "empty").mkdir()
    with pytest.raises(ConfigError, match=f"{tmp_path / 'sets' / 'empty'} holds no images"):
        load_dataset(data_cfg(*cfg, f"data.root={tmp_path / 'sets'}"))
    (tmp_path / "sets" / "empty" / "big.png").write_bytes(png(np.zeros((20, 16, 3), np.uint8), "RGB"))
    with pytest.raises(ConfigError) as err:
        load_dataset(data_cfg(*cfg, f"data.root={tmp_path / 'sets'}"))
    assert "big.png is 16x20" in str(err.value) and "data.image_size" in str(err.value)
    ds = load_dataset(data_cfg(*cfg, f"data.root={tmp_path / 'sets'}", "data.image_size=10"))
    assert ds.train_sizes() == {"a": 2, "empty": 1} and ds.sample_shape == (3, 10, 10)


# ---------------------------------------------------------------------------- parquet

def test_parquet_image_bytes_and_labels(tmp_path):
    labels = [3, 7] * 10
    images = [png(np.full((6, 6), 30 * label, np.uint8), "L") for label in labels]
    pq.write_table(pa.table({"image": images, "label": labels}), tmp_path / "set.parquet")
    ds = load_dataset(data_cfg("data.name=parquet", f"data.root={tmp_path / 'set.parquet'}",
                               "data.val_fraction=0.2", "data.test_fraction=0.2"))
    assert ds.name == "parquet" and ds.classes == ["3", "7"] and ds.sample_shape == (1, 6, 6)
    assert ds.train_sizes() == {"3": 6, "7": 6} and len(ds.val[1]) == 4 and len(ds.test[1]) == 4
    assert torch.all(ds.train["3"] == unit(90)) and torch.all(ds.train["7"] == unit(210))
    assert torch.allclose(ds.test[0][:, 0, 0, 0], torch.where(ds.test[1] == 0, unit(90), unit(210)))
    # Hugging Face style {bytes, path} structs, read through a pyarrow filesystem URI
    structs = [{"bytes": data, "path": None} for data in images]
    pq.write_table(pa.table({"image": structs, "label": labels}), tmp_path / "hf.parquet")
    hf = load_dataset(data_cfg("data.name=parquet", f"data.root=file://{tmp_path / 'hf.parquet'}",
                               "data.val_fraction=0.2", "data.test_fraction=0.2"))
    assert all(torch.equal(hf.train[k], ds.train[k]) for k in ds.classes)
    pq.write_table(pa.table({"img": images, "target": labels}), tmp_path / "bad.parquet")
    with pytest.raises(ConfigError) as err:
        load_dataset(data_cfg("data.name=parquet", f"data.root={tmp_path / 'bad.parquet'}"))
    assert "['image', 'label']" in str(err.value) and "['img', 'target']" in str(err.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_dataset(data_cfg("data.name=parquet", f"data.root={tmp_path / 'none.parquet'}"))


def test_raygan_shards_load_back_equal(tmp_path):
    g = torch.Generator().manual_seed(0)
    pixels = torch.randint(0, 256, (24, 3, 8, 8), generator=g)
    images = pixels.float() / 127.5 - 1.0  # exactly representable through PNG
    labels = torch.tensor([0, 1] * 12)
    folder = tmp_path / "shards"
    folder.mkdir()
    rows = {"image": encode_png(images), "label": labels.tolist(),
            "class_name": ["0-4" if v == 0 else "5-9" for v in labels.tolist()],
            "member": [i % 3 for i in range(24)], "index": list(range(24))}
    table = pa.table(rows)
    # two files written in reverse row order: loading orders rows by (label, member, index)
    pq.write_table(table.slice(12).take(list(range(11, -1, -1))), folder / "part-000.parquet")
    pq.write_table(table.slice(0, 12), folder / "part-001.parquet")
    ds = load_dataset(data_cfg("data.name=parquet", f"data.root={folder}", "data.val_fraction=0",
                               "data.test_fraction=0"))
    assert ds.classes == ["0-4", "5-9"] and ds.sample_shape == (3, 8, 8)
    for label, name in enumerate(ds.classes):
        keep = [i for i in range(24) if labels[i] == label]
        keep.sort(key=lambda i: (rows["member"][i], i))
        assert torch.equal(ds.train[name], images[keep])


def test_a_truncated_png_is_named_in_one_line(tmp_path):
    write_folder(tmp_path, classes=("a", "b"), per_class=3)
    bad = tmp_path / "b" / "cut.png"
    data = png(np.random.default_rng(0).integers(0, 255, (12, 12, 3), dtype=np.uint8), "RGB")
    bad.write_bytes(data[: len(data) // 2])  # the header reads, the pixels do not
    cfg = ["data.name=imagefolder", f"data.root={tmp_path}", "data.val_fraction=0", "data.test_fraction=0"]
    with pytest.raises(ConfigError) as err:
        load_dataset(data_cfg(*cfg))
    message = str(err.value)
    assert str(bad) in message and "not a readable image" in message and "\n" not in message
