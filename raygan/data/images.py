"""Image pixels: the 8-bit conventions every image dataset shares, and the torchvision sets.

Every image loader first makes uint8 pixels (N, C, H, W). data.channels and data.image_size apply to
those 8-bit pixels (a resize is antialiased bilinear, torch.nn.functional.interpolate, to a square
image_size x image_size, rounded back to 8 bits like the files it came from); base.assemble then
scales each split to float32 in [-1, 1], so the float data exists once and only as the final splits.

mnist, fashion_mnist, cifar10 and svhn are read from data.root in the layout torchvision.datasets
uses (file names taken from torchvision's classes). Reading the files here rather than through the
torchvision classes lets a copy of the files that differs from the published one (a subset, a test
fixture) load without torchvision's MD5 check, reads MNIST's .gz files as they are, and avoids
holding torchvision's extra copies; data.download: true still downloads (and verifies) through
torchvision. The official test split is the test split; validation is carved from the official
training split (base.split_indices). CIFAR batches are Python pickles, as published: they are read
by a restricted unpickler that admits numpy arrays and nothing else (raygan.data.batches), so a crafted
batch is refused and never runs. SVHN's .mat files are read by scipy.io.loadmat (not a pickle); every
encoded image is opened as one of the formats raygan reads (PNG, JPEG, TIFF, BMP; never EPS, which
Pillow would hand to Ghostscript, whatever the file's name).
"""
from __future__ import annotations

import gzip
import io
import logging
import struct
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from raygan.config import ConfigError, DataConfig
from raygan.data.base import RealDataset, assemble, plan_splits

logger = logging.getLogger(__name__)
_TORCHVISION_CLASS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10",
                      "svhn": "SVHN"}
_GREY_MODES = {"1", "L", "LA"}
_COLOUR_MODES = {"P", "PA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
_ALPHA_MODES = {"LA", "PA", "RGBA"}
# The only formats Pillow may open (by content, whatever a file is called): those of imagefolder's
# extensions and of parquet image bytes. Pillow's others include EPS, whose pixels Ghostscript makes by
# running the file as PostScript.
FORMATS = ("PNG", "JPEG", "TIFF", "BMP")


# ---------------------------------------------------------------------------- 8-bit pixel helpers

def set_channels(x: np.ndarray, channels: int | None) -> np.ndarray:
    """uint8 (N, C, H, W) -> ``channels`` channels: grey is repeated to RGB; RGB becomes grey with
    PIL's ITU-R 601-2 luma weights (the same as Image.convert("L")). None keeps C."""
    if channels is None or x.shape[1] == channels:
        return x
    if channels == 3:
        return np.repeat(x, 3, axis=1)
    out = np.empty((len(x), 1, *x.shape[2:]), dtype=np.uint8)
    weights = np.array([19595, 38470, 7471], dtype=np.uint32).reshape(1, 3, 1, 1)
    for start in range(0, len(x), 4096):  # chunks: the uint32 products are 4x the pixels
        part = (x[start:start + 4096].astype(np.uint32) * weights).sum(axis=1, keepdims=True)
        out[start:start + 4096] = (part + 0x8000) >> 16
    return out


def resize_uint8(x: np.ndarray, size: int | None, *, chunk: int = 1024) -> np.ndarray:
    """uint8 (N, C, H, W) -> (N, C, size, size): antialiased bilinear, rounded back to uint8, in
    chunks so only ``chunk`` images are ever float. None, or the size it already has, keeps x."""
    if size is None or x.shape[2:] == (size, size):
        return x
    out = np.empty((len(x), x.shape[1], size, size), dtype=np.uint8)
    for start in range(0, len(x), chunk):
        part = torch.from_numpy(x[start:start + chunk].astype(np.float32))
        part = F.interpolate(part, size=(size, size), mode="bilinear", antialias=True,
                             align_corners=False)
        out[start:start + chunk] = part.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def _open(source):
    from PIL import Image

    return Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source,
                      formats=FORMATS)


def _has_alpha(image) -> bool:
    return image.mode in _ALPHA_MODES or (image.mode in ("P", "L", "RGB") and "transparency" in image.info)


