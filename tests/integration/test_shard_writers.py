"""The two shard writers on one trained run: Ray Data's (raygan.cluster.shards) and plain pyarrow's
(raygan.synthesis.shards) write byte-identical files and the same manifest section."""
from __future__ import annotations

import json
import shutil

import pyarrow.parquet as pq
import pytest

from raygan.cluster.pipeline import prepare, run_synth, run_train
from raygan.cluster.runtime import member_resources
from raygan.cluster.shards import write_shards as write_with_ray_data
from raygan.runs import RunFolder, sha256_file
from raygan.synthesis.shards import mixture_weights, write_shards


def _copy_without_shards(source: RunFolder, target: RunFolder) -> None:
    shutil.copytree(source.path, target.path, ignore=shutil.ignore_patterns("shards", "shards.tmp"))
    manifest = json.loads(target.manifest_path.read_text())
    manifest.pop("shards")
    target.manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("base", ["digits", "grid"])
def test_ray_data_and_plain_writers_give_identical_shards(base, raygan_logs, ray_session, ray_cfg, capfd):
    cfg = ray_cfg(base, "train.steps=10", "train.checkpoint_every=10", "tracking.enabled=false",
                  "audit.enabled=false", "output.run=ray")
    prepared = prepare(cfg)
    run_train(cfg, prepared=prepared)
    capfd.readouterr()
    raygan_logs.clear()
    by_ray = RunFolder(run_synth(cfg, prepared=prepared)["run_dir"])
    # Ray Data's progress stays out of the output; raygan says what it does instead
    out, err = capfd.readouterr()
    for noise in ("Starting execution of Dataset", "Total Progress", "execution finished", "Data sink",
                  "Progress bars disabled"):
        assert noise not in out + err, noise
    assert any("chunks with Ray Data" in line for line in raygan_logs)

    plain_cfg = cfg.replace(output={"run": "plain"})
    dataset, plain = prepare(plain_cfg)
    _copy_without_shards(by_ray, plain)
    raygan_logs.clear()
    section = write_shards(plain_cfg, dataset, plain, mixture_weights(plain_cfg, dataset, plain))
    assert any("chunks in this process" in line for line in raygan_logs)

    ray_files = sorted(p.name for p in (by_ray.path / "shards").iterdir())
    assert len(ray_files) > len(dataset.classes)  # several chunks per class: several files
    assert sorted(p.name for p in (plain.path / "shards").iterdir()) == ray_files
    for name in ray_files:
        assert sha256_file(plain.path / "shards" / name) == sha256_file(by_ray.path / "shards" / name), name
    assert section == by_ray.manifest()["shards"] == plain.manifest()["shards"]
    # Ray Data keeps the tables' schema metadata: the datasets features with the run's class names
    features = json.loads(pq.read_schema(by_ray.path / "shards" / ray_files[0]).metadata[b"huggingface"])
    assert features["info"]["features"]["label"] == {"names": dataset.classes, "_type": "ClassLabel"}
    assert not (plain.path / "shards.tmp").exists()
    # a member flagged collapsed and kept (at 10 steps some are, on either set) has its files say so
    flagged = {key for key, e in by_ray.manifest()["members"].items() if e.get("collapse", {}).get("collapsed")}
    assert flagged
    for name in ray_files:
        table = pq.read_table(by_ray.path / "shards" / name, columns=["class_name", "member"])
        (who,) = {f"{c}/{t}" for c, t in zip(*table.to_pydict().values())}
        meta = table.schema.metadata
        assert (b"raygan.collapse" in meta) == (who in flagged), name

    # Either writer takes the other's shards as complete: nothing rewritten.
    raygan_logs.clear()
    stamps = {p: p.stat().st_mtime_ns for p in (plain.path / "shards").iterdir()}
    write_with_ray_data(plain_cfg, dataset, plain, mixture_weights(plain_cfg, dataset, plain),
                        member_resources(plain_cfg))
    assert any("nothing rewritten" in line for line in raygan_logs)
    assert {p: p.stat().st_mtime_ns for p in (plain.path / "shards").iterdir()} == stamps
