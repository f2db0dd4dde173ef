"""Packs: several (class, member) GANs trained as one packed, vectorised model in one Ray task.

``cluster.members_per_task`` is the pack size; null (auto) picks it here from the device a pack will
train on: on CPUs the size ``raygan bench pack`` measured fastest, on a GPU as many as fit in its
memory (``pack_fit`` trains a pack of 2 for a few steps and reads the peak memory), and never more
than spreads the members over every free task slot of the cluster, so that packing never leaves a
CPU or GPU idle that one member per task would have used.

This module imports no ray: ``raygan plan`` uses it too. The Ray side (tasks, submission) is
raygan.cluster.tasks and raygan.cluster.train.
"""
from __future__ import annotations

import gc
import logging
import math
import tempfile
from typing import Callable, Optional, Sequence, TypeVar

import torch

from raygan.config import Config
from raygan.config.checks import why_not_packable
from raygan.ensemble.training import class_unit, conditional_unit, train_units
from raygan.gan.models import CONDITIONAL

logger = logging.getLogger(__name__)

# Pack size of auto on CPUs: `raygan bench pack --sweep` (demo member, one thread) measured the
# pack's ratio over one-after-another rising to 3.8x at P = 8 and 4.1-4.6x at P = 32-64, the pack's own
# member-steps/s level from P = 8 on (docs/benchmarks.md): 32 is past the knee without making a task
# that holds most of an ensemble (auto also spreads members over the task slots there are).
CPU_PACK_SIZE = 32
# Share of a GPU's free memory auto fills with packed members: the rest absorbs allocator
# fragmentation and the peaks of sample grids and checkpoints that the short probe does not reach.
GPU_MEMORY_SHARE = 0.8
# Training steps of the memory probe: the first steps allocate every buffer (Adam's state included).
PROBE_STEPS = 5

Unit = TypeVar("Unit")


def group_packs(todo: Sequence[Unit], size: int) -> list[list[Unit]]:
    """The members still to train in packs of ``size``, in the order given (member_grid's: a class's
    members together, classes in order); only the last pack may be smaller. Deterministic, so a
    rerun that has the same members left makes the same packs."""
    if size < 1:
        raise ValueError(f"a pack holds at least one member, got size {size}")
    return [list(todo[i:i + size]) for i in range(0, len(todo), size)]


def task_slots(resources: dict, cluster: dict) -> Optional[int]:
    """How many tasks asking for ``resources`` (num_cpus, num_gpus) the ``cluster`` (Ray's
    cluster_resources) can run at once now; None when it cannot run one now (an autoscaling cluster
    whose GPU workers start at zero): then the cluster's size says nothing about spreading."""
    asked = {"CPU": resources.get("num_cpus", 0), "GPU": resources.get("num_gpus", 0)}
    counts = [int(cluster.get(kind, 0) / n + 1e-9) for kind, n in asked.items() if n and n > 0]
    slots = min(counts) if counts else 0
    return slots if slots > 0 else None


def auto_pack_size(members: int, fit: int, slots: Optional[int]) -> int:
    """Auto's pack size for ``members`` to train: at most ``fit`` (what the device holds or runs
    fastest) and at most what spreads them over ``slots`` tasks at once (None: no limit)."""
    spread = math.ceil(members / slots) if slots else members
    return max(1, min(fit, spread, members))


def choose_pack_size(cfg: Config, members: int, resources: dict, cluster: dict,
                     measure_fit: Callable[[], int]) -> tuple[int, str]:
    """The pack size of a run's independent members, and why (for the log).

    ``measure_fit`` is called only when auto needs a GPU's answer (the members would not all fit in
    one slot each anyway); it returns how many members a pack may hold on the device it probed.
    """
    asked = cfg.cluster.members_per_task
    if asked is not None:
        return asked, f"cluster.members_per_task={asked}"
    why = why_not_packable(cfg)
    if why is not None:
        return 1, f"auto: {why}"
    slots = task_slots(resources, cluster)
    if auto_pack_size(members, members, slots) == 1:
        return 1, f"auto: {members} members for {slots} task slots, one each"
    if resources.get("num_gpus", 0) > 0:
        fit, where = measure_fit(), "fit a GPU's memory (probe)"
    else:
        fit, where = CPU_PACK_SIZE, "fastest on CPUs (raygan bench pack)"
    size = auto_pack_size(members, fit, slots)
    return size, (f"auto: {fit} {where}, {members} members for "
                  f"{slots if slots else 'an unknown number of'} task slots")


def plan_pack_size(cfg: Config, members: int, at_once: int, fit: Optional[int]) -> tuple[int, str]:
    """``raygan plan``'s members per task: the configured size; for auto, the measured ``fit`` of the
    probe's GPU spread over ``at_once`` slots, or 1 when the probe ran without a GPU."""
    asked = cfg.cluster.members_per_task
    if asked is not None:
        return min(asked, members), f"cluster.members_per_task={asked}"
    why = why_not_packable(cfg)
    if why is not None:
        return 1, f"one member per task: {why}"
    if fit is None:
        return 1, ("auto: measured on the GPU when the run starts, not by a probe without one; "
                   "planned as 1: set cluster.members_per_task to plan packs")
    return auto_pack_size(members, fit, at_once), (f"auto: {fit} fit the probe's GPU, spread over "
                                                   f"{at_once} at once")


def pack_fit(cfg: Config, data: torch.Tensor, device: torch.device, gpu_share: float = 1.0,
             labels: Optional[torch.Tensor] = None) -> int:
    """How many members of ``data``'s size one pack may hold on ``device``.

    On a CPU: CPU_PACK_SIZE. On a CUDA device: trains a pack of 2 for PROBE_STEPS steps (in a
    throw-away run folder), takes the peak memory it allocated per member and returns
    floor(GPU_MEMORY_SHARE x free memory x ``gpu_share`` / per member); ``gpu_share`` is the fraction
    of the GPU a pack task holds (cluster.gpus_per_member below 1: several packs share the GPU).
    A conditional family (ccgan) probes two conditional members on ``data`` and its ``labels``.
    """
    if device.type != "cuda":
        return CPU_PACK_SIZE
    from raygan.runs import RunFolder

    probe = cfg.replace(train={"steps": PROBE_STEPS, "log_every": PROBE_STEPS,
                               "checkpoint_every": PROBE_STEPS, "recursive_rounds": 0},
                        output={"sample_grid": 1})
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with tempfile.TemporaryDirectory(prefix="raygan-pack-probe-") as tmp:
        run = RunFolder(tmp)
        if cfg.gan.family in CONDITIONAL:
            classes = [str(k) for k in range(int(labels.max()) + 1)]
            units = [conditional_unit(probe, run, data, labels, classes, member=t) for t in range(2)]
        else:
            units = [class_unit(probe, run, data, class_name="probe", class_index=0, member=t) for t in range(2)]
        train_units(units, probe, run, pack=True, device=device)
    torch.cuda.synchronize(device)
    per_member = max(1, torch.cuda.max_memory_allocated(device) - base) / 2
    gc.collect()
    torch.cuda.empty_cache()  # what the probe held is free again for the packs
    free, _total = torch.cuda.mem_get_info(device)
    fit = max(1, math.floor(GPU_MEMORY_SHARE * free * min(1.0, gpu_share) / per_member))
    logger.info(f"pack probe on {device}: {per_member / 2**20:.1f} MiB per member, "
                f"{free / 2**30:.1f} GiB free: {fit} members per pack fit")
    return fit
