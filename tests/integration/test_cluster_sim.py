"""The cluster story without a cloud: cluster.yaml against Ray's autoscaler schema, GPU placement on a
simulated multi-node cluster, scale-up / scale-down with Ray's fake_multinode autoscaler, and a member of
two Ray Train workers spanning nodes beside another job's member tasks (cluster.workers_per_member).

The two simulated clusters run in subprocesses (tests/integration/cluster_sim.py), both started at
once by a module fixture, each with its own RAY_TMPDIR and process group: they never meet the session
Ray of conftest.py, and whatever they leave behind is ended by its process group id. CUDA is absent
here: members that hold a (logical) Ray GPU fall back to the CPU and record the GPU id all the same.
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("placement", "autoscale", "wide")


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    """Start both scenarios together (they mostly wait on process start-ups); results by name."""
    procs, temps = {}, []
    for name in SCENARIOS:
        ray_tmp = tempfile.mkdtemp(prefix=f"rgsim-{name[:4]}-", dir="/tmp")  # short socket paths
        temps.append(ray_tmp)
        root = tmp_path_factory.mktemp(name) / "runs"
        env = {**os.environ, "RAY_TMPDIR": ray_tmp, "PYTHONUNBUFFERED": "1"}
        env.pop("RAY_ADDRESS", None)
        log = open(Path(ray_tmp) / "out.log", "w+")
        proc = subprocess.Popen([sys.executable, str(REPO / "tests/integration/cluster_sim.py"), name,
                                 str(root)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        procs[name] = (proc, log, root)
    results = {}
    try:
        for name, (proc, log, root) in procs.items():
            try:
                proc.wait(timeout=480)  # two test workers share the 2 cores (CI)
            except subprocess.TimeoutExpired:
                pass
            log.seek(0)
            text = log.read()
            lines = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
            results[name] = {"rc": proc.returncode, "out": text[-4000:], "root": root,
                             "result": json.loads(lines[-1][7:]) if lines else None}
        yield results
    finally:
        for proc, log, _ in procs.values():
            try:  # the subprocess's session: its Ray processes, and nothing else on the machine
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
            log.close()
        for ray_tmp in temps:
            shutil.rmtree(ray_tmp, ignore_errors=True)


def _result(simulated, name: str) -> dict:
    got = simulated[name]
    assert got["rc"] == 0 and got["result"] is not None, got["out"]
    return got["result"]


def test_cluster_yaml_validates_against_rays_autoscaler_schema():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    prepared = prepare_config(copy.deepcopy(config))  # `ray up` fills the AWS defaults first
    validate_config(prepared)
    head = prepared["available_node_types"][prepared["head_node_type"]]
    gpu_types = {k: v for k, v in prepared["available_node_types"].items()
                 if v.get("resources", {}).get("GPU", 0) >= 1}
    assert head["resources"].get("GPU", 0) == 0 and gpu_types
    assert all(v["min_workers"] == 0 and v["max_workers"] >= 1 for v in gpu_types.values())
    setup = " ".join(prepared["worker_setup_commands"])
    assert "download.pytorch.org/whl/cu" in setup and "raygan" in setup
    # and the check would catch a typo
    broken = copy.deepcopy(config)
    next(iter(broken["available_node_types"].values()))["min_wrkers"] = 0
    with pytest.raises(Exception, match="min_wrkers"):
        validate_config(prepare_config(broken))


def test_device_falls_back_to_cpu_when_a_gpu_task_finds_no_cuda():
    import torch

    from raygan.cluster.runtime import member_resources
    from raygan.cluster.tasks import device_for_task
    from raygan.config import ConfigError, load_config

    assert device_for_task("auto", ["0"], False) == torch.device("cpu")  # logical GPU, no CUDA
    assert device_for_task("auto", ["0"], True) == torch.device("cuda:0")  # Ray's CUDA_VISIBLE_DEVICES
    assert device_for_task("auto", [], True) == torch.device("cpu")  # no GPU assigned to this task
    assert device_for_task("cpu", ["0"], True) == torch.device("cpu")
    with pytest.raises(RuntimeError, match="train.device=auto"):
        device_for_task("cuda", ["0"], False)
    with pytest.raises(ConfigError, match="whole number"):
        member_resources(load_config(overrides=["cluster.gpus_per_member=1.5"]))


def test_cluster_example_config_resolves_for_the_cluster():
    from raygan.config import load_config

    cfg = load_config(REPO / "configs" / "cluster_example.yaml")
    assert cfg.output.root.startswith("s3://") and cfg.cluster.gpus_per_member == 1
    assert cfg.tracking.tracking_uri.startswith("http")


def test_each_member_on_its_own_gpu_and_four_quarter_members_share_one(simulated):
    out = _result(simulated, "placement")
    root = simulated["placement"]["root"]
    manifest = json.loads((root / "default" / "whole" / "manifest.json").read_text())["members"]
    assert len(manifest) == 4 == out["gpu_nodes"]
    pairs = {(e["node_id"], tuple(e["gpu_ids"])) for e in manifest.values()}
    assert len(pairs) == 4  # distinct (node, GPU): every member had a GPU of its own
    assert all(len(e["gpu_ids"]) == 1 for e in manifest.values())
    assert all(e["device"] == "cpu" for e in manifest.values())  # no CUDA here: a clean fallback

    quarter = json.loads((root / "default" / "quarter" / "manifest.json").read_text())["members"]
    assert len(quarter) == 4
    assert {(e["node_id"], tuple(e["gpu_ids"])) for e in quarter.values()} == {(out["head"], ("0",))}
    # raygan's 0.25-GPU request lets four tasks hold the one GPU at the same time
    together = out["together"]
    assert [t["seen"] for t in together] == [4, 4, 4, 4]
    assert {(t["node_id"], tuple(t["gpu_ids"])) for t in together} == {(out["head"], ("0",))}


def test_autoscaler_adds_gpu_workers_for_queued_members_and_removes_them_when_idle(simulated):
    out = _result(simulated, "autoscale")
    counts = [n for _, n in out["timeline"]]
    assert out["gpu_nodes_at_submit"] == 0  # the members queued: no node could take them
    assert 1 <= max(counts) <= 2  # the autoscaler added GPU workers, at most the type's max_workers
    first_up = next(t for t, n in out["timeline"] if n > 0)
    assert out["submitted_s"] <= first_up <= out["trained_s"]
    members = out["members"]
    assert len(members) == 4 and all(m["node_id"] != out["head"] for m in members)
    assert all(m["gpu_ids"] == ["0"] and m["device"] == "cpu" for m in members)
    # idle workers are removed after idle_timeout_minutes (0.1 min here)
    assert out["gpu_nodes_after"] == 0 and counts[-1] == 0
    assert out["drained_s"] - out["trained_s"] < 60


def test_a_two_worker_member_spans_nodes_while_other_member_tasks_run(simulated):
    got = _result(simulated, "wide")
    assert got["refusal"] and "\n" not in got["refusal"] and "local folder" in got["refusal"]
    wide = got["wide"]
    assert wide["status"] == "complete" and wide["workers_per_member"] == 2
    assert len({w["node_id"] for w in wide["workers"]}) == 2  # one CPU per node: the group spans two
    assert got["group_up"] is not None and len(got["solo"]) == 4
    during = [m for m in got["solo"] if got["group_up"] <= m["task_started"] < wide["task_finished"]]
    assert during, (got["group_up"], wide, got["solo"])  # member tasks ran while the group trained
    assert all(m["node_id"] not in {w["node_id"] for w in wide["workers"]} for m in during)


def test_ray_status_node_lines_tell_an_autoscaler_from_the_read_only_provider():
    """`ray status` as Ray 2.60 prints it: node_<id> types are the read-only provider's (no autoscaler)."""
    from raygan.cluster.runtime import _status_node_types

    by_hand = ("======== Autoscaler status ========\nNode status\n" + "-" * 20 + "\nActive:\n"
               " 1 node_d64679f140e1298720c5fcad\nPending:\n (no pending nodes)\nRecent failures:\n"
               " (no failures)\n\nResources\n" + "-" * 20 + "\nTotal Usage:\n 0.0/1.0 CPU\n")
    assert _status_node_types(by_hand) == ["1 node_d64679f140e1298720c5fcad"]
    launched = by_hand.replace("node_d64679f140e1298720c5fcad", "ray.head.default").replace(
        "(no pending nodes)", "ray.worker.gpu, 1 launching")
    assert _status_node_types(launched) == ["1 ray.head.default", "ray.worker.gpu, 1 launching"]
    assert _status_node_types("No cluster status.") is None
