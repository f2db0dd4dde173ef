"""Nothing raygan reads can run code (DESIGN principle 14), one test per reader: each is fed a file that
would create a marker file if its contents ran, and must refuse it with one clear line while the marker
never appears. raygan's own torch files (checkpoints, generators, the cached domain classifier) are
covered the same way by test_safe_files.py; here: YAML (config files, --set values, a run's
config.yaml), the Inception weights, parquet, PNG/JPEG (image folders, parquet image bytes, shards),
MNIST idx, CIFAR-10 batches and SVHN .mat files. raygan reads no .npz or .npy file; the last test holds
every module to the safe form of each loader (np.load(allow_pickle=False) among them)."""
from __future__ import annotations

import ast
import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from raygan.config import ConfigError, load_config
from raygan.data import load_dataset

RAYGAN = Path(__file__).resolve().parents[2] / "raygan"


class _Payload:
    """Unpickled unsafely, this opens (creates) the marker file."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _hostile_pickle(marker: Path, protocol: int = pickle.DEFAULT_PROTOCOL) -> bytes:
    return pickle.dumps({"data": _Payload(marker), "labels": [0]}, protocol=protocol)


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message, message
    return message


def _data(*overrides: str):
    return load_config(overrides=list(overrides)).data


# ---------------------------------------------------------------------------- YAML

def test_a_python_tag_in_a_config_file_or_a_run_folder_never_runs(tmp_path):
    from raygan.runs import RunFolder

    marker = tmp_path / "ran"
    tag = f"!!python/object/apply:builtins.open [{str(marker)!r}, w]"
    config = tmp_path / "hostile.yaml"
    config.write_text(f"train:\n  steps: {tag}\n")
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert "line 2" in _one_line(err) and "plain YAML only" in str(err.value)
    with pytest.raises(ConfigError, match="plain YAML only"):
        load_config(overrides=[f"train.steps={tag}"])
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"data:\n  name: {tag}\n")
    with pytest.raises(ConfigError) as err:
        RunFolder(run).saved_config()
    assert str(run / "config.yaml") in _one_line(err)
    assert not marker.exists()


# ---------------------------------------------------------------------------- Inception weights

def test_a_pickle_given_as_inception_weights_is_refused_and_never_runs(tmp_path):
    from raygan.metrics.inception import load_inception

    marker = tmp_path / "ran"
    weights = tmp_path / "weights-inception.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(1), "payload": _Payload(marker)}, weights)
    with pytest.raises(ConfigError) as err:
        load_inception(weights)
    message = _one_line(err)
    assert str(weights) in message and "could run code" in message and "plain state dict" in message
    assert not marker.exists()


def test_inception_weights_read_safely_are_the_ones_the_extractor_uses(tmp_path):
    from raygan.metrics.inception import load_inception, write_untrained_weights

    weights = write_untrained_weights(tmp_path / "w.pth", seed=3)
    state = torch.load(weights, weights_only=True)
    model = load_inception(weights)
    for key in ("Conv2d_1a_3x3.conv.weight", "Mixed_7c.branch_pool.conv.weight", "fc.bias"):
        assert torch.equal(model.state_dict()[key], state[key]), key
    torch.save({k: v for k, v in state.items() if k != "fc.bias"}, weights)  # a key short
    with pytest.raises(ConfigError, match="is not a torch-fidelity Inception state dict"):
        load_inception(weights)


# ---------------------------------------------------------------------------- CIFAR-10 batches

def _cifar_files(root: Path) -> list[Path]:
    from raygan.data.images import expected_files

    return expected_files("cifar10", root)


def _write_cifar(root: Path, protocol: int) -> None:
    for i, path in enumerate(_cifar_files(root)):
        path.parent.mkdir(parents=True, exist_ok=True)
        labels = [k for k in range(2) for _ in range(5)]
        data = np.full((len(labels), 3072), 10 * i, np.uint8)
        entry = {"data": data, "labels": labels, "batch_label": f"batch {i}",
                 "filenames": [f"{n}.png".encode() for n in range(len(labels))]}
        path.write_bytes(pickle.dumps(entry, protocol=protocol))


@pytest.mark.parametrize("protocol", [2, 5])
def test_a_crafted_cifar_batch_is_refused_and_never_runs(tmp_path, protocol):
    root = tmp_path / "cifar"
    _write_cifar(root, protocol)
    marker = tmp_path / "ran"
    hostile = _cifar_files(root)[1]
    hostile.write_bytes(_hostile_pickle(marker, protocol))
    with pytest.raises(ConfigError) as err:
        load_dataset(_data("data.name=cifar10", f"data.root={root}", "data.val_fraction=0.2"))
    message = _one_line(err)
    assert str(hostile) in message and "open, which a CIFAR batch never holds" in message
    assert "could run code" in message
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_as_published_and_as_numpy_2_pickles_them_still_load(tmp_path, protocol):
    """The restricted unpickler admits what real batches hold (protocol 2, as published) and what
    numpy >= 2 writes at later protocols."""
    root = tmp_path / "cifar"
    _write_cifar(root, protocol)
    ds = load_dataset(_data("data.name=cifar10", f"data.root={root}", "data.val_fraction=0.2"))
    assert ds.classes == ["0", "1"] and ds.sample_shape == (3, 32, 32)
    assert sum(ds.train_sizes().values()) + len(ds.val[1]) == 50 and len(ds.test[1]) == 10


def test_a_cifar_batch_naming_another_numpy_function_is_refused(tmp_path):
    root = tmp_path / "cifar"
    _write_cifar(root, 2)
    # a pickle calling numpy.load (which, given allow_pickle, could unpickle anything) is refused
    crafted = b"\x80\x02cnumpy\nload\nq\x00X\x05\x00\x00\x00x.npyq\x01\x85q\x02Rq\x03."
    _cifar_files(root)[0].write_bytes(crafted)
    with pytest.raises(ConfigError, match=r"it names numpy\.load, which a CIFAR batch never holds"):
        load_dataset(_data("data.name=cifar10", f"data.root={root}", "data.val_fraction=0.2"))


# ---------------------------------------------------------------------------- MNIST idx, SVHN .mat

def test_a_pickle_in_place_of_an_mnist_idx_file_is_refused_and_never_runs(tmp_path):
    from raygan.data.images import expected_files

    marker = tmp_path / "ran"
    files = expected_files("mnist", tmp_path)
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_hostile_pickle(marker))
    with pytest.raises(ConfigError) as err:
        load_dataset(_data("data.name=mnist", f"data.root={tmp_path}"))
    assert str(files[0]) in _one_line(err) and "not an idx file" in str(err.value)
    assert not marker.exists()


def test_a_pickle_or_a_foreign_mat_file_in_place_of_svhn_is_refused_and_never_runs(tmp_path):
    from scipy.io import savemat

    from raygan.data.images import expected_files

    marker = tmp_path / "ran"
    train, test = expected_files("svhn", tmp_path)
    train.write_bytes(_hostile_pickle(marker))
    savemat(str(test), {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((2, 1), np.uint8)})
    with pytest.raises(ConfigError) as err:
        load_dataset(_data("data.name=svhn", f"data.root={tmp_path}"))
    assert str(train) in _one_line(err) and "not a MATLAB .mat file" in str(err.value)
    assert not marker.exists()
    # a real .mat file whose X is a cell array (objects) rather than uint8 pixels
    savemat(str(train), {"X": np.array([["a", "b"]], dtype=object), "y": np.ones((2, 1))})
    with pytest.raises(ConfigError) as err:
        load_dataset(_data("data.name=svhn", f"data.root={tmp_path}"))
    assert str(train) in _one_line(err) and "is not an SVHN file" in str(err.value)


# ---------------------------------------------------------------------------- images and parquet

def _eps(marker: Path) -> bytes:
    """An EPS file: Pillow identifies it by its content (whatever its name) and hands it to Ghostscript."""
    return f"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n({marker}) (w) file closefile\n".encode()


@pytest.fixture
def ghostscript(tmp_path, monkeypatch) -> Path:
    """A `gs` first on PATH that creates the marker when run, as a hostile file run by the real
    Ghostscript could; the marker's path."""
    from PIL import EpsImagePlugin

    marker = tmp_path / "ran"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "gs").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (bin_dir / "gs").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{Path('/usr/bin')}:{Path('/bin')}")
    monkeypatch.setattr(EpsImagePlugin, "gs_binary", None)  # Pillow looks for gs again
    return marker


