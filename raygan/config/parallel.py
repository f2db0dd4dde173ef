"""cluster.workers_per_member's rules: what a member trained by a data-parallel group (Ray Train's
TorchTrainer, DistributedDataParallel; raygan.gan.parallel, raygan.cluster.wide) cannot run is refused
in one line when the config loads, before any work; and sweep.trainer_min_rows' rules, for a sweep
trial's classifier trained by such a group (raygan.cluster.sweep_trainer). The rules that need the cluster (its GPUs and
nodes) run when the job joins it (raygan.cluster.runtime.check_workers)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from raygan.config.datasets import is_points
from raygan.config.fields import ConfigError

if TYPE_CHECKING:  # the schema builds through these checks
    from raygan.config.schema import Config

_FIX = "or set cluster.workers_per_member=1 (one process per member)"
# gan.family -> why its member cannot train under DistributedDataParallel.
FAMILIES_REFUSED = {
    "pggan": "its graph grows on a schedule, and DistributedDataParallel expects the same parameters to "
             "get gradients every step",
}


def why_not_data_parallel(cfg: Config) -> str | None:
    """Why the members of ``cfg`` cannot train as data-parallel groups, or None when they can."""
    if cfg.gan.family in FAMILIES_REFUSED:
        return f"gan.family={cfg.gan.family} cannot train under DistributedDataParallel " \
               f"({FAMILIES_REFUSED[cfg.gan.family]})"
    if cfg.gan.r1_gamma:
        return "gan.r1_gamma > 0 needs a double backward through D, which DistributedDataParallel " \
               "does not support; set gan.r1_gamma=0"
    if cfg.train.recursive_rounds:
        return "train.recursive_rounds > 0 retrains each member on its own growing data; set " \
               "train.recursive_rounds=0"
    if cfg.train.cuda_graphs:
        return "train.cuda_graphs captures a pack's step, and a data-parallel member trains alone; set " \
               "train.cuda_graphs=false"
    if cfg.cluster.members_per_task not in (None, 1):
        return f"cluster.members_per_task={cfg.cluster.members_per_task}: a data-parallel member " \
               "trains alone, not in a pack; set cluster.members_per_task=1 (or null)"
    return None


def check_parallel_config(cfg: Config) -> None:
    """cluster.workers_per_member > 1 against the rest of the config."""
    workers = cfg.cluster.workers_per_member
    if workers == 1:
        return
    if (why := why_not_data_parallel(cfg)) is not None:
        raise ConfigError(f"cluster.workers_per_member={workers}: {why}, {_FIX}")
    if cfg.train.batch_size % workers:
        raise ConfigError(f"cluster.workers_per_member={workers} splits each step's batch evenly, and "
                          f"train.batch_size={cfg.train.batch_size} is not a multiple of it; set "
                          f"train.batch_size to a multiple of {workers}, {_FIX}")
    gpus = cfg.cluster.gpus_per_member
    if gpus is not None and 0 < gpus < 1:
        raise ConfigError(f"cluster.workers_per_member={workers} with cluster.gpus_per_member={gpus:g}: "
                          "NCCL needs a whole GPU per worker; set cluster.gpus_per_member=1 (or 0 for CPU "
                          f"workers), {_FIX}")


def check_sweep_trainer(cfg: Config) -> None:
    """sweep.trainer_min_rows set: what a trial trained as a TorchTrainer cannot run."""
    s, rows = cfg.sweep, cfg.sweep.trainer_min_rows
    if rows is None:
        return
    key, fix = f"sweep.trainer_min_rows={rows}", "set sweep.trainer_min_rows=null (every trial in its Tune trial)"
    if s.target != "classifier":
        raise ConfigError(f"{key} applies to classifier sweeps, not sweep.target={s.target}; {fix}")
    if s.protocols:
        raise ConfigError(f"{key} with sweep.protocols: a protocol cell's data is built in its Tune trial, "
                          f"not read from the shards; remove sweep.protocols or {fix}")
    if s.repeats > 1:
        raise ConfigError(f"{key} with sweep.repeats={s.repeats}: a trial trained as a TorchTrainer trains one "
                          f"classifier; set sweep.repeats=1 or {fix}")
    if is_points(cfg.data.name):
        raise ConfigError(f"{key}: the TorchTrainer path decodes PNG shards but data.name={cfg.data.name} "
                          f"samples are points; {fix}")
    workers = s.trainer_workers
    uneven = [b for b in s.batch_size if isinstance(b, int) and b % workers]
    if uneven:
        raise ConfigError(f"{key}: sweep.batch_size {uneven} is not a multiple of sweep.trainer_workers="
                          f"{workers} (each worker trains on batch_size / {workers} rows of a step); give "
                          f"multiples of {workers}, lower sweep.trainer_workers or {fix}")
    if workers > 1 and 0 < s.gpus_per_trial < 1:
        raise ConfigError(f"{key}: sweep.trainer_workers={workers} with sweep.gpus_per_trial="
                          f"{s.gpus_per_trial:g}, but NCCL needs a whole GPU per worker; set "
                          f"sweep.gpus_per_trial=1 (or 0 for CPU workers) or {fix}")


__all__ = ["FAMILIES_REFUSED", "check_parallel_config", "check_sweep_trainer", "why_not_data_parallel"]
