"""Connect to a Ray cluster (--address / RAY_ADDRESS) or start a local one, the same path for both."""
from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path
from typing import Optional

import ray

from raygan import signals
from raygan.cluster.join import bounded_join, check_reachable
from raygan.config import Config, ConfigError, from_dict
from raygan.secrets import redact

logger = logging.getLogger(__name__)


def connect(cfg: Config, address: Optional[str] = None) -> dict:
    """Join the configured cluster, or start a local Ray sized to this machine; idempotent. Then the
    GPUs that cluster.gpus_per_member asks for are checked against the cluster (check_gpus), before
    the job writes or submits anything, and so is a data-parallel member's group (check_workers)."""
    if not ray.is_initialized():
        address = address or cfg.cluster.address or os.environ.get("RAY_ADDRESS")
        if address:
            check_reachable(address)  # nothing there, or an HTTP server: refused in seconds
        before = signal.getsignal(signal.SIGTERM)  # ray.init replaces it (raygan.signals)
        try:
            if address:
                with bounded_join(address):
                    # No runtime_env here: inside `ray job submit` it would replace the job's working_dir.
                    ray.init(address=address)
            else:
                ray.init(num_cpus=cfg.cluster.num_cpus, include_dashboard=False,
                         runtime_env={"env_vars": {"PYTHONUNBUFFERED": "1"}})
        finally:
            signals.restore(before)
    check_gpus(cfg)
    check_workers(cfg)
    return ray.cluster_resources()


# Where Ray's cluster launcher (`ray up`) puts the cluster config on the head node; the head's
# autoscaler runs from it. A job's driver runs on the head (`ray job submit`), so it can read it.
AUTOSCALER_CONFIG = "~/ray_bootstrap_config.yaml"
# Seconds to look for the autoscaler's first status record on a cluster that has just started.
_AUTOSCALER_GRACE_S = 10.0


def _gpu_node_types(config: dict) -> list[str]:
    types = config.get("available_node_types") or {}
    return sorted(name for name, spec in types.items() if isinstance(spec, dict)
                  and float((spec.get("resources") or {}).get("GPU", 0) or 0) > 0
                  and int(spec.get("max_workers", 1) or 0) > 0)


def _status_node_types(text: str) -> Optional[list[str]]:
    """The node lines of `ray status` (its Active and Pending blocks), None before the head's monitor
    has written a report."""
    if "Node status" not in text:
        return None
    lines, block = [], None
    for line in text.splitlines():
        head = line.strip()
        if head in ("Active:", "Pending:", "Idle:"):
            block = head
        elif head.endswith(":") or head.startswith("---") or not head:
            block = None if head.endswith(":") else block
        elif block and not head.startswith("("):  # "(no pending nodes)"
            lines.append(head)
    return lines


def _autoscaler_running() -> bool:
    """Whether an autoscaler that launches nodes runs, from `ray status` (Ray's public command; it
    prints the report the head's monitor writes on every cluster).

    The report names the node type of every node. A local Ray, or a cluster started by hand with
    `ray start`, runs Ray's read-only provider, which never launches a node and names each type
    node_<node id>; any other type name (`ray up`, KubeRay, an autoscaling config) is an autoscaler
    that can add nodes. A status command that fails counts as no autoscaler (the GPU check then
    refuses at once, naming the fix) and is logged.
    """
    import re
    import shutil
    import subprocess
    import sys

    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    command = [ray_cli, "status", f"--address={ray.get_runtime_context().gcs_address}"] if ray_cli \
        else [sys.executable, "-m", "ray.scripts.scripts", "status",
              f"--address={ray.get_runtime_context().gcs_address}"]
    deadline = time.monotonic() + _AUTOSCALER_GRACE_S
    while True:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=30)
            nodes = _status_node_types(done.stdout) if done.returncode == 0 else None
        except (OSError, subprocess.SubprocessError) as err:
            logger.info(f"cluster: `ray status` failed ({redact(str(err))}); taking it as no autoscaler")
            return False
        if nodes is not None:
            return any(not re.search(r"\bnode_[0-9a-f]+\b", line) for line in nodes)
        if time.monotonic() >= deadline:  # no report yet: a cluster that has just started, no autoscaler
            return False
        time.sleep(0.5)


