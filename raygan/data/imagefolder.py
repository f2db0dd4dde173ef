"""data.name=imagefolder: one sub-folder of images per class under data.root (e.g. pathology patches).

``data.root/<class name>/**/*.png|jpg|jpeg|tif|tiff|bmp``: the class names are the sub-folder names
sorted, labels 0..K-1 in that order (data.classes groups them by those label numbers; without a
grouping the classes keep the folder names). Images are found recursively, in sorted path order, so a
class folder may hold further folders (e.g. one per slide); names starting with "." are skipped (the
reason this scan is not torchvision's ImageFolder, which takes .ipynb_checkpoints for a class).
Pixels follow raygan.data.images: data.channels, data.image_size, one shared size. Validation and
test splits are stratified, data.val_fraction and data.test_fraction of each label.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from raygan.config import ConfigError, DataConfig
from raygan.data.base import RealDataset, assemble, compact_plan, plan_splits
from raygan.data.images import decode_images

EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def scan_folder(root: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """(class names, image paths, labels) of an image folder; ConfigErrors name what is wrong."""
    if not root.exists():
        raise ConfigError(f"data.root={root} does not exist; data.name=imagefolder needs a folder with "
                          "one sub-folder of images per class")
    if not root.is_dir():
        raise ConfigError(f"data.root={root} is a file; data.name=imagefolder needs a folder with one "
                          "sub-folder of images per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        loose = sum(p.suffix.lower() in EXTENSIONS for p in root.iterdir())
        hint = f" ({loose} image files lie directly in it)" if loose else ""
        raise ConfigError(f"data.root={root} has no sub-folders{hint}; put each class's images in "
                          "their own sub-folder, data.root/<class name>/*.png")
    paths, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        found = sorted(p for p in class_dir.rglob("*")
                       if p.suffix.lower() in EXTENSIONS and p.is_file() and not _hidden(p, root))
        if not found:
            raise ConfigError(f"class folder {class_dir} holds no images (looked for "
                              f"{', '.join(EXTENSIONS)}); add images or remove the folder")
        paths += found
        labels += [label] * len(found)
    return [p.name for p in class_dirs], paths, np.array(labels, dtype=np.int64)


def load_imagefolder(cfg: DataConfig) -> RealDataset:
    """Per-class tensors from data.root/<class>/ images, with stratified validation and test splits."""
    if cfg.root is None:
        raise ConfigError("data.name=imagefolder needs data.root: a folder with one sub-folder of "
                          "images per class")
    root = Path(cfg.root).expanduser()
    class_names, paths, labels = scan_folder(root)
    # planned from the labels first: bad settings fail before decoding, and only used rows decode
    rows, labels, plan = compact_plan(plan_splits(labels, cfg, label_names=class_names), labels)
    x = decode_images(paths, [str(p) for p in paths], channels=cfg.channels, image_size=cfg.image_size,
                      rows=rows)
    return assemble(x, labels, plan, name="imagefolder")
