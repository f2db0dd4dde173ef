"""Remote wrappers: one Ray task per (class, member) GAN or per pack of them, the pack probe and the pack
size it decides (``pack_size_on_ray``, for the independent members and the boosting driver alike).

Tasks train on the device Ray assigned them and write into the run folder; a retried task (worker or
node lost) resumes from the member's last checkpoint, so a crash costs at most one checkpoint interval.
A pack task (cluster.members_per_task > 1) trains its members as one packed model (per-class members,
a boosting step's class members with their data weights, or conditional members); retried, every
member it holds resumes from its own checkpoint. A member that diverges is retried inside its task
with its next seed (raygan.ensemble.members' divergence policy).
A task opens the run folder by its location (a path, or a URI whose checkpoints are uploaded as they are
written): it pulls its member folder first, so a retry on another node resumes from storage.
Only the driver writes the manifest and MLflow: tasks return what they did.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, Optional

import ray
import torch

from raygan.cluster.packing import choose_pack_size, pack_fit
from raygan.cluster.runtime import task_setup
from raygan.config import Config
from raygan.ensemble.training import LABELS, head_unit, train_units
from raygan.runs import RunFolder

logger = logging.getLogger(__name__)


def device_for_task(requested: str, gpu_ids: list, cuda_available: bool) -> torch.device:
    """train.device for a task holding the Ray GPU ids ``gpu_ids``.

    Ray sets CUDA_VISIBLE_DEVICES to the GPUs it assigned, so the task's GPU is always cuda:0. With
    auto, a task without a GPU, or on a node whose torch sees no CUDA (a logical GPU, a CPU-only
    torch), trains on the CPU; the Ray-assigned GPU id is still recorded in the manifest.
    """
    if requested == "cpu":
        return torch.device("cpu")
    if gpu_ids and cuda_available:
        return torch.device("cuda:0")
    if requested == "cuda":
        raise RuntimeError(f"train.device=cuda but this task has no usable CUDA device (Ray GPU ids "
                           f"{gpu_ids or 'none'}, torch.cuda.is_available()={cuda_available}); set "
                           "cluster.gpus_per_member > 0 on a cluster with GPUs, or train.device=auto")
    return torch.device("cpu")


def _device_for_task(requested: str = "auto") -> torch.device:
    return device_for_task(requested, [str(g) for g in ray.get_gpu_ids()], torch.cuda.is_available())


def _member_task(cfg_dict: dict, run_location: str, folders: list[tuple[str, int]],
                 train: Callable[[Config, RunFolder, torch.device], list[dict]]) -> list[dict]:
    """What every training task does around its members: open the run folder, resume from storage,
    train on the device Ray assigned (``train(cfg, run, device)``), upload, and say where it ran.
    ``folders``: the (folder class, member) of each member folder the task writes."""
    cfg = task_setup(cfg_dict)
    t0, started = time.perf_counter(), time.time()
    gpu_ids = [str(g) for g in ray.get_gpu_ids()]
    run = RunFolder.at(run_location)
    for folder_class, member in folders:
        # A URI run: resume from the last uploaded checkpoint, whichever node ran it.
        run.pull(run.member_dir(folder_class, member))
    entries = train(cfg, run, device_for_task(cfg.train.device, gpu_ids, torch.cuda.is_available()))
    where = _placement(gpu_ids, t0, started)
    return [{**e, **where} for e in entries]


@ray.remote
def train_units_task(cfg_dict: dict, run_location: str, pack: Optional[int], heads: list[list],
                     data_weights: Optional[list], classes: Optional[list[str]], names: list[str],
                     privacy: Optional[list], *tensors: torch.Tensor) -> list[dict]:
    """Train (or resume) the units ``heads`` ((class index, class name, member); the class name
    CONDITIONAL_DIR for a conditional member, which covers every class of ``classes``) with
    raygan.ensemble.training.train_units: as one pack task when ``pack`` is its number, else the one
    unit alone. ``tensors`` are the object-store tensors the units read, named by ``names`` (a class's
    training data by its name; CONDITIONAL_DIR and LABELS for the training split and its labels); top-
    level arguments, so that Ray hands each over once however many members use it. ``data_weights``:
    per unit its boosting data weights or None (uniform), or None for all. ``privacy``: likewise, per
    unit its DP-SGD settings (MemberPrivacy.to_dict, from the run's plan), or None for all.

    Returns every unit's entries, in the order of ``heads``: complete, or diverged past its retries (a
    diverged member does not stop the others); a pack task's entries say which pack they trained in.
    """
    by_name = dict(zip(names, tensors))
    weights, dp = data_weights or [None] * len(heads), privacy or [None] * len(heads)

    def train(cfg: Config, run: RunFolder, device: torch.device) -> list[dict]:
        units = [head_unit(cfg, run, h, by_name, w, classes, p) for h, w, p in zip(heads, weights, dp)]
        made = train_units(units, cfg, run, pack=pack is not None, device=device)
        extra = {} if pack is None else {"pack": pack}
        return [{**e, **extra} for entries in made for e in entries]

    return _member_task(cfg_dict, run_location, [(name, t) for _, name, t in heads], train)


@ray.remote
def pack_fit_task(data: torch.Tensor, cfg_dict: dict, gpu_share: float,
                  labels: Optional[torch.Tensor] = None) -> int:
    """raygan.cluster.packing.pack_fit on a worker with a pack's resources (its GPU when it has one,
    as the packs will have): how many members of ``data``'s size (with ``labels``: conditional
    members) a pack may hold."""
    cfg = task_setup(cfg_dict)
    return pack_fit(cfg, data, _device_for_task(cfg.train.device), gpu_share, labels=labels)


def pack_size_on_ray(cfg: Config, grid: list, resources: dict, data_refs: dict, sizes: dict,
                     labels_ref=None) -> int:
    """cluster.members_per_task, or auto's choice for the run's whole ``grid`` of members (or of
    classes, for boosting's lockstep), done or not, so that a rerun chooses as the first run did.
    A GPU's fit is probed by a task holding what a pack will hold, on the largest class still to
    train (its members need the most memory), or for conditional members on the whole training
    split and its labels (``labels_ref``). A rerun on a cluster of another size may still choose
    another size: its resumed members then agree with the first run's only to float rounding."""
    def measure_fit() -> int:
        biggest = max(data_refs, key=lambda name: sizes[name])
        share = resources["num_gpus"] if resources["num_gpus"] < 1 else 1.0
        return ray.get(pack_fit_task.options(**resources, max_retries=cfg.cluster.max_retries,
                                             name="pack_fit").remote(
            data_refs[biggest], cfg.to_dict(), share, labels_ref))

    if cfg.cluster.members_per_task == 1:
        return 1  # today's one task per member, without asking the cluster anything
    size, why = choose_pack_size(cfg, len(grid), resources, ray.cluster_resources(), measure_fit)
    logger.info(f"members per task: {size} ({why})")
    return size


def _placement(gpu_ids: list[str], t0: float, started: float) -> dict:
    """Where and when a task ran, for the manifest."""
    ctx = ray.get_runtime_context()
    return {"node_id": ctx.get_node_id(), "hostname": socket.gethostname(), "gpu_ids": gpu_ids,
            "worker_pid": os.getpid(), "task_seconds": round(time.perf_counter() - t0, 3),
            "task_started": round(started, 3), "task_finished": round(time.time(), 3)}


def pack_name(heads: list[tuple[int, str, int]]) -> str:
    """The Ray task name of a pack: train_pack:<class>/<member>,<class>/<member>,..."""
    return "train_pack:" + ",".join(f"{name}/{t}" for _, name, t in heads)


def submit_units(cfg: Config, run: RunFolder, resources: dict, *, heads: list[tuple[int, str, int]],
                 data_refs: dict, pack: Optional[int] = None, data_weights: Optional[list] = None,
                 labels_ref=None, classes: Optional[list[str]] = None, privacy: Optional[list] = None):
    """One training task (train_units_task): the unit ``heads[0]`` alone (named
    train_member:<class>/<member>), or with ``pack`` its number, the units ``heads`` as one pack task
    (named train_pack:...). ``data_refs`` maps class names (CONDITIONAL_DIR: the training split) to
    their object refs, put once each; conditional units also take ``labels_ref`` and ``classes``;
    ``privacy``: per unit its MemberPrivacy as a dict (privacy on). With cluster.workers_per_member > 1
    the unit trains as a data-parallel group instead (raygan.cluster.wide; ``resources`` per worker).
    Its result: the units' entries (a list)."""
    if pack is None and len(heads) != 1:
        raise ValueError(f"a task without a pack number trains one unit, not {len(heads)}")
    names = list(dict.fromkeys(name for _, name, _ in heads))
    refs = [data_refs[name] for name in names]
    if labels_ref is not None:
        names, refs = names + [LABELS], refs + [labels_ref]
    if cfg.cluster.workers_per_member > 1:  # a data-parallel group (its config refused packs)
        from raygan.cluster.wide import submit_wide

        return submit_wide(cfg, run, heads=heads, names=names, refs=refs, data_weights=data_weights,
                           classes=classes, privacy=privacy)
    name = f"train_member:{heads[0][1]}/{heads[0][2]}" if pack is None else pack_name(heads)
    return train_units_task.options(**resources, max_retries=cfg.cluster.max_retries, name=name).remote(
        cfg.to_dict(), run.location, pack, [list(h) for h in heads], data_weights,
        None if classes is None else list(classes), names, privacy, *refs)


def wait_all(refs: dict, on_done: Callable[[object, dict], None]) -> list[dict]:
    """Collect task results as they finish (never waiting on the slowest to report the others)."""
    pending, results = list(refs), []
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        entry = ray.get(ready[0])
        on_done(refs[ready[0]], entry)
        results.append(entry)
    return results