def autoscaler_gpu_types(path: str = AUTOSCALER_CONFIG) -> list[str] | None:
    """What an autoscaler could add GPUs from: the GPU node types (resources.GPU > 0, max_workers > 0)
    of the autoscaler's config where this machine holds it, ["(node types unknown)"] for a running
    autoscaler whose config is elsewhere, [] for an autoscaler config with no GPU type, and None for
    a cluster without an autoscaler (started by hand with `ray start`, a local Ray)."""
    import yaml

    file = Path(path).expanduser()
    try:
        config = yaml.safe_load(file.read_text()) if file.is_file() else None
    except (OSError, yaml.YAMLError):
        config = None
    if not _autoscaler_running():
        return None
    if isinstance(config, dict):
        return _gpu_node_types(config)
    return ["(node types unknown)"]


def _largest_gpu_node() -> float:
    return max((n["Resources"].get("GPU", 0.0) for n in ray.nodes() if n.get("Alive")), default=0.0)


def alive_nodes() -> int:
    """How many nodes of the cluster are alive now."""
    return sum(1 for n in ray.nodes() if n.get("Alive"))


def check_gpus(cfg: Config) -> None:
    """Members that ask for GPUs (cluster.gpus_per_member > 0) need a node that has that many.

    None there and no autoscaler that can add them (autoscaler_gpu_types): refused at once, instead
    of tasks that wait forever. With such an autoscaler: the GPUs are requested from it
    (ray.autoscaler.sdk.request_resources) and the job waits up to cluster.wait_timeout_s, saying
    what it waits for.
    """
    want = cfg.cluster.gpus_per_member
    if not want or _largest_gpu_node() >= want:
        return
    have = _largest_gpu_node()
    types = autoscaler_gpu_types()
    if not types:
        why = "no autoscaler" if types is None else "an autoscaler with no GPU node type"
        raise ConfigError(f"cluster.gpus_per_member={want:g} asks for GPUs, but the cluster's largest "
                          f"node has {have:g} GPU and {why} can add one; set cluster.gpus_per_member=0 "
                          "(CPU members) or join a cluster with GPUs")
    from ray.autoscaler.sdk import request_resources

    timeout_s = cfg.cluster.wait_timeout_s
    logger.info(f"cluster: waiting up to {timeout_s:g}s (cluster.wait_timeout_s) for the autoscaler to "
                f"add a node with {max(want, 1):g} GPU (cluster.gpus_per_member={want:g}; GPU node "
                f"types: {', '.join(types)})")
    request_resources(bundles=[{"GPU": max(want, 1.0)}])
    deadline = time.monotonic() + timeout_s
    try:
        while _largest_gpu_node() < want:
            if time.monotonic() >= deadline:
                raise ConfigError(f"no node with {max(want, 1):g} GPU joined within cluster."
                                  f"wait_timeout_s={timeout_s:g}s (GPU node types: {', '.join(types)}); "
                                  "check the autoscaler's log (ray status), raise cluster."
                                  "wait_timeout_s, or set cluster.gpus_per_member=0")
            time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
    finally:
        request_resources(bundles=[])  # the tasks' own demand keeps the nodes from here on
    logger.info(f"cluster: {ray.cluster_resources().get('GPU', 0):g} GPU now")


def check_workers(cfg: Config) -> None:
    """A data-parallel member (cluster.workers_per_member > 1) against the cluster, before any work: on
    several nodes its workers share the run folder, so a local one is refused; and a group the cluster
    could never hold (its CPUs or GPUs summed over every node) is refused when no autoscaler can add
    nodes, instead of a placement group that waits forever. With an autoscaler the group's placement
    group is the demand it scales for."""
    workers = cfg.cluster.workers_per_member
    if workers == 1:
        return
    from raygan.runs.storage import is_uri

    nodes = alive_nodes()
    if nodes > 1 and not is_uri(cfg.output.root):
        raise ConfigError(f"cluster.workers_per_member={workers} on a cluster of {nodes} nodes needs a run "
                          f"folder every node reaches, and output.root {cfg.output.root!r} is a local "
                          "folder; set output.root to shared storage (s3://bucket/prefix, or file:///mnt/"
                          "shared)")
    asked, have = member_resources(cfg), ray.cluster_resources()
    short = [f"{workers * asked[key]:g} {kind} ({workers} x cluster.{field})"
             f" but it has {have.get(kind, 0):g}"
             for key, kind, field in (("num_cpus", "CPU", "cpus_per_member"), ("num_gpus", "GPU", "gpus_per_member"))
             if asked[key] and workers * asked[key] > have.get(kind, 0) + 1e-9]
    if short and not _autoscaler_running():
        raise ConfigError(f"cluster.workers_per_member={workers}: a member's group needs {'; '.join(short)}, "
                          "and no autoscaler can add nodes; lower cluster.workers_per_member (or "
                          "cluster.cpus_per_member / gpus_per_member) or join a larger cluster")
    logger.info(f"cluster: each member trains as {workers} Ray Train workers ({asked['num_cpus']:g} CPU, "
                f"{asked['num_gpus']:g} GPU each)" + (f"; waiting for the autoscaler: {'; '.join(short)}"
                                                      if short else ""))


