"""data.name=imagefolder: one sub-folder of images per class under data.root (e.g. pathology patches).

``data.root/<class name>/**/*.png|jpg|jpeg|tif|tiff|bmp``: the class names are the sub-folder names
sorted, labels 0..K-1 in that order (data.classes groups them by those label numbers; without a
grouping the classes keep the folder names). Images are found recursively, in sorted path order, so a
class folder may hold further folders (e.g. one per slide); names starting with "." are skipped (the
reason this scan is not torchvision's ImageFolder, which takes .ipynb_checkpoints for a class).
Pixels follow raygan.data.images: data.channels, data.image_size, one shared size. Validation and
test splits are stratified, data.val_fraction and data.test_fraction of each label.

Groups (data.group_column, for privacy.unit=group): ``folder`` takes each image's group from the folder
directly under its class folder (data.root/<class>/<patient>/...); any other name is a column of
data.root/groups.csv, whose ``path`` column gives each image's path relative to data.root.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from raygan.config import ConfigError, DataConfig
from raygan.data.base import RealDataset, assemble, compact_plan, plan_splits, train_groups
from raygan.data.images import decode_images

EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
FOLDER_GROUPS = "folder"     # data.group_column: the folder under the class folder names the group
GROUPS_FILE = "groups.csv"   # else: data.root/groups.csv, a path column and the group column


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
    groups = image_groups(root, paths, cfg.group_column)  # refused before any image is decoded
    rows, labels, plan = compact_plan(plan_splits(labels, cfg, label_names=class_names), labels)
    x = decode_images(paths, [str(p) for p in paths], channels=cfg.channels, image_size=cfg.image_size,
                      rows=rows)
    dataset = assemble(x, labels, plan, name="imagefolder")
    if groups is not None:
        dataset.groups = train_groups(groups[rows], labels, plan)
    return dataset


def image_groups(root: Path, paths: list[Path], column: str | None) -> np.ndarray | None:
    """The group of every image (as strings), or None without data.group_column; ConfigErrors name the
    image or file that lacks one and the fix."""
    if column is None:
        return None
    rel = [p.relative_to(root) for p in paths]
    if column == FOLDER_GROUPS:
        loose = [r for r in rel if len(r.parts) < 3]
        if loose:
            raise ConfigError(f"data.group_column=folder: {len(loose)} image(s) lie directly in their class "
                              f"folder (first: {loose[0]}), not in a group folder; put each under "
                              "data.root/<class>/<group>/, or list groups in data.root/groups.csv")
        return np.asarray([r.parts[1] for r in rel])
    table = _read_groups_file(root / GROUPS_FILE, column)
    missing = [r.as_posix() for r in rel if r.as_posix() not in table]
    if missing:
        raise ConfigError(f"{root / GROUPS_FILE} gives no {column!r} for {len(missing)} image(s) (first: "
                          f"{missing[0]}); add a row per image (path relative to data.root)")
    return np.asarray([table[r.as_posix()] for r in rel])


def _read_groups_file(path: Path, column: str) -> dict[str, str]:
    """{path relative to data.root: group} from groups.csv (plain CSV text, nothing else is read)."""
    if not path.is_file():
        raise ConfigError(f"data.group_column={column!r} with data.name=imagefolder reads {path}, which does not "
                          "exist; write it with a 'path' column (relative to data.root) and a "
                          f"{column!r} column, or use data.group_column=folder for data.root/<class>/<group>/")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not {"path", column} <= set(reader.fieldnames or []):
            raise ConfigError(f"{path} needs columns 'path' and {column!r}; it has {reader.fieldnames}")
        table = {}
        for line, row in enumerate(reader, start=2):
            if not (row[column] or "").strip():
                raise ConfigError(f"{path} line {line}: empty {column!r}; every image needs a group "
                                  "(give each its own id)")
            table[Path(row["path"]).as_posix()] = row[column].strip()
    return table
