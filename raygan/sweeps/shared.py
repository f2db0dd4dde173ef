"""What both searches (the classifier sweep and the GAN search) share, without Ray: where a sweep's
results live, the refusals before any work, and how a trial takes its share of a node.

Tune's storage is ``<run>/tune`` and a sweep's experiment ``<run>/tune/<sweep.name>`` (URIs when the run
folder is on one, so that every node reaches them); beside it a marker, ``<sweep.name>.sweep.json``,
holds the settings the sweep was started with, so that a rerun with other settings is refused instead
of restoring a different grid. A local run folder on a cluster of more than one node is refused: the
trials on the other nodes could not reach it.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from raygan.config import Config, ConfigError
from raygan.runs import RunFolder, join_uri

logger = logging.getLogger(__name__)

MLFLOW_NOTE = ("one MLflow run per trial: a trial restored after a crash keeps logging into its "
               "earlier run (found by the raygan.trial_id tag), and its metric history then shows "
               "the epochs it re-ran twice")


def sweep_storage(cfg: Config, run: RunFolder) -> tuple[str, str, Path]:
    """(Tune's storage_path, the experiment's location, the grid marker's local path): ``<run>/tune``
    and ``<run>/tune/<sweep.name>``, URIs when the run folder is on a URI (the marker in its mirror,
    pulled here so that a fresh driver sees it)."""
    marker = run.path / "tune" / f"{cfg.sweep.name}.sweep.json"
    if run.is_remote:
        root = join_uri(run.uri, "tune")
        run.pull(marker)
        return root, join_uri(root, cfg.sweep.name), marker
    root = (run.path / "tune").resolve()
    return str(root), str(root / cfg.sweep.name), root / marker.name


def check_same_grid(marker: Path, fingerprint: dict, name: str, storage: str, *, restorable: bool) -> None:
    """A restore keeps the stored grid; refuse a rerun whose sweep settings differ from it.
    ``restorable``: whether ``storage`` holds an experiment Tune can restore."""
    if restorable and marker.exists():
        old = json.loads(marker.read_text())
        if old != json.loads(json.dumps(fingerprint)):
            raise ConfigError(f"sweep {name!r} in {storage} was started with other settings "
                              f"({old}); choose a new sweep.name or delete {storage}")


def check_shared_storage(cfg: Config, run: RunFolder, nodes: int) -> None:
    """A local run folder is refused on a cluster of several (``nodes``, alive) nodes: trials on the
    other nodes could not read it, and Tune (since Ray 2.7) needs a storage_path that every node reaches."""
    if nodes > 1 and not run.is_remote:
        raise ConfigError(f"output.root {cfg.output.root!r} is a local folder but the Ray cluster has "
                          f"{nodes} nodes, whose trials cannot reach it; set output.root to shared storage "
                          "(a URI such as s3://bucket/prefix or file:///mnt/shared)")


def warn_if_short(cfg: Config, resources: dict, label: str) -> None:
    """Say so when a trial asks for more CPUs or GPUs than the cluster has now: its trials wait for
    nodes that have them (an autoscaler may add them), so this is a warning, not a refusal."""
    if cfg.sweep.cpus_per_trial > resources.get("CPU", 0) or cfg.sweep.gpus_per_trial > resources.get("GPU", 0):
        logger.info(f"{label}: warning: a trial asks for {cfg.sweep.cpus_per_trial:g} CPU / "
                    f"{cfg.sweep.gpus_per_trial:g} GPU but the cluster has {resources.get('CPU', 0):g} CPU "
                    f"/ {resources.get('GPU', 0):g} GPU now; trials wait until nodes with them join")


def trial_device(cfg: Config) -> str:
    """A trial's torch threads (its sweep.cpus_per_trial) and device: "cuda" when it was given a GPU
    and this process sees one, else "cpu"."""
    import torch

    torch.set_num_threads(max(1, math.floor(cfg.sweep.cpus_per_trial)))
    return "cuda" if cfg.sweep.gpus_per_trial > 0 and torch.cuda.is_available() else "cpu"


__all__ = ["MLFLOW_NOTE", "check_same_grid", "check_shared_storage", "sweep_storage", "trial_device",
           "warn_if_short"]
