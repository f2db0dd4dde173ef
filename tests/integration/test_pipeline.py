"""The pipeline on a real 2-CPU local Ray: member tasks, shards, MLflow, reruns."""
from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest

from raygan.cluster.pipeline import run_pipeline, run_synth, run_train
from raygan.runs import RunFolder
from raygan.synthesis.records import decode_png


def _shard_counts(run_dir) -> Counter:
    table = pq.read_table(f"{run_dir}/shards")
    return Counter(zip(table["class_name"].to_pylist(), table["member"].to_pylist()))


def test_independent_digits_pipeline_shards_read_back_without_raygan(raygan_logs, ray_session, ray_cfg):
    cfg = ray_cfg("digits", "ensemble.members=3", "eval.repeats=1", "eval.epochs=1")
    raygan_logs.clear()
    logs = raygan_logs
    result = run_pipeline(cfg)
    run = RunFolder(result["run_dir"])
    # N_g = N real per class, split evenly over T = 3 members (630 -> 210 each; 627 -> 209 each)
    assert _shard_counts(run.path) == {("0-4", 0): 210, ("0-4", 1): 210, ("0-4", 2): 210,
                                       ("5-9", 0): 209, ("5-9", 1): 209, ("5-9", 2): 209}
    table = pq.read_table(run.path / "shards")
    assert set(table.column_names) == {"image", "label", "class_name", "member", "method", "seed",
                                       "index"}
    image = decode_png(table["image"][0].as_py()["bytes"])
    assert image.shape == (8, 8) and image.dtype == np.uint8
    assert set(table["label"].to_pylist()) == {0, 1}
    assert set(table["method"].to_pylist()) == {"independent"}
    # no duplicate rows: (class, member, index) is unique
    keys = list(zip(table["class_name"].to_pylist(), table["member"].to_pylist(),
                    table["index"].to_pylist()))
    assert len(keys) == len(set(keys)) == 1257
    # pandas too, file by file, with the manifest's checksums
    manifest = run.manifest()
    from raygan.runs import sha256_file
    for name, info in manifest["shards"]["files"].items():
        assert sha256_file(run.path / "shards" / name) == info["sha256"]
        assert len(pq.read_table(run.path / "shards" / name).to_pandas()) == info["rows"]
    assert manifest["shards"]["counts"] == {"0-4": {"0": 210, "1": 210, "2": 210},
                                            "5-9": {"0": 209, "1": 209, "2": 209}}
    # progress was reported member by member
    assert sum("member" in line and "steps in" in line for line in logs) == 6
    # every member recorded where it ran
    assert all(e["node_id"] and e["worker_pid"] for e in manifest["members"].values())

    import ray.data
    ds = ray.data.read_parquet(str(run.path / "shards"))
    assert ds.count() == 1257

    # MLflow: a parent run per job and a child run per member, read back with MlflowClient
    from mlflow.tracking import MlflowClient
    client = MlflowClient(f"sqlite:///{cfg.output.root}/mlflow.db")
    exp = client.get_experiment_by_name("raygan/default")
    runs = client.search_runs([exp.experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    assert len(children) == 6
    child = children[0]
    assert {"class", "member", "seed", "steps"} <= set(child.data.params)
    assert len(client.get_metric_history(child.info.run_id, "d_loss")) >= 3
    assert {a.path for a in client.list_artifacts(child.info.run_id)} >= {"samples.png", "losses.csv"}
    parents = {r.data.tags.get("raygan.job"): r for r in runs if not r.data.tags.get("mlflow.parentRunId")}
    assert set(parents) == {"train", "synthesize", "evaluate", "pipeline"}
    # the time per stage: eval/timing.json, the log's table and the pipeline's MLflow run agree
    timing = json.loads((run.path / "eval" / "timing.json").read_text())
    assert list(timing["stages"]) == ["train", "synthesize", "evaluate", "audit", "report"]
    assert all(s["seconds"] >= 0 for s in timing["stages"].values())
    assert sum(s["share"] for s in timing["stages"].values()) == pytest.approx(1.0, abs=1e-3)
    assert timing["stages"]["train"]["seconds"] > 0 and timing["stages"]["evaluate"]["ran"]
    assert timing == result["timing"]
    table = next(m for m in logs if m.startswith("pipeline stages:")).splitlines()
    assert [line.split()[0] for line in table[2:]] == ["train", "synthesize", "evaluate", "audit", "report",
                                                       "total"]
    logged = parents["pipeline"].data.metrics
    assert logged["stage_seconds_train"] == timing["stages"]["train"]["seconds"]
    assert {f"stage_share_{s}" for s in timing["stages"]} <= set(logged)


def test_grid_points_and_a_rerun_trains_nothing_and_rewrites_nothing(raygan_logs, ray_session, ray_cfg):
    cfg = ray_cfg("grid", "ensemble.members=2", "tracking.enabled=false")
    first = run_pipeline(cfg)
    run = RunFolder(first["run_dir"])
    table = pq.read_table(run.path / "shards")
    assert "point" in table.column_names and len(table["point"][0].as_py()) == 2
    assert _shard_counts(run.path) == {("grid", 0): 1000, ("grid", 1): 1000}
    timing_file = run.path / "eval" / "timing.json"  # this job's own time: rewritten by every pipeline
    stamps = {p: p.stat().st_mtime_ns for p in run.path.rglob("*") if p.is_file() and p != timing_file}
    raygan_logs.clear()
    logs = raygan_logs
    again = run_pipeline(cfg)
    assert again["trained_now"] == 0
    assert any("nothing rewritten" in line for line in logs)
    after = {p: p.stat().st_mtime_ns for p in run.path.rglob("*") if p.is_file() and p != timing_file}
    assert after == stamps  # not one file rewritten, none added
    # the rerun's stages found their work done and say so: seconds measured, not copied from the first
    stages = json.loads(timing_file.read_text())["stages"]
    assert stages == again["timing"]["stages"] != first["timing"]["stages"]
    assert stages["train"]["ran"] and not stages["evaluate"]["ran"] and not stages["report"]["ran"]
    assert stages["evaluate"]["seconds"] == stages["report"]["seconds"] == 0.0


def test_rerun_after_an_interrupt_trains_only_what_is_missing(raygan_logs, ray_session, ray_cfg):
    cfg = ray_cfg("grid", "ensemble.members=3", "tracking.enabled=false")
    run_train(cfg.replace(ensemble={"members": 1}))
    run = RunFolder.for_config(cfg)
    # an interrupted member: a checkpoint part-way, no manifest entry
    raygan_logs.clear()
    logs = raygan_logs
    result = run_train(cfg)
    assert result["trained_now"] == 2
    assert any("1 of 3 members already complete" in line for line in logs)
    trained = [line for line in logs if "steps in" in line]
    assert len(trained) == 2 and not any("member 0:" in line for line in trained)
    synth = run_synth(cfg)
    assert synth["shards"]["rows"] == 2000
    assert sorted(json.loads((run.path / "manifest.json").read_text())["members"]) == \
        ["grid/0", "grid/1", "grid/2"]


def test_adagan_three_steps_state_and_mixture(ray_session, ray_cfg):
    cfg = ray_cfg("grid", "ensemble.method=adagan", "ensemble.members=3", "boosting.classifier_epochs=1",
                  "tracking.enabled=false")
    result = run_pipeline(cfg)
    run = RunFolder(result["run_dir"])
    state = json.loads((run.path / "boosting" / "grid" / "state.json").read_text())
    assert state["step"] == 3 and len(state["steps"]) == 3
    assert sum(state["mixture_weights"]) == pytest.approx(1.0)
    assert state["mixture_weights"] == pytest.approx([1 / 3] * 3)  # beta_t = 1/t
    for step in state["steps"][1:]:
        assert {"beta", "effective_sample_size", "zero_fraction", "classifier_accuracy"} <= set(step)
        assert np.load(run.path / "boosting" / "grid" / f"data_weights_step{step['step']}.npy").sum() \
            == pytest.approx(1.0)
    assert run.manifest()["mixtures"]["grid"] == pytest.approx([1 / 3] * 3)
    assert sum(_shard_counts(run.path).values()) == 2000
    assert set(pq.read_table(run.path / "shards")["method"].to_pylist()) == {"adagan"}


def test_seed_001_reweighting_as_an_ensemble_method(ray_session, ray_cfg):
    cfg = ray_cfg("grid", "ensemble.method=reweight", "ensemble.members=2",
                  "boosting.reweight_transform=B", "tracking.enabled=false")
    result = run_pipeline(cfg)
    run = RunFolder(result["run_dir"])
    state = json.loads((run.path / "boosting" / "grid" / "state.json").read_text())
    assert state["step"] == 2 and state["steps"][1]["transform"] == "B"
    weights = np.load(run.path / "boosting" / "grid" / "data_weights_step2.npy")
    assert weights.sum() == pytest.approx(1.0) and weights.min() >= 0 and weights.std() > 0
    assert set(pq.read_table(run.path / "shards")["method"].to_pylist()) == {"reweight"}
