"""Connect to a Ray cluster (--address / RAY_ADDRESS) or start a local one, the same path for both."""
from __future__ import annotations

import os
from typing import Optional

import ray

from raygan.config import Config, ConfigError, from_dict


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
    """num_cpus / num_gpus of one (class, member) task: a GPU each where the cluster has GPUs.

    null looks at the GPUs the cluster has now: on an autoscaling cluster whose GPU workers start at
    zero, set cluster.gpus_per_member (1, or 0.25 to pack four) so that members ask for GPUs and the
    autoscaler adds the nodes.
    """
    gpus = cfg.cluster.gpus_per_member
    if gpus is None:
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    elif gpus > 1 and gpus != int(gpus):
        # Ray accepts fractions of one GPU only: 1.5 GPUs cannot be scheduled.
        raise ConfigError(f"cluster.gpus_per_member={gpus:g}: above 1 it must be a whole number of "
                          "GPUs; use a fraction below 1 (0.5, 0.25) to share a GPU or 1, 2, ...")
    return {"num_cpus": cfg.cluster.cpus_per_member, "num_gpus": gpus}


def task_setup(cfg_dict: dict) -> Config:
    """The first lines of every raygan task: its config, raygan's log lines, and torch's threads (Ray
    leaves a task with num_cpus=2 on one thread)."""
    import torch

    from raygan import logs

    logs.configure()
    cfg = from_dict(cfg_dict)
    torch.set_num_threads(max(1, int(cfg.cluster.cpus_per_member)))
    return cfg
