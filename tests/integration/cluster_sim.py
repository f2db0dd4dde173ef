"""Simulated multi-node GPU clusters on one machine, run as a script by test_cluster_sim.py.

Each scenario starts its own Ray (never the test session's), runs raygan's real training path
(raygan.cluster.pipeline.run_train) against it and prints one JSON line, RESULT {...}, for the test
to check. Run in a subprocess with its own RAY_TMPDIR, so nothing here meets another Ray on the machine.

  placement ROOT    ray.cluster_utils.Cluster, head + 3 workers, each declaring one GPU: 4 members
                    with a whole GPU each; then the 3 workers are removed and 4 members ask for 0.25.
  autoscale ROOT    a head without GPUs and Ray's fake_multinode autoscaler with a GPU worker type
                    (min_workers 0, max_workers 2, idle_timeout_minutes 0.1): members queue, workers
                    are added, members run there, idle workers are removed.
  wide ROOT         three nodes of one CPU each and a file:// run folder: a member of two Ray Train
                    workers (cluster.workers_per_member=2) must span two nodes, while a second job's
                    one-process member tasks run on what is left; a local run folder is refused there.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml


def _cfg(root: str, run: str, *overrides: str):
    from raygan.config import load_config
    return load_config(overrides=[
        "data.name=digits", "data.grouping=II", "gan.family=dcgan", "gan.width=8", "gan.z_dim=8",
        "train.batch_size=16", "train.steps=4", "train.checkpoint_every=4", "train.log_every=2",
        "ensemble.members=2", "output.sample_grid=4", "tracking.enabled=false",
        "cluster.max_retries=0", f"output.root={root}", f"output.run={run}", *overrides])


def _members(result: dict) -> list[dict]:
    keys = ("class", "member", "node_id", "gpu_ids", "device", "task_started", "task_finished")
    return [{k: e.get(k) for k in keys} for e in result["members"]]


def _held_together(resources: dict, n: int) -> list[dict]:
    """n tasks with a member's resources that each wait until all n have started: they can only
    return full counts if Ray ran all n at once (the members themselves are too short to overlap)."""
    import ray

    @ray.remote(num_cpus=0)
    class Barrier:
        def __init__(self):
            self.arrived = 0

        def arrive(self) -> None:
            self.arrived += 1

        def count(self) -> int:
            return self.arrived

    @ray.remote
    def hold(barrier) -> dict:
        ray.get(barrier.arrive.remote())
        deadline = time.time() + 60
        while ray.get(barrier.count.remote()) < n and time.time() < deadline:
            time.sleep(0.1)
        return {"node_id": ray.get_runtime_context().get_node_id(),
                "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
                "seen": ray.get(barrier.count.remote())}

    barrier = Barrier.remote()
    return ray.get([hold.options(**resources).remote(barrier) for _ in range(n)])


def placement(root: str) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from raygan.cluster.pipeline import run_train
    from raygan.cluster.runtime import member_resources

    t0 = time.time()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 4, "num_gpus": 1, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1, num_gpus=1) for _ in range(3)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    try:
        started = time.time() - t0
        head = ray.get_runtime_context().get_node_id()
        whole = run_train(_cfg(root, "whole", "cluster.gpus_per_member=1"))
        for node in workers:  # one GPU left: the head's
            cluster.remove_node(node)
        quarter_cfg = _cfg(root, "quarter", "cluster.gpus_per_member=0.25")
        quarter = run_train(quarter_cfg)
        together = _held_together(member_resources(quarter_cfg), 4)
        return {"head": head, "cluster_start_s": round(started, 1),
                "gpu_nodes": 4, "whole": _members(whole), "quarter": _members(quarter),
                "together": together, "seconds": round(time.time() - t0, 1)}
    finally:
        ray.shutdown()
        cluster.shutdown()


def wide(root: str) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from raygan.cluster.pipeline import run_train
    from raygan.config import ConfigError

    t0 = time.time()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    try:
        started = time.time() - t0
        group = ["cluster.workers_per_member=2", "data.grouping=null", "data.classes={d: [0, 1, 2]}",
                 "ensemble.members=1", "train.steps=300", "train.checkpoint_every=100", "train.log_every=100",
                 "train.batch_size=32"]
        try:  # the same member with a local run folder: refused before any work
            run_train(_cfg(root, "local", *group))
            refusal = None
        except ConfigError as err:
            refusal = str(err)
        uri = f"file://{root}"  # shared storage: the simulated nodes are this machine
        results: dict = {}
        wide_cfg = _cfg(uri, "wide", *group)
        wide_job = threading.Thread(target=lambda: results.update(wide=run_train(wide_cfg)))
        wide_job.start()
        # The other job starts once the group trains (its first checkpoint is stored): its member tasks
        # get the one CPU the group leaves.
        stored = Path(root) / wide_cfg.output.experiment / "wide" / "members" / "d" / "0" / "checkpoint.pt"
        deadline = time.time() + 180
        while not stored.exists() and time.time() < deadline and wide_job.is_alive():
            time.sleep(0.1)
        group_up = time.time() if stored.exists() else None
        results["solo"] = run_train(_cfg(uri, "solo", "cluster.members_per_task=1", "train.steps=40"))
        wide_job.join()
        [member] = results["wide"]["members"]
        return {"cluster_start_s": round(started, 1), "refusal": refusal, "group_up": group_up,
                "wide": {k: member.get(k) for k in ("status", "workers", "task_started", "task_finished",
                                                    "workers_per_member")},
                "solo": _members(results["solo"]), "seconds": round(time.time() - t0, 1)}
    finally:
        ray.shutdown()
        cluster.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _autoscaling_config(gcs_address: str) -> dict:
    """Ray's fake_multinode provider (example.yaml in Ray's sources; not shipped in the wheel)."""
    return {
        "cluster_name": "raygan-fake", "max_workers": 2, "upscaling_speed": 1.0,
        "idle_timeout_minutes": 0.1,
        "provider": {"type": "fake_multinode", "use_node_id_as_ip": True,
                     "disable_node_updaters": True, "disable_launch_config_check": True,
                     "gcs_address": gcs_address},
        "available_node_types": {
            "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            "gpu_worker": {"resources": {"CPU": 1, "GPU": 1}, "node_config": {},
                           "min_workers": 0, "max_workers": 2}},
        "head_node_type": "ray.head.default", "auth": {}, "docker": {},
        "initialization_commands": [], "setup_commands": [], "head_setup_commands": [],
        "worker_setup_commands": [], "head_start_ray_commands": [], "worker_start_ray_commands": [],
        "file_mounts": {}, "cluster_synced_files": [], "file_mounts_sync_continuously": False,
        "rsync_exclude": [], "rsync_filter": []}


def autoscale(root: str) -> dict:
    # The monitor (the autoscaler) is a child of this process and reads these.
    os.environ.update({"RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"})
    import ray
    from ray.autoscaler._private.fake_multi_node.node_provider import FAKE_HEAD_NODE_ID
    from ray.cluster_utils import Cluster

    from raygan.cluster.pipeline import run_train

    t0 = time.time()
    port = _free_port()
    ip = ray.util.get_node_ip_address()
    config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    yaml.safe_dump(_autoscaling_config(f"{ip}:{port}"), config)
    config.close()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "gcs_server_port": port,
        "autoscaling_config": config.name,
        "env_vars": {"RAY_OVERRIDE_NODE_ID_FOR_TESTING": FAKE_HEAD_NODE_ID}})
    ray.init(address=cluster.address)
    timeline: list[tuple[float, int]] = []  # (seconds, alive nodes with a GPU)
    stop = threading.Event()

    def gpu_nodes() -> int:
        return sum(1 for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU", 0) > 0)

    def watch() -> None:
        while not stop.is_set():
            timeline.append((round(time.time() - t0, 2), gpu_nodes()))
            time.sleep(0.5)

    try:
        head = ray.get_runtime_context().get_node_id()
        at_submit = gpu_nodes()
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        submitted = time.time() - t0
        result = run_train(_cfg(root, "autoscale", "cluster.gpus_per_member=1"))
        trained = time.time() - t0
        deadline = time.time() + 90
        while gpu_nodes() and time.time() < deadline:  # idle workers go after idle_timeout_minutes
            time.sleep(1)
        drained = time.time() - t0
        stop.set()
        watcher.join()
        timeline.append((round(time.time() - t0, 2), gpu_nodes()))
        return {"head": head, "gpu_nodes_at_submit": at_submit, "submitted_s": round(submitted, 1),
                "trained_s": round(trained, 1), "drained_s": round(drained, 1),
                "gpu_nodes_after": gpu_nodes(), "timeline": timeline,
                "members": _members(result), "seconds": round(time.time() - t0, 1)}
    finally:
        stop.set()
        ray.shutdown()
        cluster.shutdown()
        os.unlink(config.name)


if __name__ == "__main__":
    scenario, root = sys.argv[1], sys.argv[2]
    out = {"placement": placement, "autoscale": autoscale, "wide": wide}[scenario](root)
    print("RESULT " + json.dumps(out), flush=True)