def decode_images(sources: Sequence, names: Sequence[str], *, channels: int | None,
                  image_size: int | None, rows: np.ndarray | None = None) -> np.ndarray:
    """Encoded images (paths or bytes, anything PIL reads) -> uint8 (len(rows), C, H, W).

    A first pass reads only the headers of every source (PIL decodes pixels lazily), so an
    unreadable file, a pixel format other than 8-bit grey/colour, or mixed sizes without
    data.image_size are ConfigErrors before any pixel is decoded; ``names[i]`` names source i in
    them. channels=None gives RGB unless every image is grey. Only ``rows`` (default: all) decode.
    """
    modes, sizes, alpha = [], [], 0
    for source, name in zip(sources, names):
        try:
            with _open(source) as image:
                modes.append(image.mode)
                sizes.append(image.size)
                alpha += _has_alpha(image)
        except (OSError, ValueError) as err:
            raise ConfigError(f"{name} is not a readable image ({', '.join(FORMATS)}): {err}") from None
        if modes[-1] not in _GREY_MODES | _COLOUR_MODES:
            raise ConfigError(f"{name} holds {modes[-1]} pixels; raygan reads 8-bit grey or colour "
                              "images (save it as 8-bit PNG/JPEG)")
    if not sizes:
        raise ConfigError("no images to read")
    n_channels = channels or (1 if all(mode in _GREY_MODES for mode in modes) else 3)
    if alpha:
        logger.warning(f"data: {alpha} of {len(modes)} images have an alpha channel (transparency); raygan "
                       f"dropped it and keeps their {'grey' if n_channels == 1 else 'RGB'} values, "
                       "transparent pixels included (flatten the images onto a background first if "
                       "that matters)")
    if image_size is not None:
        width = height = image_size
    else:
        (width, height), _ = Counter(sizes).most_common(1)[0]
        odd = next((i for i, size in enumerate(sizes) if size != (width, height)), None)
        if odd is not None:
            raise ConfigError(f"{names[odd]} is {sizes[odd][0]}x{sizes[odd][1]} pixels but most images "
                              f"are {width}x{height}; images must share one size: set data.image_size "
                              "to resize every image to a square of that size")
    rows = np.arange(len(sizes)) if rows is None else rows
    out = np.empty((len(rows), n_channels, height, width), dtype=np.uint8)
    for i, row in enumerate(rows.tolist()):
        try:
            with _open(sources[row]) as image:
                pixels = np.asarray(image.convert("L" if n_channels == 1 else "RGB"))
        except (OSError, ValueError) as err:  # a header that reads, pixels that do not (truncated)
            raise ConfigError(f"{names[row]} is not a readable image ({err}); replace or remove the "
                              "file") from None
        chw = pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)
        out[i] = resize_uint8(chw[None], image_size)[0]
    return out


# ---------------------------------------------------------------------------- torchvision sets

def _torchvision_class(name: str):
    import torchvision.datasets

    return getattr(torchvision.datasets, _TORCHVISION_CLASS[name])


def expected_files(name: str, root: Path) -> list[Path]:
    """The files torchvision keeps for ``name`` under ``root``: training split first, then test."""
    tv_class = _torchvision_class(name)
    if name in ("mnist", "fashion_mnist"):
        raw = root / tv_class.__name__ / "raw"
        return [raw / f"{split}-{kind}" for split in ("train", "t10k")
                for kind in ("images-idx3-ubyte", "labels-idx1-ubyte")]
    if name == "cifar10":
        return [root / tv_class.base_folder / file for file, _md5 in tv_class.train_list + tv_class.test_list]
    return [root / tv_class.split_list[split][1] for split in ("train", "test")]


def _locate(path: Path) -> Path | None:
    """The file, or for MNIST's idx files its .gz as published; None when neither is there."""
    if path.is_file():
        return path
    packed = path.with_name(path.name + ".gz")
    return packed if "idx" in path.name and packed.is_file() else None


def _download(name: str, root: Path) -> None:
    tv_class = _torchvision_class(name)
    try:
        if name == "svhn":
            for split in ("train", "test"):
                tv_class(str(root), split=split, download=True)
        else:  # one instance downloads both splits' files
            tv_class(str(root), train=True, download=True)
    except (OSError, RuntimeError, ValueError) as err:
        raise ConfigError(f"torchvision could not download {name} into data.root={root}: {err}; put "
                          "the files there yourself (see the file list in the error without "
                          "data.download) or fix the network") from None


