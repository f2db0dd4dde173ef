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


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _job_env() -> dict:
    """The environment of the head and of `ray job submit`: token authentication on both sides where
    Ray has a token (conftest.pytest_configure makes it), as a user of this Ray sets it."""
    env = {**os.environ}
    env.pop("RAY_ADDRESS", None)
    if (Path.home() / ".ray" / "auth_token").exists() and "RAY_AUTH_MODE" not in env:
        env["RAY_AUTH_MODE"] = "token"
    return env


@pytest.fixture
def own_head():
    """A local Ray head of this test's own (`ray start --head --block`, its own temporary folder and
    process group, every port free-picked: the session Ray, or a second test worker's, holds Ray's
    default dashboard-agent port, without which a job server has no agent), stopped by ending that
    process group, never `ray stop`. Yields (dashboard URL, GCS address)."""
    import shutil
    import tempfile
    import urllib.error
    import urllib.request

    temp = tempfile.mkdtemp(prefix="rgjob-", dir="/tmp")  # short socket paths
    gcs, dash, agent, agent_grpc, env_agent, metrics, client = _free_ports(7)
    env = _job_env()
    cmd = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--num-cpus", "2",
           "--node-ip-address", "127.0.0.1", "--port", str(gcs), "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
           "--dashboard-port", str(dash), "--dashboard-agent-listen-port", str(agent),
           "--dashboard-agent-grpc-port", str(agent_grpc), "--runtime-env-agent-port", str(env_agent),
           "--metrics-export-port", str(metrics), "--ray-client-server-port", str(client), "--temp-dir", temp]
    log = open(Path(temp) / "head.log", "w+")
    head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/version", timeout=2).close()
                break
            except urllib.error.HTTPError:  # it answers (401 before the token is shown): up
                break
            except OSError:
                log.seek(0)
                assert head.poll() is None and time.time() < deadline, log.read()[-3000:]
                time.sleep(0.5)
        yield url, f"127.0.0.1:{gcs}"
    finally:
        try:
            os.killpg(head.pid, signal.SIGKILL)  # the head and everything it started
        except ProcessLookupError:
            pass
        head.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_job_submit_runs_the_pipeline_job(own_head, tmp_path):
    dashboard, gcs = own_head
    root = tmp_path / "jobruns"
    ray_bin = str(Path(sys.executable).parent / "ray")
    cmd = [ray_bin, "job", "submit", "--address", dashboard, "--working-dir", ".",
           "--", sys.executable, "jobs/pipeline.py", "--config", "configs/demo.yaml",
           "--set", "data.grouping=II", "--set", "train.steps=20", "--set", "ensemble.members=2",
           "--set", "gan.width=8", "--set", f"output.root={root}", "--set", "eval.repeats=1",
           "--set", "eval.epochs=2", "--set", "eval.tsne_points=0",
           # Explicit, because a machine running several Ray clusters can hand the job another one's
           # RAY_ADDRESS (seen with Ray 2.60); on a cluster the job needs no --address.
           "--address", gcs]
    for _ in range(20):  # up to about two minutes
        out = subprocess.run(cmd, cwd=REPO, env=_job_env(), capture_output=True, text=True, timeout=600)
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
