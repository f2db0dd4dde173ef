"""GAN families on the Ray layer: conditional members (task grid per member) and truncation in shards."""
from __future__ import annotations

from collections import Counter

import pyarrow.parquet as pq

from raygan.cluster.pipeline import run_synth, run_train
from raygan.runs import RunFolder


def test_conditional_members_run_as_one_task_each_and_fill_every_class(raygan_logs, ray_session, ray_cfg):
    cfg = ray_cfg("digits", "gan.family=ccgan", "synth.truncation=1.5", "tracking.enabled=false")
    raygan_logs.clear()
    logs = raygan_logs
    run_train(cfg)
    run = RunFolder.for_config(cfg)
    members = run.manifest()["members"]
    assert set(members) == {"0-4/0", "5-9/0", "0-4/1", "5-9/1"}
    # one task per member: both classes of a member came from the same worker and the same model
    for t in (0, 1):
        a, b = members[f"0-4/{t}"], members[f"5-9/{t}"]
        assert a["generator"] == b["generator"] and a["worker_pid"] == b["worker_pid"]
        assert (a["condition"], b["condition"]) == (0, 1)
    assert sum("conditional member" in line and "steps in" in line for line in logs) == 2

    run_synth(cfg)
    table = pq.read_table(run.path / "shards")
    counts = Counter(zip(table["class_name"].to_pylist(), table["member"].to_pylist()))
    sizes = {"0-4": 630, "5-9": 627}
    assert counts == {(name, t): sizes[name] // 2 + (t < sizes[name] % 2)
                      for name in sizes for t in (0, 1)}
    assert run.manifest()["shards"]["spec"]["truncation"] == 1.5
    # the rerun of the same spec writes nothing
    logs.clear()
    run_train(cfg)
    run_synth(cfg)
    assert any("unchanged" in line for line in logs)