def trains_members(job: str, cfg: Config) -> bool:
    """The job trains GAN members (where train.device applies)."""
    return job in ("train", "pipeline") or (job == "sweep" and cfg.sweep.target == "gan")


def check_devices(cfg: Config, job: str) -> None:
    """The GPUs a job asks for, checked before it starts Ray or submits a task (the job's pre-flight).

    With Ray not started yet, a local Ray would start on this machine: its GPUs are the ones torch sees,
    so cluster.gpus_per_member above them, or train.device=cuda without one, is refused before Ray
    starts. On a cluster joined already (check_gpus judged cluster.gpus_per_member there),
    train.device=cuda is refused where members would get no GPU. A raw worker traceback otherwise."""
    fix = "set train.device=auto (CUDA where there is one) or cpu"
    if not ray.is_initialized():
        import torch

        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        want = cfg.cluster.gpus_per_member
        if want and want > have:
            raise ConfigError(f"cluster.gpus_per_member={want:g} asks for GPUs, but this machine has {have} "
                              "GPU and no cluster is named (a local Ray would start here); set "
                              "cluster.gpus_per_member=0 (CPU members) or join a cluster with GPUs "
                              "(--address / RAY_ADDRESS)")
        workers, cpus = cfg.cluster.workers_per_member, cfg.cluster.num_cpus or os.cpu_count() or 1
        if workers > 1 and trains_members(job, cfg) and workers * cfg.cluster.cpus_per_member > cpus:
            raise ConfigError(f"cluster.workers_per_member={workers} x cluster.cpus_per_member="
                              f"{cfg.cluster.cpus_per_member:g} CPUs, but a local Ray here would have {cpus}, "
                              "and no cluster is named; lower cluster.workers_per_member (or cpus_per_member) "
                              "or join a cluster (--address / RAY_ADDRESS)")
        if workers > 1 and want and workers * want > have and trains_members(job, cfg):
            raise ConfigError(f"cluster.workers_per_member={workers} x cluster.gpus_per_member={want:g} GPUs, "
                              f"but this machine has {have} GPU and no cluster is named; lower cluster."
                              "workers_per_member or join a cluster with GPUs (--address / RAY_ADDRESS)")
        if cfg.train.device == "cuda" and not have and trains_members(job, cfg):
            raise ConfigError("train.device=cuda, but torch sees no CUDA device on this machine and no "
                              f"cluster is named (a local Ray would start here); {fix}, or join a cluster "
                              "with GPUs (--address / RAY_ADDRESS)")
    elif cfg.train.device == "cuda" and trains_members(job, cfg) and not member_resources(cfg)["num_gpus"]:
        raise ConfigError(f"train.device=cuda, but members get no GPU on this cluster (cluster."
                          f"gpus_per_member={cfg.cluster.gpus_per_member}, and the cluster has "
                          f"{ray.cluster_resources().get('GPU', 0):g} GPU now); {fix}, or set "
                          "cluster.gpus_per_member=1")


def member_resources(cfg: Config) -> dict:
    """num_cpus / num_gpus of one (class, member) task: a GPU each where the cluster has GPUs.

    null looks at the GPUs the cluster has now: on an autoscaling cluster whose GPU workers start at
    zero, set cluster.gpus_per_member (1, or 0.25 to pack four) so that members ask for GPUs and the
    autoscaler adds the nodes.
    """
    gpus = cfg.cluster.gpus_per_member  # a fraction above 1 was refused at load (raygan.config)
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    return {"num_cpus": cfg.cluster.cpus_per_member, "num_gpus": gpus}


def task_setup(cfg_dict: dict) -> Config:
    """The first lines of every raygan task: its config, raygan's log lines, torch's threads (Ray
    leaves a task with num_cpus=2 on one thread), and the run's URI, so that a mirror path handed to the
    task is known (raygan.runs.storage names mirrors by a digest)."""
    import torch

    from raygan import logs
    from raygan.runs.storage import is_uri, join_uri, mirror_path

    logs.configure()
    cfg = from_dict(cfg_dict)
    if is_uri(cfg.output.root):
        mirror_path(join_uri(cfg.output.root, cfg.output.experiment, cfg.output.run))
    torch.set_num_threads(max(1, int(cfg.cluster.cpus_per_member)))
    return cfg
