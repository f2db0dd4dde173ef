"""The memorisation audit on the session's 2-CPU Ray: `raygan audit RUN` on a tiny trained digits run
(one task per class), the pipeline's audit step inside the evaluate MLflow run, planted copies flagged
through the Ray path, and points refused as not applicable. One tiny run is trained for the module."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from raygan.cli import main
from raygan.cluster.pipeline import prepare, run_pipeline, run_synth, run_train
from raygan.config import load_config
from raygan.runs import RunFolder, sha256_file
from raygan.synthesis.records import encode_png


@pytest.fixture(scope="module")
def digits_run(ray_session, tmp_path_factory):
    """Two classes x two members, 10 steps each, synthesized: a run nobody has audited yet."""
    root = tmp_path_factory.mktemp("audit") / "runs"
    cfg = load_config(overrides=["data.name=digits", "data.grouping=II", "gan.family=dcgan", "gan.width=8",
                                 "gan.z_dim=16", "train.batch_size=32", "train.steps=10",
                                 "train.checkpoint_every=10", "train.log_every=10", "ensemble.members=2",
                                 "output.sample_grid=16", "synth.chunk_size=256", "eval.repeats=1",
                                 "eval.epochs=1", "tracking.enabled=false", f"output.root={root}"])
    prepared = prepare(cfg)  # MLflow stays off while training: the tests turn it on for the audit
    run_train(cfg, prepared=prepared)
    run_synth(cfg, prepared=prepared)
    return cfg, prepared[1].path


def _runs(cfg, job: str):
    client = MlflowClient(f"sqlite:///{cfg.output.root}/mlflow.db")
    exp = client.get_experiment_by_name(f"raygan/{cfg.output.experiment}")
    return client, [r for r in client.search_runs([exp.experiment_id])
                    if r.data.tags.get("raygan.job") == job]


def test_raygan_audit_on_a_trained_run_writes_privacy_json_and_the_figure(digits_run, ray_session, capsys):
    cfg, run = digits_run
    assert main(["audit", str(run), "--address", ray_session["gcs"], "--force",
                 "--set", "tracking.enabled=true"]) == 0
    out = capsys.readouterr().out
    assert "audit: class 0-4 searched (630 synthetic samples)" in out
    assert "audit verdict: PASS" in out  # 10 steps of a width-8 DCGAN: blobs, not copies
    privacy = json.loads((run / "audit" / "privacy.json").read_text())
    assert privacy["verdict"] == "pass" and privacy["reasons"] == []
    assert privacy["holdout"] == "test" and privacy["spaces"] == ["pixel", "domain"]
    for name, n_syn in (("0-4", 630), ("5-9", 627)):
        c = privacy["classes"][name]
        assert c["n_synthetic"] == n_syn and c["near_duplicates"] == []
        for space in ("pixel", "domain"):
            s = c["spaces"][space]
            assert s["holdout"]["n"] == c["n_holdout"]
            assert [m["member"] for m in s["members"]] == [0, 1]
            assert [t["T"] for t in s["ensemble_sizes"]] == [1, 2]
            assert s["synthetic"]["fraction_below_p1"] <= cfg.audit.warn_fraction_p1
            assert 0.3 < s["synthetic"]["mia_auroc"] < 0.7
    assert sum(c["n_holdout"] for c in privacy["classes"].values()) == 270  # the test split
    assert [c["group"] for c in privacy["closest_pairs"]] == ["T = 1", "T = 2"]
    assert len(privacy["closest_pairs"][1]["pairs"]) == cfg.audit.pairs_in_figure
    assert (run / "audit" / "closest_pairs.png").stat().st_size > 5_000
    assert (run / "eval" / "domain_classifier.pt").exists()
    client, runs = _runs(cfg, "audit")
    assert runs[0].data.tags["raygan.audit_verdict"] == "pass"
    assert "audit_mia_auroc_pixel" in runs[0].data.metrics
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id)} >= {"privacy.json",
                                                                            "closest_pairs.png"}
    # unchanged shards and settings: skipped; another setting: recomputed
    assert main(["audit", str(run), "--address", ray_session["gcs"]]) == 0
    assert "is up to date with the shards (skipped" in capsys.readouterr().out
    assert main(["audit", str(run), "--set", "audit.spaces=[pixel]"]) == 0
    assert "audit verdict: PASS" in capsys.readouterr().out
    assert json.loads((run / "audit" / "privacy.json").read_text())["spaces"] == ["pixel"]


def test_pipeline_step_logs_into_the_evaluate_run_and_the_report(raygan_logs, digits_run):
    cfg, run = digits_run
    raygan_logs.clear()
    logs = raygan_logs
    cfg = cfg.replace(tracking={"enabled": True})
    result = run_pipeline(cfg)  # members and shards exist: evaluate + audit only
    assert result["trained_now"] == 0
    assert any(line.startswith("audit") for line in logs)
    assert (run / "audit" / "privacy.json").exists()
    report = (run / "report.md").read_text()
    assert "## Privacy: memorisation audit" in report and "**Verdict: PASS.**" in report
    assert "![closest pairs](audit/closest_pairs.png)" in report
    client, runs = _runs(cfg, "evaluate")
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id)} >= {"privacy.json",
                                                                            "closest_pairs.png"}
    assert "raygan.audit_verdict" in runs[0].data.tags


def test_planted_copies_are_flagged_through_ray(digits_run, ray_session, tmp_path, capsys):
    cfg, run = digits_run
    copy = tmp_path / "runs" / cfg.output.experiment / "copied"
    shutil.copytree(run, copy)
    train = prepare(cfg)[0].train["5-9"]
    planted = [0, 42, 626]
    rows = [{"image": {"bytes": png, "path": None}, "label": 1, "class_name": "5-9", "member": 1, "method": "independent",
             "seed": 0, "index": 10_000 + i} for i, png in enumerate(encode_png(train[planted]))]
    schema = pq.read_schema(next((copy / "shards").glob("*.parquet")))
    planted_file = copy / "shards" / "zz-copies.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), planted_file)
    # The audit reads only shards the manifest records (checked by sha256): register the planted file
    # as a writer would, so the test is of the search, not of the checksum check.
    folder = RunFolder(copy)
    shards = folder.manifest()["shards"]
    shards["files"]["zz-copies.parquet"] = {"rows": len(rows), "sha256": sha256_file(planted_file),
                                            "bytes": planted_file.stat().st_size}
    folder.update_manifest(shards=shards)
    assert main(["audit", str(copy), "--address", ray_session["gcs"], "--set", "audit.spaces=[pixel]",
                 "--set", "tracking.enabled=false"]) == 0
    assert "audit verdict: WARN" in capsys.readouterr().out
    privacy = json.loads((copy / "audit" / "privacy.json").read_text())
    assert privacy["verdict"] == "warn" and privacy["classes"]["0-4"]["verdict"] == "pass"
    dups = privacy["classes"]["5-9"]["near_duplicates"]
    assert sorted(d["train_index"] for d in dups) == planted
    assert sorted(d["index"] for d in dups) == [10_000, 10_001, 10_002]
    px = privacy["classes"]["5-9"]["spaces"]["pixel"]
    assert [m["near_duplicates"] for m in px["members"]] == [0, 3]
    steps = {p["train_index"] for p in privacy["closest_pairs"][1]["pairs"][:3]}
    assert steps == set(planted) and np.isclose(privacy["closest_pairs"][1]["pairs"][0]["mse"], 0,
                                                atol=2e-5)


def test_bad_runs_and_points(tmp_path, capsys):
    assert main(["audit", str(tmp_path / "missing")]) == 2
    assert f"run folder {tmp_path / 'missing'} does not exist" in capsys.readouterr().err
    cfg = load_config(overrides=["data.name=grid2d", "gan.family=mlp2d", f"output.root={tmp_path}"])
    run = tmp_path / "default" / "grid"
    (run / "shards").mkdir(parents=True)
    (run / "config.yaml").write_text(cfg.to_yaml())
    pq.write_table(pa.table({"point": [[0.0, 1.0]], "label": [0]}), run / "shards" / "p.parquet")
    assert main(["audit", str(run)]) == 0
    assert "audit: not applicable to grid2d" in capsys.readouterr().out
    assert not (run / "audit").exists()
    assert main(["audit", str(run), "--set", "data.name=digits"]) == 2
    assert "only audit.*, cluster.* and tracking.* may change" in capsys.readouterr().err