def _write_tiny_cifar(root, per_label_train: int = 12, per_label_test: int = 4) -> None:
    """CIFAR-10's python pickle batches, tiny: each label a noisy colour of its own."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(labels):
        base = np.array([[30 + 22 * k, 200 - 15 * k, 60 + 10 * (k % 3)] for k in labels], np.float64)
        img = base[:, :, None, None] + rng.normal(0, 20, (len(labels), 3, 32, 32))
        return {"data": np.clip(img, 0, 255).astype(np.uint8).reshape(len(labels), 3072),
                "labels": list(labels), "batch_label": "tiny"}

    train = [k for k in range(10) for _ in range(per_label_train)]
    chunks = np.array_split(np.array(train), 5)
    for b, chunk in enumerate(chunks, start=1):
        (folder / f"data_batch_{b}").write_bytes(pickle.dumps(batch(chunk.tolist())))
    test = [k for k in range(10) for _ in range(per_label_test)]
    (folder / "test_batch").write_bytes(pickle.dumps(batch(test)))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{k}" for k in range(10)]}))


def test_cifar2_config_runs_end_to_end_on_rgb_files(ray_session, tmp_path):
    """configs/cifar2.yaml as a user runs it, on tiny CIFAR files: RGB through every stage."""
    import json

    import numpy as np

    from raygan.cluster.pipeline import run_pipeline
    from raygan.config import load_config
    from raygan.synthesis.records import decode_png

    _write_tiny_cifar(tmp_path / "data")
    from pathlib import Path
    config = Path(__file__).resolve().parents[2] / "configs" / "cifar2.yaml"
    cfg = load_config(config, [
        f"data.root={tmp_path}/data", f"output.root={tmp_path}/runs", "gan.width=8",
        "train.steps=20", "train.batch_size=16", "train.checkpoint_every=10", "train.log_every=10",
        "ensemble.members=2", "eval.repeats=1", "eval.epochs=1", "output.sample_grid=8",
        "eval.metrics=[domain_fd, msssim, classifier_score]", "tracking.enabled=false"])
    result = run_pipeline(cfg)
    run = RunFolder(result["run_dir"])
    table = pq.read_table(run.path / "shards")
    assert Counter(table["class_name"].to_pylist()) == {"0-4": 54, "5-9": 54}  # 60 per class - val
    assert decode_png(table["image"][0].as_py()["bytes"]).shape == (32, 32, 3)
    evaluation = json.loads((run.path / "eval" / "evaluation.json").read_text())
    assert evaluation["classes"] == ["0-4", "5-9"]
    quality = evaluation["quality"]["sets"]
    assert {"T=1", "T=2"} <= set(quality)
    assert np.isfinite(quality["T=2"]["overall"]["domain_fd"])
    privacy = json.loads((run.path / "audit" / "privacy.json").read_text())
    assert set(privacy["classes"]) == {"0-4", "5-9"} and privacy["verdict"] in ("pass", "warn")
    assert (run.path / "audit" / "closest_pairs.png").exists()
    assert "Sample quality" in (run.path / "report.md").read_text()


def test_progressive_and_layernorm_members_train_and_synthesize_on_ray(ray_session, ray_cfg):
    for family in (["gan.family=pggan"], ["gan.family=dcgan", "gan.g_norm=layer"]):
        cfg = ray_cfg("digits", *family, "tracking.enabled=false",
                      f"output.run={family[-1].split('=')[1]}")
        run_train(cfg)
        run_synth(cfg)
        run = RunFolder.for_config(cfg)
        table = pq.read_table(run.path / "shards")
        assert len(table) == 1257
        from raygan.synthesis.records import decode_png
        assert decode_png(table["image"][0].as_py()["bytes"]).shape == (8, 8)


def test_evaluation_as_a_ray_task_writes_the_same_results(raygan_logs, ray_session, ray_cfg):
    import json

    from raygan.cluster.pipeline import evaluation_resources, run_pipeline

    cfg = ray_cfg("digits", "cluster.evaluate_as_task=true", "eval.repeats=1", "eval.epochs=1",
                  "audit.enabled=false", "tracking.enabled=false")
    assert evaluation_resources(cfg) == {"num_cpus": 1.0, "num_gpus": 0}
    assert evaluation_resources(cfg.replace(cluster={"evaluate_as_task": None})) is None  # no GPU here
    raygan_logs.clear()
    logs = raygan_logs
    result = run_pipeline(cfg)
    assert any("evaluate: as a Ray task" in line for line in logs)
    run = RunFolder(result["run_dir"])
    evaluation = json.loads((run.path / "eval" / "evaluation.json").read_text())
    assert [r["T"] for r in evaluation["tstr_curve"]] == [1, 2]
    assert evaluation["tstr_curve"] == result["evaluation"]["tstr_curve"]
    assert (run.path / "report.md").exists()


def test_a_biggan_member_trains_synthesizes_evaluates_and_is_audited_on_ray(ray_session, ray_cfg):
    """gan.family=biggan through every stage: one conditional model per member, never packed."""
    import json

    from raygan.cluster.pipeline import run_pipeline

    cfg = ray_cfg("digits", "gan.family=biggan", "gan.width=4", "gan.loss=hinge", "gan.ema_decay=0.9",
                  "train.steps=10", "ensemble.members=1", "eval.repeats=1", "eval.epochs=1",
                  "tracking.enabled=false", "output.run=biggan")
    run = RunFolder(run_pipeline(cfg)["run_dir"])
    members = run.manifest()["members"]
    assert set(members) == {"0-4/0", "5-9/0"}
    a, b = members["0-4/0"], members["5-9/0"]
    assert a["generator"] == b["generator"] and (a["condition"], b["condition"]) == (0, 1)
    table = pq.read_table(run.path / "shards")
    assert Counter(table["class_name"].to_pylist()) == {"0-4": 630, "5-9": 627}
    evaluation = json.loads((run.path / "eval" / "evaluation.json").read_text())
    assert [r["T"] for r in evaluation["tstr_curve"]] == [1]
    privacy = json.loads((run.path / "audit" / "privacy.json").read_text())
    assert set(privacy["classes"]) == {"0-4", "5-9"} and privacy["verdict"] in ("pass", "warn")
