"""The plain-pyarrow writer's shards open with Hugging Face `datasets` as they are (images decoded to PIL
images, labels a ClassLabel named by the run's classes), pyarrow and pandas read the same rows as
raygan's reader, and a run folder whose shards predate the layout (bare PNG bytes, no metadata) is still
complete and reads back the same."""
from __future__ import annotations

import json

import datasets
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from raygan.config import load_config
from raygan.data.shards import read_shard_rows
from raygan.ensemble.training import train_independent
from raygan.evaluation.job import prepare
from raygan.runs import sha256_file
from raygan.synthesis.shards import IMAGE_SCHEMA, POINT_SCHEMA, complete, mixture_weights, shard_plan, write_shards


def _synthesized(tmp_path, *overrides):
    cfg = load_config(overrides=["train.steps=2", "train.checkpoint_every=2", "train.log_every=2",
                                 "ensemble.members=2", "output.sample_grid=4", "synth.chunk_size=40",
                                 f"output.root={tmp_path}/runs", *overrides])
    dataset, run = prepare(cfg)
    run.write_config(cfg)
    train_independent(cfg, dataset, run)
    write_shards(cfg, dataset, run, mixture_weights(cfg, dataset, run))
    return cfg, dataset, run


def _load(tmp_path, monkeypatch, shards):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    return datasets.load_dataset("parquet", data_dir=str(shards), split="train",
                                 cache_dir=str(tmp_path / "hf_cache"))


def test_image_shards_load_with_datasets_and_read_as_before(tmp_path, monkeypatch, raygan_logs):
    cfg, dataset, run = _synthesized(tmp_path, "data.name=digits", "data.classes={odd: [1], even: [0]}",
                                     "gan.family=dcgan", "gan.width=8", "gan.z_dim=16",
                                     "train.batch_size=16")
    shards = run.path / "shards"
    ds = _load(tmp_path, monkeypatch, shards)
    assert ds.features["label"] == datasets.ClassLabel(names=["odd", "even"]) == \
        datasets.ClassLabel(names=dataset.classes)
    assert ds.features["image"] == datasets.Image()  # decoded on access, no cast needed
    assert set(ds.features) == set(IMAGE_SCHEMA.names)
    rows = read_shard_rows(shards, classes=dataset.classes)
    order = sorted(range(len(ds)), key=lambda i: (ds[i]["label"], ds[i]["member"], ds[i]["index"]))
    assert len(order) == len(rows.y) == run.manifest()["shards"]["rows"]
    pixels = np.stack([np.asarray(ds[i]["image"]) for i in order])  # PIL images, grey 8 x 8
    assert ds[order[0]]["image"].mode == "L" and pixels.shape[1:] == (8, 8)
    assert torch.equal(torch.from_numpy(pixels)[:, None].float() / 127.5 - 1.0, rows.x)
    assert [ds[i]["label"] for i in order] == rows.y.tolist()

    # pyarrow and pandas: the shard schema, the same rows as raygan's reader
    table = pq.read_table(shards, partitioning=None)
    assert table.schema.remove_metadata() == IMAGE_SCHEMA
    features = json.loads(table.schema.metadata[b"huggingface"])["info"]["features"]
    assert list(features) == IMAGE_SCHEMA.names and features["label"]["names"] == ["odd", "even"]
    frame = pd.read_parquet(shards).sort_values(["label", "member", "index"])
    assert list(frame.columns) == IMAGE_SCHEMA.names and frame["label"].dtype == np.int64
    first = frame["image"].iloc[0]
    assert set(first) == {"bytes", "path"} and first["bytes"].startswith(b"\x89PNG") and first["path"] is None
    assert frame["label"].tolist() == rows.y.tolist() and frame["index"].tolist() == rows.index.tolist()

    # shards written before (bare PNG bytes, no schema metadata) are still complete and read the same
    for path in shards.glob("*.parquet"):
        old = pq.read_table(path)
        old = old.set_column(old.schema.get_field_index("image"), "image",
                             pc.struct_field(old["image"], "bytes")).replace_schema_metadata(None)
        pq.write_table(old, path)
    files = {name: {**info, "sha256": sha256_file(shards / name), "bytes": (shards / name).stat().st_size}
             for name, info in run.manifest()["shards"]["files"].items()}
    run.update_manifest(shards={**run.manifest()["shards"], "files": files})
    assert complete(run, shard_plan(cfg, dataset, run, mixture_weights(cfg, dataset, run))[1])
    raygan_logs.clear()
    write_shards(cfg, dataset, run, mixture_weights(cfg, dataset, run))
    assert any("nothing rewritten" in line for line in raygan_logs)
    old_schema = pq.read_schema(next(shards.glob("*.parquet")))
    assert old_schema.metadata is None and old_schema.field("image").type == pa.binary()
    assert torch.equal(read_shard_rows(shards, classes=dataset.classes).x, rows.x)


def test_point_shards_load_with_datasets(tmp_path, monkeypatch):
    cfg, dataset, run = _synthesized(tmp_path, "data.name=grid2d", "gan.family=mlp2d",
                                     "ensemble.samples_per_class=120")
    ds = _load(tmp_path, monkeypatch, run.path / "shards")
    assert ds.features["label"] == datasets.ClassLabel(names=dataset.classes)
    # a List in datasets 4 and 5, a Sequence in datasets 3: either way float64 values
    assert ds.features["point"].feature == datasets.Value("float64")
    assert ds.features.arrow_schema.field("point").type == POINT_SCHEMA.field("point").type
    assert pq.read_table(run.path / "shards", partitioning=None).schema.remove_metadata() == POINT_SCHEMA
    rows = read_shard_rows(run.path / "shards", classes=dataset.classes)
    by_key = {(r["member"], r["index"]): r["point"] for r in ds}
    got = torch.tensor([by_key[(m, i)] for m, i in zip(rows.member.tolist(), rows.index.tolist())])
    assert got.shape == rows.x.shape == (len(ds), 2)
    assert torch.equal(got.float(), rows.x)