def test_an_eps_file_named_png_in_an_image_folder_is_refused_and_never_runs(tmp_path, ghostscript):
    root = tmp_path / "folder"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / name / f"{i}.png")
    hostile = root / "b" / "5.png"
    hostile.write_bytes(_eps(ghostscript))
    with pytest.raises(ConfigError) as err:
        load_dataset(_data("data.name=imagefolder", f"data.root={root}", "data.val_fraction=0",
                           "data.test_fraction=0"))
    assert str(hostile) in _one_line(err) and "is not a readable image (PNG, JPEG, TIFF, BMP)" in str(err.value)
    assert not ghostscript.exists()


def test_parquet_payloads_never_run(tmp_path, ghostscript):
    """A pickle named .parquet, a pickled extension type in a field's metadata (what pyarrow's old
    PyExtensionType unpickled on read) and EPS image bytes: refused, nothing runs."""
    marker = tmp_path / "ran_pickle"
    fake = tmp_path / "fake.parquet"
    fake.write_bytes(_hostile_pickle(marker))
    with pytest.raises(ConfigError) as err:
        load_dataset(_data("data.name=parquet", f"data.root={fake}"))
    assert "could not read parquet" in _one_line(err)
    image = pa.field("image", pa.binary(), metadata={
        b"ARROW:extension:name": b"arrow.py_extension_type",
        b"ARROW:extension:metadata": pickle.dumps(_Payload(marker))})
    rows = [_eps(ghostscript)] * 8
    table = pa.table({"image": pa.array(rows, pa.binary()), "label": pa.array([0, 1] * 4)},
                     schema=pa.schema([image, pa.field("label", pa.int64())]))
    pq.write_table(table, tmp_path / "hostile.parquet")
    with pytest.raises(ConfigError) as err:
        load_dataset(_data("data.name=parquet", f"data.root={tmp_path / 'hostile.parquet'}",
                           "data.val_fraction=0", "data.test_fraction=0"))
    assert "row 0 of data.root=" in _one_line(err) and "is not a readable image" in str(err.value)
    assert not marker.exists() and not ghostscript.exists()


