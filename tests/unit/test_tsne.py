"""Seed 001's t-SNE map (raygan.metrics.tsne): real training images and synthetic ones read back from a
parquet shard, one row of the embedding per point, the counts asked for, and the figure written."""
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from raygan.config import load_config
from raygan.data import load_dataset
from raygan.metrics.tsne import evenly_spaced, plot_tsne, tsne_map
from raygan.reporting.report import _tsne_left_out
from raygan.runs import RunFolder
from raygan.synthesis.records import encode_png


def _write_shard(folder, x: torch.Tensor, y: torch.Tensor, classes: list[str]) -> None:
    """One parquet file laid out as raygan writes shards: 3 members, indices within each."""
    folder.mkdir(parents=True)
    rows = [{"image": png, "label": int(k), "class_name": classes[int(k)], "member": i % 3,
             "method": "independent", "seed": 0, "index": i // 3}
            for i, (png, k) in enumerate(zip(encode_png(x), y))]
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-00000.parquet")


def test_evenly_spaced_rows_are_distinct_and_bounded():
    assert evenly_spaced(10, 4).tolist() == [0, 2, 5, 7]
    assert evenly_spaced(3, 50).tolist() == [0, 1, 2]
    assert len(set(evenly_spaced(127, 50).tolist())) == 50


def test_the_map_has_one_row_per_point_and_the_figure_is_written(tmp_path):
    dataset = load_dataset(load_config(overrides=["data.grouping=II"]).data)
    # "synthetic": real images of each class, slightly perturbed; class 1 has fewer rows than asked
    g = torch.Generator().manual_seed(0)
    parts = [dataset.train[dataset.classes[0]][:40], dataset.train[dataset.classes[1]][:12]]
    x = torch.cat(parts)
    x = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1)
    y = torch.cat([torch.zeros(40, dtype=torch.long), torch.ones(12, dtype=torch.long)])
    _write_shard(tmp_path / "shards", x, y, dataset.classes)
    tsne = tsne_map(dataset, tmp_path / "shards", per_class=20, seed=0, run_dir=tmp_path)
    assert tsne.embedding.shape == (20 + 20 + 20 + 12, 2) and np.isfinite(tsne.embedding).all()
    assert tsne.counts() == {dataset.classes[0]: {"real": 20, "synthetic": 20},
                             dataset.classes[1]: {"real": 20, "synthetic": 12}}
    assert (tmp_path / "eval" / "domain_classifier.pt").is_file()  # the cache the audit and metrics share
    again = tsne_map(dataset, tmp_path / "shards", per_class=20, seed=0, run_dir=tmp_path)
    np.testing.assert_allclose(again.embedding, tsne.embedding, rtol=1e-4, atol=1e-4)  # fixed random_state
    path = plot_tsne(tsne, tmp_path / "plots" / "tsne.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 200


def test_the_report_says_why_a_map_is_left_out(tmp_path):
    run = RunFolder(tmp_path)
    points = load_config(overrides=["data.name=grid2d", "gan.family=mlp2d"])
    assert "points, not images" in _tsne_left_out(run, points)
    assert _tsne_left_out(run, load_config(overrides=["eval.tsne_points=0"])) == "eval.tsne_points is 0"
    assert "no synthetic shards" in _tsne_left_out(run, load_config())


def test_tsne_points_must_not_be_negative():
    from raygan.config import ConfigError
    with pytest.raises(ConfigError, match="eval.tsne_points"):
        load_config(overrides=["eval.tsne_points=-1"])
