"""Connect to a Ray cluster (--address / RAY_ADDRESS) or start a local one, the same path for both."""
from __future__ import annotations

import os
from typing import Optional

import ray

from raygan.config import Config


def connect(cfg: Config, address: Optional[str] = None) -> dict:
    """Join the configured cluster, or start a local Ray sized to this machine; idempotent."""
    if not ray.is_initialized():
        address = address or cfg.cluster.address or os.environ.get("RAY_ADDRESS")
        if address:
            # No runtime_env here: inside `ray job submit` it would replace the job's working_dir.
            ray.init(address=address)
        else:
            ray.init(num_cpus=cfg.cluster.num_cpus, include_dashboard=False,
                     runtime_env={"env_vars": {"PYTHONUNBUFFERED": "1"}})
    return ray.cluster_resources()


def member_resources(cfg: Config) -> dict:
    """num_cpus / num_gpus of one (class, member) task: a GPU each where the cluster has GPUs."""
    gpus = cfg.cluster.gpus_per_member
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    return {"num_cpus": cfg.cluster.cpus_per_member, "num_gpus": gpus}
