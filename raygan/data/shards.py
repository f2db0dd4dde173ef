"""Synthetic shards read back as tensors, without Ray.

Owns the reading side of <run>/shards/: the parquet files raygan.cluster.shards writes, one row per
synthetic sample with columns ``image`` (a PNG from raygan.synthesis.records.encode_png, in Hugging Face's
Image struct of bytes and path, or bare bytes in shards written before) or ``point`` (a list of floats), ``label``, ``class_name``, ``member``, ``method``, ``seed`` and ``index``. Rows come back
sorted by (label, member, index), so the tensors do not depend on how many files Ray wrote or in
which order they are listed; ``max_member=T`` keeps members 0..T-1, the synthetic set of an ensemble
of T (seed 000's accuracy-vs-ensemble-size curves). ``read_shard_rows`` also returns each row's
member and index (the evaluation picks a T's rows by them); this is the one PNG decoder of raygan.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from raygan.synthesis.records import decode_png

_SORT_KEYS = [("label", "ascending"), ("member", "ascending"), ("index", "ascending")]


def _read_table(path: str | Path) -> pa.Table:
    text = str(path)
    if "://" not in text:  # a local path; URIs (s3://...) are left to pyarrow's filesystems
        local = Path(text)
        if not local.exists():
            raise FileNotFoundError(f"no synthetic shards at {local}: the path does not exist")
        if local.is_dir() and not any(local.glob("*.parquet")):
            raise FileNotFoundError(f"no synthetic shards at {local}: the folder holds no .parquet file")
    # partitioning=None: a folder is a flat set of files, never hive-style key=value partitions.
    return pq.read_table(text, partitioning=None)


def png_bytes(column: pa.ChunkedArray | pa.Array) -> list[bytes]:
    """The PNG files of an image column: Hugging Face's Image struct (bytes, path) as raygan writes it,
    or the bare bytes of shards written before."""
    if pa.types.is_struct(column.type):
        column = pc.struct_field(column, "bytes")
    return column.to_pylist()


def decode_image_column(column: pa.ChunkedArray | pa.Array) -> torch.Tensor:
    """PNG bytes -> float32 (N, C, H, W) in [-1, 1], the inverse of raygan.synthesis.records.to_uint8."""
    arrays = [decode_png(data) for data in png_bytes(column)]
    images = np.stack(arrays)
    if images.ndim == 3:  # greyscale PNGs decode to (H, W)
        images = images[..., None]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).to(torch.float32)
    return x / 127.5 - 1.0


def _points(column: pa.ChunkedArray, n_rows: int) -> torch.Tensor:
    """A list<float> column -> float32 (N, D)."""
    array = column.combine_chunks()
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    values = array.flatten().to_numpy(zero_copy_only=False)
    return torch.from_numpy(values.reshape(n_rows, -1).astype(np.float32))


def _class_names(table: pa.Table, classes: list[str] | None) -> list[str]:
    pairs = set(zip(table["label"].to_pylist(), table["class_name"].to_pylist()))
    if classes is not None:
        wrong = sorted((label, name) for label, name in pairs
                       if not 0 <= label < len(classes) or classes[label] != name)
        if wrong:
            raise ValueError(f"shard rows (label, class_name) {wrong[:5]} disagree with classes={classes}")
        return list(classes)
    names: dict[int, str] = {}
    for label, name in sorted(pairs):
        if names.setdefault(label, name) != name:
            raise ValueError(f"label {label} carries two class names: {names[label]!r} and {name!r}")
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"shard labels {sorted(names)} are not 0..K-1: pass classes= (the class names "
                         f"in label order) so that classes without rows keep their label")
    return [names[label] for label in range(len(names))]


@dataclass
class ShardRows:
    """Decoded shard rows sorted by (label, member, index): x, y and, per row, its member, index, method
    (independent, adagan, ...) and generation seed."""
    x: torch.Tensor
    y: torch.Tensor
    member: torch.Tensor
    index: torch.Tensor
    classes: list[str]
    method: list[str]
    seed: torch.Tensor


def read_shard_rows(path: str | Path, *, max_member: int | None = None, classes: list[str] | None = None
                    ) -> ShardRows:
    """Read a shards folder (or one parquet file) into decoded rows with their member and index.

    x: float32, (N, C, H, W) in [-1, 1] for images (C = 1 for greyscale PNGs, 3 for RGB) or (N, D)
    for points; y, member, index, seed: int64 per row; method: a string per row; classes: the name of
    label k at position k.
    ``max_member=T`` keeps rows with member < T. ``classes``, when given, is the expected list of class
    names in label order (e.g. RealDataset.classes): every row must agree with it, and it is returned
    as is, so a class without synthetic rows still has its name; without it the names come from the rows.
    """
    table = _read_table(path)
    kind = "image" if "image" in table.column_names else "point" if "point" in table.column_names else None
    if kind is None:
        raise ValueError(f"shards at {path} have neither an 'image' nor a 'point' column: "
                         f"columns {table.column_names}")
    table = table.select([kind, "label", "class_name", "member", "index", "method", "seed"])
    if max_member is not None:
        if max_member < 1:
            raise ValueError(f"max_member keeps members 0..max_member-1 and must be >= 1, got {max_member}")
        table = table.filter(pc.less(table["member"], max_member))
    if table.num_rows == 0:
        raise ValueError(f"no shard rows at {path} with max_member={max_member}")
    table = table.sort_by(_SORT_KEYS)
    names = _class_names(table, classes)
    x = decode_image_column(table[kind]) if kind == "image" else _points(table[kind], table.num_rows)

    def ints(column: str) -> torch.Tensor:
        return torch.from_numpy(table[column].to_numpy().astype(np.int64))
    return ShardRows(x=x, y=ints("label"), member=ints("member"), index=ints("index"), classes=names,
                     method=table["method"].to_pylist(), seed=ints("seed"))


def read_shards(path: str | Path, *, max_member: int | None = None, classes: list[str] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Read a shards folder (or one parquet file) into (x, y, class_names): read_shard_rows without
    the member and index columns."""
    rows = read_shard_rows(path, max_member=max_member, classes=classes)
    return rows.x, rows.y, rows.classes