def test_shard_images_decode_as_png_only(tmp_path, ghostscript):
    from raygan.synthesis.records import decode_png

    with pytest.raises(OSError):  # PIL.UnidentifiedImageError: the bytes are not a PNG
        decode_png(_eps(ghostscript))
    assert not ghostscript.exists()


# ---------------------------------------------------------------------------- every loader, safely

def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield ast.unparse(node.func), {k.arg: ast.unparse(k.value) for k in node.keywords}, node.lineno


UNSAFE = {"pickle.load", "pickle.loads", "pickle.Unpickler", "yaml.load", "yaml.unsafe_load",
          "yaml.full_load", "yaml.load_all", "joblib.load", "pd.read_pickle", "pandas.read_pickle",
          "dill.load", "cloudpickle.load", "cloudpickle.loads", "marshal.loads", "shelve.open"}


def test_no_module_calls_a_loader_that_could_run_code():
    bad = []
    for path in sorted(RAYGAN.rglob("*.py")):
        for func, kwargs, line in _calls(ast.parse(path.read_text())):
            where = f"{path.relative_to(RAYGAN.parent)}:{line}: {func}"
            if func in UNSAFE:
                bad.append(where)
            elif func == "torch.load" and kwargs.get("weights_only") != "True":
                bad.append(f"{where} without weights_only=True")
            elif func in ("np.load", "numpy.load") and kwargs.get("allow_pickle") != "False":
                bad.append(f"{where} without allow_pickle=False")
    assert not bad, bad
