"""A run survives a killed member worker and a killed driver actor; `ray job submit` runs the pipeline."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from raygan.cluster.pipeline import run_pipeline
from raygan.runs import RunFolder

REPO = Path(__file__).resolve().parents[2]


def _in_thread(fn, *args, **kwargs):
    box: dict = {}

    def target():
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as err:  # surfaced by the test
            box["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, box


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _check_shards(run: RunFolder, expected: dict):
    table = pq.read_table(run.path / "shards")
    counts = Counter(zip(table["class_name"].to_pylist(), table["member"].to_pylist()))
    assert counts == expected
    keys = list(zip(table["class_name"].to_pylist(), table["member"].to_pylist(),
                    table["index"].to_pylist()))
    assert len(keys) == len(set(keys))  # no duplicate rows


def _running_member_with_checkpoint(run: RunFolder, address: str):
    """(worker pid, 'class/member') of a running member task that has written a checkpoint."""
    from ray.util.state import list_tasks
    tasks = list_tasks(filters=[("func_or_class_name", "=", "train_units_task"),
                                ("state", "=", "RUNNING")], detail=True, address=address)
    for task in tasks:
        member = task.name.split(":", 1)[1]  # tasks are named train_member:<class>/<member>
        if task.worker_pid and (run.path / "members" / member / "checkpoint.pt").exists():
            return task.worker_pid, member
    return None


def test_killed_member_worker_is_retried_and_resumes(ray_session, ray_cfg):
    cfg = ray_cfg("grid", "train.steps=400", "train.checkpoint_every=50", "ensemble.members=2",
                  "tracking.enabled=false")
    run = RunFolder.for_config(cfg)
    thread, box = _in_thread(run_pipeline, cfg)
    pid, member = _wait_for(lambda: _running_member_with_checkpoint(run, ray_session["gcs"]), 120,
                            "a running member with a checkpoint")
    os.kill(pid, signal.SIGKILL)
    thread.join(300)
    assert "error" not in box, box.get("error")
    members = run.manifest()["members"]
    assert sorted(members) == ["grid/0", "grid/1"]
    # the killed member resumed from its checkpoint: it lost at most one interval of 50 steps
    assert members[member]["resumed_from"] >= 50
    assert all(e["worker_pid"] != pid for e in members.values())
    _check_shards(run, {("grid", 0): 1000, ("grid", 1): 1000})


def test_killed_driver_actor_restarts_and_continues(ray_session, ray_cfg):
    import ray

    from raygan.cluster.driver import actor_name

    cfg = ray_cfg("grid", "ensemble.method=adagan", "ensemble.members=3", "train.steps=150",
                  "boosting.classifier_epochs=1", "tracking.enabled=false")
    run = RunFolder.for_config(cfg)
    state_file = run.path / "boosting" / "grid" / "state.json"
    thread, box = _in_thread(run_pipeline, cfg)
    _wait_for(lambda: state_file.exists() and json.loads(state_file.read_text())["step"] >= 1, 180,
              "the first boosting step")
    ray.kill(ray.get_actor(actor_name(run, "grid")), no_restart=False)
    thread.join(300)
    assert "error" not in box, box.get("error")
    state = json.loads(state_file.read_text())
    assert state["step"] == 3 and [m["member"] for m in state["members"]] == [0, 1, 2]
    assert sum(state["mixture_weights"]) == pytest.approx(1.0)
    _check_shards(run, {("grid", 0): 667, ("grid", 1): 667, ("grid", 2): 666})


def test_ray_job_submit_runs_the_pipeline_job(ray_session, tmp_path):
    root = tmp_path / "jobruns"
    ray_bin = str(Path(sys.executable).parent / "ray")
    cmd = [ray_bin, "job", "submit", "--address", ray_session["dashboard"], "--working-dir", ".",
           "--", sys.executable, "jobs/pipeline.py", "--config", "configs/demo.yaml",
           "--set", "data.grouping=II", "--set", "train.steps=20", "--set", "ensemble.members=2",
           "--set", "gan.width=8", "--set", f"output.root={root}", "--set", "eval.repeats=1",
           "--set", "eval.epochs=2", "--set", "eval.tsne_points=0",
           # Explicit, because a machine running several Ray clusters can hand the job another one's
           # RAY_ADDRESS (seen with Ray 2.60); on a cluster the job needs no --address.
           "--address", ray_session["gcs"]]
    for _ in range(20):  # up to about two minutes
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
        # The job server answers 500 "No available agent" until the node's agent has registered,
        # which on a loaded 2-core machine can be well after ray.init returns: wait and resubmit.
        if "No available agent to submit job" not in out.stdout + out.stderr:
            break
        time.sleep(5)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "succeeded" in out.stdout
    assert "# raygan pipeline: resolved config" in out.stdout
    assert "pipeline: 4 members, 1257 synthetic rows (0-4: 630, 5-9: 627)" in out.stdout
    run = RunFolder(root / "demo" / "digits")
    _check_shards(run, {("0-4", 0): 315, ("0-4", 1): 315, ("5-9", 0): 314, ("5-9", 1): 313})
