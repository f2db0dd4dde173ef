"""Run folders at a pyarrow filesystem URI: file:// on the session Ray, S3 (moto) in a job subprocess.

The driver and the Ray workers use different local mirrors here (the driver's is set for this test
only, the workers keep theirs), so everything that reaches the driver went through storage, as it does
between the nodes of a cluster.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs

from raygan.cluster.pipeline import prepare, run_synth, run_train
from raygan.runs import MIRROR_ENV, mirror_root
from raygan.runs.storage import mirror_key

REPO = Path(__file__).resolve().parents[2]


def _files(fs: pafs.FileSystem, base: str) -> set[str]:
    return {f.path[len(base) + 1:] for f in fs.get_file_info(pafs.FileSelector(base, recursive=True))
            if f.type == pafs.FileType.File}


def _counts(table) -> Counter:
    return Counter(zip(table["class_name"].to_pylist(), table["member"].to_pylist()))


@pytest.fixture
def worker_mirror(tmp_path):
    """The session Ray's workers mirror under the default root (they do not see this test's env):
    remove what this test's runs leave there."""
    made: list[Path] = []
    yield made.append
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def test_file_uri_run_folder_train_synth_rerun(raygan_logs, ray_session, ray_cfg, tmp_path, monkeypatch,
                                               worker_mirror):
    store = tmp_path / "store"
    uri_root = f"file://{store}"
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    default_root = mirror_root()
    worker_mirror(default_root / mirror_key(f"{uri_root}/default"))
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "driver-mirror"))
    cfg = ray_cfg("digits", "tracking.enabled=false", "audit.enabled=false",
                  f"output.root={uri_root}")
    prepared = prepare(cfg)
    run = prepared[1]
    assert run.uri == f"{uri_root}/default/run" and run.path.is_relative_to(tmp_path / "driver-mirror")
    trained = run_train(cfg, prepared=prepared)
    synth = run_synth(cfg, prepared=prepared)
    assert trained["trained_now"] == 4

    # Storage holds the whole run: bookkeeping, every member's files, the shards, no staging folder.
    fs, base = pafs.FileSystem.from_uri(run.uri)
    stored = _files(fs, base)
    members = ["0-4/0", "0-4/1", "5-9/0", "5-9/1"]
    for m in members:
        for name in ("checkpoint.pt", "generator.pt", "losses.csv", "samples.png"):
            assert f"members/{m}/{name}" in stored
    assert {"manifest.json", "config.yaml"} <= stored
    assert not any(p.startswith("shards.tmp") or ".tmp" in p for p in stored)
    shard_files = sorted(p for p in stored if p.startswith("shards/"))
    assert shard_files and all(p.endswith(".parquet") for p in shard_files)

    # ... readable with plain pyarrow from the URI, rows as the manifest says
    table = pq.read_table(f"{run.uri}/shards")
    manifest = json.loads((store / "default" / "run" / "manifest.json").read_text())
    assert _counts(table) == {(c, int(t)): n for c, per in manifest["shards"]["counts"].items()
                              for t, n in per.items()}
    assert len(table) == synth["shards"]["rows"] == 1257
    assert sorted(manifest["members"]) == members
    # The checkpoints came to storage from the workers' mirror; the driver's mirror got the grids.
    assert not list(run.path.glob("members/*/*/checkpoint.pt"))
    assert len(list(run.path.glob("members/*/*/samples.png"))) == 4

    # A rerun from a fresh mirror ("a new head node") skips everything, from what storage says.
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "fresh-mirror"))
    before = {p: fs.get_file_info(f"{base}/{p}").mtime_ns for p in shard_files}
    raygan_logs.clear()
    logs2 = raygan_logs
    again = prepare(cfg)
    assert run_train(cfg, prepared=again)["trained_now"] == 0
    run_synth(cfg, prepared=again)
    assert any("4 of 4 members already complete" in line for line in logs2)
    assert any("nothing rewritten" in line for line in logs2)
    assert {p: fs.get_file_info(f"{base}/{p}").mtime_ns for p in shard_files} == before

    # A member lost with its node (gone from the manifest and from every local mirror) resumes from
    # the checkpoint in storage instead of starting over.
    manifest = json.loads((store / "default" / "run" / "manifest.json").read_text())
    del manifest["members"]["5-9/1"]
    (store / "default" / "run" / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(default_root / mirror_key(f"{uri_root}/default"), ignore_errors=True)
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "third-mirror"))
    third = prepare(cfg)
    result = run_train(cfg, prepared=third)
    assert result["trained_now"] == 1
    redone = third[1].manifest()["members"]["5-9/1"]
    assert redone["resumed_from"] == cfg.train.steps  # the last checkpoint came back from storage

    # `raygan audit URI` and `raygan report URI` read the run from storage and write back to it.
    from raygan.cli import main
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "cli-mirror"))
    assert main(["audit", run.uri, "--set", "tracking.enabled=false"]) == 0
    assert main(["report", run.uri]) == 0
    stored = _files(fs, base)
    assert {"audit/privacy.json", "audit/closest_pairs.png", "report.md"} <= stored
    privacy = json.loads((store / "default" / "run" / "audit" / "privacy.json").read_text())
    assert privacy["verdict"] in ("pass", "warn") and set(privacy["classes"]) == {"0-4", "5-9"}


