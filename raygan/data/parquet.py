"""data.name=parquet: encoded images plus integer labels from a parquet file or folder of them.

data.root is a local path or any pyarrow filesystem URI (s3://, gs://, ...). Columns: ``image``, the
encoded image bytes (PNG/JPEG; a struct with a ``bytes`` field, as Hugging Face datasets write it, is
accepted too), and an integer ``label``. raygan's own synthetic shards (raygan.data.shards) have
exactly these, so a GAN can be trained on another run's synthetic data; their rows are put in
(label, member, index) order so the split does not depend on file listing order, and their
``class_name`` column, when present, names the classes. Pixels follow raygan.data.images; splits are
stratified, data.val_fraction and data.test_fraction of each label.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from raygan.config import ConfigError, DataConfig
from raygan.data.base import RealDataset, assemble, compact_plan, plan_splits, train_groups
from raygan.data.images import decode_images

_SHARD_ORDER = [("label", "ascending"), ("member", "ascending"), ("index", "ascending")]


def _read_table(root: str) -> pa.Table:
    source = root
    if "://" not in root:  # a local path; URIs are left to pyarrow's filesystems
        local = Path(root).expanduser()
        if not local.exists():
            raise ConfigError(f"data.root={root} does not exist; data.name=parquet needs a parquet file "
                              "or a folder of them")
        if local.is_dir() and not any(local.rglob("*.parquet")):
            raise ConfigError(f"data.root={root} is a folder without .parquet files")
        source = str(local)
    try:
        # partitioning=None: a folder is a flat set of files, never hive-style key=value partitions
        return pq.read_table(source, partitioning=None)
    except (OSError, ValueError, pa.ArrowException) as err:
        raise ConfigError(f"could not read parquet from data.root={root}: {err}") from None


def _image_bytes(table: pa.Table, root: str) -> list:
    column = table["image"].combine_chunks()
    if pa.types.is_struct(column.type) and column.type.get_field_index("bytes") >= 0:
        column = column.field("bytes")
    if not (pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type)):
        raise ConfigError(f"column 'image' of data.root={root} is {column.type}; it must hold encoded "
                          "image bytes (binary, e.g. PNG or JPEG files' contents)")
    if column.null_count:
        first = column.is_null().to_numpy(zero_copy_only=False).argmax()
        raise ConfigError(f"column 'image' of data.root={root} has {column.null_count} empty rows "
                          f"(the first is row {first}); every row needs an image")
    return column.to_pylist()


def _label_names(table: pa.Table, labels: np.ndarray, root: str) -> dict[int, str] | None:
    """{label: class_name} from a raygan shard's class_name column; None when there is none."""
    if "class_name" not in table.column_names or not pa.types.is_string(table["class_name"].type):
        return None
    names: dict[int, str] = {}
    for label, name in sorted(set(zip(labels.tolist(), table["class_name"].to_pylist()))):
        if names.setdefault(label, name) != name:
            raise ConfigError(f"label {label} of data.root={root} carries two class names, "
                              f"{names[label]!r} and {name!r}; each label needs one")
    return names


def load_parquet(cfg: DataConfig) -> RealDataset:
    """Per-class tensors from parquet rows of (image bytes, label), with stratified held-out splits."""
    if cfg.root is None:
        raise ConfigError("data.name=parquet needs data.root: a parquet file, a folder of them, or a "
                          "pyarrow filesystem URI")
    table = _read_table(cfg.root)
    missing = [name for name in ("image", "label") if name not in table.column_names]
    if missing:
        raise ConfigError(f"parquet at data.root={cfg.root} lacks column(s) {missing}; columns found: "
                          f"{table.column_names}. data.name=parquet reads 'image' (encoded PNG/JPEG "
                          "bytes) and 'label' (integers)")
    if not pa.types.is_integer(table["label"].type) or table["label"].null_count:
        raise ConfigError(f"column 'label' of data.root={cfg.root} is {table['label'].type} with "
                          f"{table['label'].null_count} nulls; it must hold an integer on every row")
    if {"member", "index"} <= set(table.column_names):
        table = table.sort_by(_SHARD_ORDER)
    labels = table["label"].to_numpy().astype(np.int64)
    groups = _groups(table, cfg)
    label_names = _label_names(table, labels, cfg.root)
    images = _image_bytes(table, cfg.root)
    del table
    # planned from the labels first: bad settings fail before decoding, and only used rows decode
    rows, labels_used, plan = compact_plan(plan_splits(labels, cfg, label_names=label_names), labels)
    names = [f"row {i} of data.root={cfg.root}" for i in range(len(images))]
    x = decode_images(images, names, channels=cfg.channels, image_size=cfg.image_size, rows=rows)
    dataset = assemble(x, labels_used, plan, name="parquet")
    if groups is not None:
        dataset.groups = train_groups(groups[rows], labels_used, plan)
    return dataset


def _groups(table: pa.Table, cfg: DataConfig) -> np.ndarray | None:
    """data.group_column's value of every row (as strings), or None when it is not set; a ConfigError
    when the column is missing or has nulls (before any image is decoded)."""
    column = cfg.group_column
    if column is None:
        return None
    if column not in table.column_names:
        raise ConfigError(f"data.group_column={column!r} is not a column of the parquet at data.root={cfg.root} "
                          f"(columns: {table.column_names}); name the column that holds each record's "
                          "group, or set privacy.unit=record")
    if table[column].null_count:
        raise ConfigError(f"column {column!r} of data.root={cfg.root} has {table[column].null_count} null(s); "
                          "every record needs a group (give each its own id)")
    return np.asarray([str(v) for v in table[column].to_pylist()])
