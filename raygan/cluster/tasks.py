"""Remote wrappers: one Ray task per (class, member) GAN, and the boosting-weights task.

Tasks train on the device Ray assigned them and write into the run folder; a retried task (worker or
node lost) resumes from the member's last checkpoint, so a crash costs at most one checkpoint interval.
Only the driver writes the manifest and MLflow: tasks return what they did.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Callable, Optional

import ray
import torch

from raygan.config import Config, from_dict
from raygan.ensemble import train_member
from raygan.runfolder import RunFolder


def _device_for_task() -> torch.device:
    # Ray sets CUDA_VISIBLE_DEVICES to the GPUs it assigned, so the task's GPU is always cuda:0.
    if ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda:0")
    return torch.device("cpu")


@ray.remote
def train_member_task(data: torch.Tensor, cfg_dict: dict, run_path: str, class_name: str,
                      class_index: int, member: int,
                      data_weights: Optional[torch.Tensor] = None) -> dict:
    """Train (or resume) one member; `data` arrives as the class's shared object-store tensor."""
    cfg = from_dict(cfg_dict)
    torch.set_num_threads(max(1, int(cfg.cluster.cpus_per_member)))
    t0 = time.perf_counter()
    entry = train_member(data, cfg, RunFolder(Path(run_path)), class_name=class_name,
                         class_index=class_index, member=member, data_weights=data_weights,
                         device=_device_for_task())
    ctx = ray.get_runtime_context()
    entry.update({"node_id": ctx.get_node_id(), "hostname": socket.gethostname(),
                  "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "worker_pid": os.getpid(),
                  "task_seconds": round(time.perf_counter() - t0, 3)})
    return entry


def submit_member(data_ref, cfg: Config, run: RunFolder, resources: dict, *, class_name: str,
                  class_index: int, member: int, data_weights=None):
    return train_member_task.options(**resources, max_retries=cfg.cluster.max_retries,
                                     name=f"train_member:{class_name}/{member}").remote(
        data_ref, cfg.to_dict(), str(run.path), class_name, class_index, member, data_weights)


def wait_all(refs: dict, on_done: Callable[[object, dict], None]) -> list[dict]:
    """Collect task results as they finish (never waiting on the slowest to report the others)."""
    pending, results = list(refs), []
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        entry = ray.get(ready[0])
        on_done(refs[ready[0]], entry)
        results.append(entry)
    return results