def _read_idx(path: Path) -> np.ndarray:
    """An idx file of unsigned bytes (MNIST's format; .gz or not) -> its array."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise ConfigError(f"{path} is not an idx file of unsigned bytes (MNIST's format)")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    values = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise ConfigError(f"{path} should hold {int(np.prod(shape))} bytes of shape {shape} but holds "
                          f"{values.size}; the file is truncated or corrupt")
    return values.reshape(shape)


def _read_mnist(files: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    splits = []
    for images_file, labels_file in (files[0:2], files[2:4]):
        images, labels = _read_idx(images_file), _read_idx(labels_file)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ConfigError(f"{images_file} ({images.shape}) and {labels_file} ({labels.shape}) "
                              "should be (N, H, W) images and N labels")
        splits.append((images[:, None], labels.astype(np.int64)))
    return splits


def _read_cifar(files: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    from raygan.data.batches import read_batch  # pickles, read by a restricted unpickler

    train = [read_batch(path) for path in files[:-1]]
    return [(np.concatenate([x for x, _ in train]), np.concatenate([y for _, y in train])),
            read_batch(files[-1])]


def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """X (uint8, H x W x 3 x N) and y (N labels) of an SVHN .mat file (MATLAB's format, not a pickle:
    scipy.io.loadmat builds arrays only), or a one-line ConfigError naming the file."""
    from scipy.io import loadmat

    fix = "replace it with the file from http://ufldl.stanford.edu/housenumbers/ (or data.download: true)"
    try:
        mat = loadmat(str(path))
    except Exception as err:  # noqa: BLE001 - scipy raises ValueError, MatReadError, NotImplementedError...
        raise ConfigError(f"{path} is not a MATLAB .mat file scipy can read ({type(err).__name__}: "
                          f"{str(err)[:120]}); {fix}") from None
    x, y = mat.get("X"), mat.get("y")
    if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 4 or x.shape[2] != 3 \
            or not isinstance(y, np.ndarray) or y.dtype.kind not in "iuf" or y.size != x.shape[3] \
            or not np.array_equal(y, np.round(y)):
        raise ConfigError(f"{path} is not an SVHN file (it should hold X, uint8 images H x W x 3 x N, and y, "
                          f"N whole-number labels); {fix}")
    return x, y


def _read_svhn(files: list[Path]) -> list[tuple[np.ndarray, np.ndarray]]:
    splits = []
    for path in files:
        x, y = _read_mat(path)
        images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
        labels = y.astype(np.int64).ravel()
        labels[labels == 10] = 0  # the .mat files label the digit 0 as 10
        splits.append((images, labels))
    return splits


_READERS = {"mnist": _read_mnist, "fashion_mnist": _read_mnist, "cifar10": _read_cifar,
            "svhn": _read_svhn}


def load_torchvision(cfg: DataConfig) -> RealDataset:
    """mnist, fashion_mnist, cifar10 or svhn from data.root (downloaded there if data.download)."""
    if cfg.root is None:
        raise ConfigError(f"data.name={cfg.name} reads torchvision's files from data.root, which is not "
                          "set; set data.root to the folder holding them (or to an empty folder with "
                          "data.download: true)")
    root = Path(cfg.root).expanduser()
    files = expected_files(cfg.name, root)
    missing = [path for path in files if _locate(path) is None]
    if missing and cfg.download:
        _download(cfg.name, root)
        missing = [path for path in files if _locate(path) is None]
    if missing:
        listed = "\n  ".join(str(path) for path in missing)
        packed = " (or the same names ending .gz)" if cfg.name in ("mnist", "fashion_mnist") else ""
        raise ConfigError(f"data.name={cfg.name}: data.root={root} lacks {len(missing)} of the files "
                          f"torchvision.datasets.{_TORCHVISION_CLASS[cfg.name]} keeps there; looked "
                          f"for{packed}:\n  {listed}\nPut the files there or set data.download: true "
                          "to let torchvision download them")
    (x_train, y_train), (x_test, y_test) = _READERS[cfg.name]([_locate(path) for path in files])
    labels = np.concatenate([y_train, y_test])
    official_test = np.arange(len(labels)) >= len(y_train)
    plan = plan_splits(labels, cfg, official_test=official_test)
    x = np.concatenate([x_train, x_test])
    del x_train, x_test
    x = resize_uint8(set_channels(x, cfg.channels), cfg.image_size)
    return assemble(x, labels, plan, name=cfg.name)
