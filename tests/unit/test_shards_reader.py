"""raygan.data.shards.read_shards on parquet folders written here with pyarrow, laid out as
raygan.cluster.shards writes them: values round-trip within PNG quantisation, order is (label, member,
index) whatever the files, member subsets, class names, and the errors."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from raygan.data.shards import read_shards
from raygan.synthesis.records import encode_png

CLASSES = ["0-4", "5-9"]


def _rows(x: torch.Tensor, *, kind: str) -> list[dict]:
    """One row per sample: 2 classes x 3 members, indices 0.. within each (class, member)."""
    rows, n = [], len(x)
    payload = encode_png(x) if kind == "image" else x.tolist()
    for i in range(n):
        label, member, index = i % 2, (i // 2) % 3, i // 6
        rows.append({kind: payload[i], "label": label, "class_name": CLASSES[label], "member": member,
                     "method": "independent", "seed": 100 + member, "index": index})
    return rows


def _write(folder, rows: list[dict], *, kind: str, seed: int = 0):
    """Two parquet files holding the rows in a shuffled order; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(rows))
    shuffled = [rows[i] for i in order]
    half = len(shuffled) // 2
    value_type = pa.binary() if kind == "image" else pa.list_(pa.float64())
    schema = pa.schema([("label", pa.int64()), ("class_name", pa.string()), ("member", pa.int64()),
                        ("method", pa.string()), ("seed", pa.int64()), ("index", pa.int64()),
                        (kind, value_type)])
    for part, chunk in enumerate([shuffled[:half], shuffled[half:]]):
        pq.write_table(pa.Table.from_pylist(chunk, schema=schema), folder / f"part-{part:05d}.parquet")
    return folder


def _expected(x: torch.Tensor, rows: list[dict], max_member: int | None = None):
    keep = [i for i, r in enumerate(rows) if max_member is None or r["member"] < max_member]
    keep.sort(key=lambda i: (rows[i]["label"], rows[i]["member"], rows[i]["index"]))
    return x[keep], torch.tensor([rows[i]["label"] for i in keep])


@pytest.mark.parametrize("channels", [1, 3])
def test_images_round_trip_in_label_member_index_order(tmp_path, channels):
    x = torch.rand(24, channels, 8, 8, generator=torch.Generator().manual_seed(channels)) * 2 - 1
    rows = _rows(x, kind="image")
    folder = _write(tmp_path / "shards", rows, kind="image")
    got_x, got_y, names = read_shards(folder)
    want_x, want_y = _expected(x, rows)
    assert got_x.shape == (24, channels, 8, 8) and got_x.dtype == torch.float32
    assert got_y.dtype == torch.int64
    assert torch.equal(got_y, want_y)
    assert names == CLASSES
    assert (got_x - want_x).abs().max() <= 1 / 127.5
    assert got_x.min() >= -1 and got_x.max() <= 1


def test_order_does_not_depend_on_files_or_their_row_order(tmp_path):
    x = torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows = _rows(x, kind="image")
    a = read_shards(_write(tmp_path / "a", rows, kind="image", seed=1))
    b = read_shards(_write(tmp_path / "b", rows, kind="image", seed=2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    one_file = tmp_path / "a" / "part-00000.parquet"
    x_one, y_one, _ = read_shards(one_file)
    assert len(y_one) == 12 and torch.equal(y_one, y_one.sort().values)


def test_max_member_keeps_the_first_members(tmp_path):
    x = torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    rows = _rows(x, kind="image")
    folder = _write(tmp_path / "shards", rows, kind="image")
    for t, n in [(1, 8), (2, 16), (3, 24), (10, 24)]:
        got_x, got_y, names = read_shards(folder, max_member=t)
        want_x, want_y = _expected(x, rows, max_member=t)
        assert len(got_y) == n and torch.equal(got_y, want_y)
        assert (got_x - want_x).abs().max() <= 1 / 127.5
        assert names == CLASSES
    with pytest.raises(ValueError, match="max_member"):
        read_shards(folder, max_member=0)


def test_points_round_trip_exactly(tmp_path):
    x = torch.randn(18, 2, generator=torch.Generator().manual_seed(0)) * 5
    rows = _rows(x, kind="point")
    folder = _write(tmp_path / "shards", rows, kind="point")
    got_x, got_y, names = read_shards(folder, max_member=2)
    want_x, want_y = _expected(x, rows, max_member=2)
    assert got_x.shape == (12, 2) and got_x.dtype == torch.float32
    torch.testing.assert_close(got_x, want_x)
    assert torch.equal(got_y, want_y) and names == CLASSES


def test_classes_argument_checks_and_completes_the_names(tmp_path):
    x = torch.randn(12, 2, generator=torch.Generator().manual_seed(0))
    rows = [r for r in _rows(x, kind="point")]
    for r in rows:  # every row in class 1: class 0 has no synthetic samples
        r["label"], r["class_name"] = 1, CLASSES[1]
    folder = _write(tmp_path / "shards", rows, kind="point")
    _, y, names = read_shards(folder, classes=CLASSES)
    assert names == CLASSES and set(y.tolist()) == {1}
    with pytest.raises(ValueError, match="classes="):
        read_shards(folder)  # label 1 without a label 0: names cannot be inferred
    with pytest.raises(ValueError, match="disagree"):
        read_shards(folder, classes=["a", "b"])


def test_missing_path_names_it(tmp_path):
    missing = tmp_path / "run" / "shards"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        read_shards(missing)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="parquet"):
        read_shards(tmp_path / "empty")