def test_file_uri_boosting_keeps_its_state_in_storage(ray_session, ray_cfg, tmp_path, monkeypatch,
                                                      worker_mirror):
    """AdaGAN's driver actor and weight tasks open the run by its URI: state and weights reach storage
    although the actor's mirror is not the driver's."""
    uri_root = f"file://{tmp_path}/store"
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    worker_mirror(mirror_root() / mirror_key(f"{uri_root}/default"))
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "driver-mirror"))
    cfg = ray_cfg("grid", "ensemble.method=adagan", "ensemble.members=2", "train.steps=20",
                  "boosting.classifier_epochs=1", "tracking.enabled=false", "audit.enabled=false",
                  f"output.root={uri_root}")
    prepared = prepare(cfg)
    run_train(cfg, prepared=prepared)
    run_synth(cfg, prepared=prepared)
    stored = tmp_path / "store" / "default" / "run"
    state = json.loads((stored / "boosting" / "grid" / "state.json").read_text())
    assert state["step"] == 2 and len(state["mixture_weights"]) == 2
    assert (stored / "boosting" / "grid" / "data_weights_step2.npy").is_file()
    table = pq.read_table(f"{uri_root}/default/run/shards")
    assert _counts(table) == {("grid", 0): 1000, ("grid", 1): 1000}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_s3_run_folder_pipeline_job_on_a_moto_server(tmp_path):
    """jobs/pipeline.py with output.root=s3://... against a loopback S3 server (moto), in a subprocess
    whose own local Ray gives the workers the test credentials; then a rerun of the synthesis job from
    a fresh mirror rewrites nothing."""
    moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
    # Ray's own temp folder, short (socket paths) and apart from other Ray clusters on the machine.
    ray_tmp = tempfile.mkdtemp(prefix="rgs3-", dir="/tmp")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
               MIRROR_ENV: str(tmp_path / "mirror-a"), "RAY_TMPDIR": ray_tmp}
        env.pop("RAY_ADDRESS", None)
        query = f"endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1"
        root = f"s3://raygan-test/runs?{query}"
        s3 = pafs.S3FileSystem(access_key="testing", secret_key="testing", region="us-east-1",
                               endpoint_override=f"127.0.0.1:{port}", scheme="http",
                               allow_bucket_creation=True)
        s3.create_dir("raygan-test")
        overrides = ["data.name=digits", "data.grouping=II", "gan.family=dcgan", "gan.width=8",
                     "gan.z_dim=16", "train.batch_size=32", "train.steps=20",
                     "train.checkpoint_every=10", "ensemble.members=2", "output.sample_grid=16",
                     "eval.repeats=1", "eval.epochs=1", "tracking.enabled=false",
                     "audit.enabled=false", "cluster.num_cpus=2", f"output.root={root}"]
        args = [a for o in overrides for a in ("--set", o)]
        out = subprocess.run([sys.executable, "jobs/pipeline.py", *args], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=400)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        assert "pipeline: 4 members, 1257 synthetic rows" in out.stdout

        base = "raygan-test/runs/default/run"
        stored = _files(s3, base)
        assert {"manifest.json", "config.yaml", "report.md", "eval/evaluation.json"} <= stored
        assert sum(p.endswith("/checkpoint.pt") for p in stored) == 4
        assert any(p.startswith("plots/") and p.endswith(".png") for p in stored)
        assert not any(p.startswith("shards.tmp") for p in stored)
        table = pq.read_table(f"{base}/shards", filesystem=s3)  # the credentials are this test's
        assert _counts(table) == {("0-4", 0): 315, ("0-4", 1): 315, ("5-9", 0): 314, ("5-9", 1): 313}

        env[MIRROR_ENV] = str(tmp_path / "mirror-b")  # another machine: only storage in common
        again = subprocess.run([sys.executable, "jobs/synthesize.py", *args], cwd=REPO, env=env,
                               capture_output=True, text=True, timeout=300)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert "nothing rewritten" in again.stdout
    finally:
        server.stop()
        shutil.rmtree(ray_tmp, ignore_errors=True)
