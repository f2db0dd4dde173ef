"""cluster.workers_per_member's rules: what a member trained by a data-parallel group (Ray Train's
TorchTrainer, DistributedDataParallel; raygan.gan.parallel, raygan.cluster.wide) cannot run is refused
in one line when the config loads, before any work. The rules that need the cluster (its GPUs and
nodes) run when the job joins it (raygan.cluster.runtime.check_workers)."""
from __future__ import annotations

from typing import TYPE_CHECKING

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
    if cfg.privacy.epsilon is not None:
        return "privacy.epsilon is set: DP-SGD clips and noises one process's Poisson batch, and its " \
               "accountant counts one sampler; a data-parallel DP member is not supported"
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


__all__ = ["FAMILIES_REFUSED", "check_parallel_config", "why_not_data_parallel"]
