"""Members wider than one GPU (cluster.workers_per_member > 1): each member is a Ray Train V2
``TorchTrainer`` whose workers train it together (raygan.gan.parallel: DistributedDataParallel, gloo on
CPUs and NCCL on GPUs, synchronised batch norms, the step's batch sharded from the member's own seeded
stream).

Every worker runs the same code as a member task, raygan.ensemble.training.train_units on the member's
unit, with its place in the group: rank 0 trains into the run folder (checkpoint, generator, losses,
sample grid: the same member folder as any member's) and returns the manifest entries; every other
rank resumes from the same checkpoint and trains in step, writing into a throw-away copy of the
member folder, so no file of the run has two writers and every rank takes the same decisions
(divergence retries included). A worker or node lost: Ray Train restarts the group
(FailureConfig.max_failures = cluster.max_retries) and the member resumes from its last checkpoint.

Scheduling: the task that builds and fits the trainer holds no CPU and no GPU (it only waits), and Ray
Train reserves a worker group as one placement group, all of its bundles or none. So a member never
holds part of the GPUs it needs while waiting for the rest, and no pending member (wide or not) can
hold GPUs that another is waiting for: wide members queue until a whole group fits, beside the
one-process member tasks of other jobs, and an autoscaler sees the placement group's demand.
"""
from __future__ import annotations

import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Optional

import ray
import torch
import torch.distributed as dist
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer, get_device

from raygan.cluster.runtime import member_resources, task_setup
from raygan.config import Config
from raygan.ensemble.training import head_unit, train_units
from raygan.gan.parallel import DataParallel
from raygan.runs import RunFolder
from raygan.runs.storage import is_uri, join_uri


def _shadow(run: RunFolder, folders: list[tuple[str, int]]) -> RunFolder:
    """A throw-away run folder holding a copy of each member folder of ``run`` (its checkpoint and
    attempts), where a rank other than 0 resumes and writes."""
    shadow = RunFolder(Path(tempfile.mkdtemp(prefix="raygan-rank-")))
    for name, member in folders:
        if (real := run.member_dir(name, member)).is_dir():
            shutil.copytree(real, shadow.member_dir(name, member), dirs_exist_ok=True)
    return shadow


def _device(cfg: Config) -> torch.device:
    if cfg.train.device != "cpu" and torch.cuda.is_available() and ray.get_gpu_ids():
        return get_device()  # the GPU Ray Train gave this worker
    return torch.device("cpu")


def _worker(config: dict) -> None:
    """One worker of a member's group (Ray Train's train_loop_per_worker)."""
    cfg = task_setup(config["cfg"])
    group = DataParallel.current()
    run = RunFolder.at(config["run"])
    folders = [(name, t) for _, name, t in config["heads"]]
    for name, t in folders:
        run.pull(run.member_dir(name, t))  # a URI run: resume from the stored checkpoint
    own = run if group.rank == 0 else _shadow(run, folders)
    by_name = dict(zip(config["names"], ray.get(config["tensors"])))
    none = [None] * len(config["heads"])
    units = [head_unit(cfg, own, h, by_name, w, config["classes"], p)
             for h, w, p in zip(config["heads"], config["weights"] or none, config["privacy"] or none)]
    device = _device(cfg)
    made = train_units(units, cfg, own, pack=False, device=device, group=group)
    where = {"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname(),
             "gpu_ids": [str(g) for g in ray.get_gpu_ids()], "device": str(device)}
    workers: list = [None] * group.world_size
    dist.all_gather_object(workers, where)
    if group.rank != 0:
        shutil.rmtree(own.path, ignore_errors=True)
    entries = [{**e, "node_id": workers[0]["node_id"], "hostname": workers[0]["hostname"],
                "gpu_ids": workers[0]["gpu_ids"], "workers_per_member": group.world_size, "workers": workers}
               for entries in made for e in entries]
    if group.rank == 0:  # Ray Train V2 keeps a report's metrics only with a checkpoint: a mailbox instead
        ray.get(config["mailbox"].put.remote(entries))


@ray.remote(num_cpus=0)
class _Mailbox:
    """Where rank 0 leaves the member's entries for the task that fit the trainer."""

    def __init__(self):
        self.entries = None

    def put(self, entries: list[dict]) -> None:
        self.entries = entries

    def get(self) -> list[dict] | None:
        return self.entries


def _storage(run: RunFolder) -> str:
    """Where Ray Train keeps the group's run state (no checkpoint of its own: the member's is in the
    run folder): beside the run on a URI run folder, which every node reaches; else this node's tmp."""
    if is_uri(run.location):
        return join_uri(run.location, "ray_train")
    return str(Path(tempfile.gettempdir()) / "raygan-ray-train")


@ray.remote(num_cpus=0, num_gpus=0)
def train_wide_task(cfg_dict: dict, run_location: str, heads: list[list], data_weights: Optional[list],
                    classes: Optional[list[str]], names: list[str], boxed: list,
                    privacy: Optional[list] = None) -> list[dict]:
    """Fit one member's TorchTrainer (its ``heads``: one (class index, class name, member)); its
    entries, rank 0's. ``boxed``: the object refs of the tensors its unit reads, named by ``names``,
    inside a list so that Ray hands the refs (not the tensors) to this task: each worker gets them
    from the object store itself. ``privacy``: the unit's DP-SGD settings (MemberPrivacy.to_dict, from
    the run's plan) in a list, or None. Holds no resources: the workers' placement group does."""
    cfg = task_setup(cfg_dict)
    run = RunFolder.at(run_location)
    t0, started = time.perf_counter(), time.time()
    resources = member_resources(cfg)
    gpus = resources["num_gpus"]
    [(_, name, t)] = heads
    mailbox = _Mailbox.remote()
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"cfg": cfg_dict, "run": run_location, "heads": heads, "weights": data_weights,
                           "classes": classes, "names": names, "tensors": boxed, "mailbox": mailbox,
                           "privacy": privacy},
        scaling_config=ScalingConfig(num_workers=cfg.cluster.workers_per_member, use_gpu=gpus > 0,
                                     resources_per_worker={"CPU": resources["num_cpus"], "GPU": gpus}),
        run_config=RunConfig(name=f"raygan-{name}-{t}-{uuid.uuid4().hex[:8]}", storage_path=_storage(run),
                             failure_config=FailureConfig(max_failures=cfg.cluster.max_retries)))
    trainer.fit()
    entries = ray.get(mailbox.get.remote())
    ray.kill(mailbox)
    timing = {"task_seconds": round(time.perf_counter() - t0, 3), "task_started": round(started, 3),
              "task_finished": round(time.time(), 3)}
    return [{**e, **timing} for e in entries]


def submit_wide(cfg: Config, run: RunFolder, *, heads: list[tuple[int, str, int]], names: list[str],
                refs: list, data_weights: Optional[list] = None, classes: Optional[list[str]] = None,
                privacy: Optional[list] = None):
    """One member (``heads``: one head) as a data-parallel group (train_wide_task, named
    train_wide:<class>/<member>), reading the object refs ``refs`` named by ``names``, with its DP-SGD
    settings ``privacy`` (privacy on); its result: the member's entries (raygan.cluster.tasks.submit_units
    calls it)."""
    if len(heads) != 1:
        raise ValueError(f"a data-parallel member trains one unit, not {len(heads)}")
    return train_wide_task.options(max_retries=cfg.cluster.max_retries,
                                   name=f"train_wide:{heads[0][1]}/{heads[0][2]}").remote(
        cfg.to_dict(), run.location, [list(h) for h in heads], data_weights,
        None if classes is None else list(classes), names, list(refs), privacy)
