"""Shards, evaluation, audit and report of a local run with ray unimportable (sys.modules["ray"] = None):
the plain-pyarrow writer and the in-process jobs need no Ray, and the CLI does not reach for it."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from raygan.config import load_config
from raygan.evaluation.job import runs_here

_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["ray"] = None  # any `import ray` from here on raises ImportError
    from collections import Counter

    import pyarrow.parquet as pq
    import torch

    from raygan import logs
    from raygan.cli import main
    from raygan.cluster.entry import job_function
    from raygan.config import load_config
    from raygan.ensemble.training import train_independent
    from raygan.evaluation.job import evaluate_job, prepare
    from raygan.synthesis.records import decode_png
    from raygan.synthesis.shards import mixture_weights, write_shards

    logs.configure("warning")
    torch.set_num_threads(1)
    import raygan.metrics.domain as domain
    trainings, train = [], domain.train_classifier  # the domain classifier's training runs, counted
    domain.train_classifier = lambda *a, **k: trainings.append(1) or train(*a, **k)
    cfg = load_config(overrides=json.loads(sys.argv[1]))
    dataset, run = prepare(cfg)
    run.write_config(cfg)
    train_independent(cfg, dataset, run)
    section = write_shards(cfg, dataset, run, mixture_weights(cfg, dataset, run))

    table = pq.read_table(run.path / "shards", partitioning=None)
    counts = Counter(zip(table["class_name"].to_pylist(), table["member"].to_pylist()))
    shapes = {decode_png(table["image"][i].as_py()["bytes"]).shape for i in range(0, len(table), 50)}
    assert job_function("evaluate", cfg, None) is evaluate_job
    result = evaluate_job(cfg, prepared=(dataset, run), audit=True)
    # the CLI's evaluate (its own evaluation, no audit), audit (up to date: skipped) and report
    try:  # a job command ends in SystemExit(its code)
        main(["evaluate", *[arg for o in json.loads(sys.argv[1]) for arg in ("--set", o)]])
    except SystemExit as done:
        codes = [done.code]
    codes += [main(["audit", str(run.path)]), main(["report", str(run.path)])]
    print(json.dumps({"section": section, "manifest": run.manifest()["shards"],
                      "counts": {f"{c}/{t}": n for (c, t), n in counts.items()},
                      "shapes": sorted(shapes), "sample_shape": list(dataset.sample_shape),
                      "trtr": result["evaluation"]["trtr"]["test_acc_mean"], "codes": codes,
                      "run": str(run.path), "ray": sys.modules["ray"] is None,
                      "domain_trainings": len(trainings)}))
""")


def test_plain_shards_and_in_process_evaluation_without_ray(tmp_path):
    overrides = ["data.name=digits", "data.classes={a: [0], b: [1]}", "gan.family=dcgan", "gan.width=8",
                 "gan.z_dim=16", "train.steps=20", "train.batch_size=16", "train.checkpoint_every=10",
                 "train.log_every=10", "ensemble.members=2", "output.sample_grid=16",
                 "synth.chunk_size=64", "eval.repeats=1", "eval.epochs=1", "audit.enabled=true",
                 "audit.spaces=[pixel, domain]", "eval.metrics=[domain_fd]",
                 f"output.root={tmp_path}/runs"]
    out = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps(overrides)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["ray"], "something replaced the unimportable ray"
    assert got["codes"] == [0, 0, 0]
    section = got["section"]
    assert section == got["manifest"]
    # rows per class and member as the manifest says, one file per chunk of at most 64 rows
    assert got["counts"] == {f"{c}/{t}": n for c, per in section["counts"].items() for t, n in per.items()}
    assert sum(f["rows"] for f in section["files"].values()) == section["rows"] == sum(got["counts"].values())
    assert all(f["rows"] <= 64 for f in section["files"].values())
    assert sorted(section["files"]) == [f"part-{i:05d}-0.parquet" for i in range(len(section["files"]))]
    # decoded PNGs have the real images' shape (grey 8 x 8 digits: (1, 8, 8) -> (8, 8))
    channels, height, width = got["sample_shape"]
    assert got["shapes"] == [[height, width] if channels == 1 else [height, width, channels]]
    assert 0.0 <= got["trtr"] <= 1.0
    for name in ("eval/evaluation.json", "report.md", "audit/privacy.json"):
        assert (tmp_path / "runs" / "default" / "run" / name).is_file(), name
    assert "## Privacy: memorisation audit" in (tmp_path / "runs" / "default" / "run" / "report.md").read_text()
    # quality metrics, audit and t-SNE (twice each, with the CLI's evaluate and report): one training
    assert (tmp_path / "runs" / "default" / "run" / "plots" / "tsne.png").is_file()
    assert got["domain_trainings"] == 1


def test_only_a_local_run_with_no_cluster_named_runs_here(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = load_config()
    assert runs_here(cfg, job="evaluate") and runs_here(cfg, job="audit")
    assert not runs_here(cfg, "ray://head:10001", job="audit")
    assert not runs_here(cfg.replace(cluster={"address": "auto"}), job="evaluate")
    assert not runs_here(cfg.replace(output={"root": "s3://bucket/runs"}), job="audit")
    assert not runs_here(cfg.replace(cluster={"evaluate_as_task": True}), job="evaluate")
    assert runs_here(cfg.replace(cluster={"evaluate_as_task": True}), job="audit")
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert not runs_here(cfg, job="evaluate")
