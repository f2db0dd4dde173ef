"""Sweep trials on large sets (sweep.trainer_min_rows): each is a Ray Train V2 ``TorchTrainer`` launched
from its Tune trial, Ray Train's Tune + Train pattern.

The Tune trial is only a driver: ``fit_trial`` reads the trial's rows of the synthetic shards with Ray
Data (read_parquet over the manifest's files, the rows of raygan.sweeps.trainer_sets.ShardSelection
decoded from PNG in Ray Data's map tasks; a mixed set adds the real training split), builds a
TorchTrainer of sweep.trainer_workers workers and calls ``fit()``. Each worker trains the trial's
classifier with the one fitting loop (raygan.sweeps.classifier.run_trial -> train_classifier) on its
Ray Data shard (``ray.train.get_dataset_shard``, collected every epoch) at batch_size / trainer_workers
rows a step (its share read once, in memory, and shuffled again every epoch), in DistributedDataParallel with synchronised batch norms (raygan.gan.parallel: gloo on
CPUs, NCCL on GPUs), so a step's gradient is the whole batch's. Every worker reports each epoch;
Ray Train hands rank 0's metrics (the same keys as a trial trained in its Tune trial: val_acc,
test_acc, best_val_acc, ...) to ``TuneReportCallback``, which passes them to Tune: ASHA, the sweep's
rows and the MLflow callback see them as any trial's.

Conventions of raygan.cluster.wide: each worker asks for what a trial asks for (sweep.cpus_per_trial,
sweep.gpus_per_trial), the run state goes beside the Tune experiment (``<run>/tune/<sweep.name>.train``,
a URI when the run folder is on one), FailureConfig.max_failures = cluster.max_retries, and the trial
holds almost nothing (DRIVER_CPUS; Tune refuses a trial with no resources) while Ray Train reserves the
workers as one placement group. Tune's ``max_concurrent_trials`` comes from the cluster
(``concurrent_trials``): as many whole worker groups as its GPUs hold, or on a cluster without GPUs
(CPU workers) as many as its CPUs hold after one whole CPU kept for Ray Data's read and decode tasks
(each asks for one CPU: without it free they never start and the workers wait on them); never above
sweep.max_concurrent, never below 1.

Not equal to the trial trained in its Tune trial: the same rows, initial weights and Adam settings,
but each worker shuffles its own share of the rows that Ray Data's split gives it, so the batches (and
dropout draws) differ; the accuracy is close, not the same. A worker holds its share (rows /
trainer_workers) in memory, as a trial in its Tune trial holds the whole set.
"""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np
import pyarrow as pa
import ray
import torch
from ray import tune
from ray.data import DataContext
from ray.data.extensions import ArrowTensorArray
from ray.train import FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer, get_device
from ray.tune import PlacementGroupFactory
from ray.tune.integration.ray_train import TuneReportCallback

from raygan.cluster.runtime import task_setup
from raygan.config import Config
from raygan.data import RealDataset
from raygan.gan.parallel import DataParallel
from raygan.runs import RunFolder, join_uri
from raygan.sweeps.cells import TrialData, set_key
from raygan.sweeps.classifier import run_trial
from raygan.sweeps.shared import trial_device
from raygan.sweeps.trainer_sets import COLUMNS, ShardSelection

logger = logging.getLogger(__name__)

DRIVER_CPUS = 0.01  # a trial that only waits on its TorchTrainer (Tune refuses a trial asking for none)
_COLLECT_ROWS = 4096  # rows per Ray Data batch a worker collects into its share of an epoch


# --- the driver's side: resources, concurrency, inputs ------------------------------------------------
def trial_resources(cfg: Config, trainer_keys: set) -> Callable[[dict], PlacementGroupFactory]:
    """A trial's resources by its set key: DRIVER_CPUS for one that trains as a TorchTrainer, else
    sweep.cpus_per_trial / gpus_per_trial (tune.with_resources takes this function)."""
    s = cfg.sweep
    in_trial = PlacementGroupFactory([{"CPU": s.cpus_per_trial, **({"GPU": s.gpus_per_trial}
                                                                    if s.gpus_per_trial else {})}])
    driver = PlacementGroupFactory([{"CPU": DRIVER_CPUS}])
    return lambda config: driver if set_key(config) in trainer_keys else in_trial


def concurrent_trials(cfg: Config, resources: dict) -> int:
    """Trials at once when some train as TorchTrainers: the worker groups the cluster holds now (its
    GPUs for GPU workers, with the CPUs they also ask for; its CPUs less one for Ray Data for CPU
    workers), at most sweep.max_concurrent, at least 1 (a group then waits for nodes)."""
    s = cfg.sweep
    cpus = int(max(0.0, resources.get("CPU", 0) - 1) // (s.trainer_workers * s.cpus_per_trial + DRIVER_CPUS))
    fits = cpus
    if s.gpus_per_trial > 0:
        fits = min(cpus, int(resources.get("GPU", 0) // (s.trainer_workers * s.gpus_per_trial)))
    n = max(1, min(s.max_concurrent, fits))
    what = (f"{resources.get('GPU', 0):g} GPUs" if s.gpus_per_trial > 0 else
            f"{resources.get('CPU', 0):g} CPUs, one kept for Ray Data (no GPU workers)")
    logger.info(f"sweep: trials on sets of >= {s.trainer_min_rows} rows train as TorchTrainers of "
                f"{s.trainer_workers} workers; {n} trial(s) at once from the cluster's {what}")
    return n


def trainer_inputs(cfg: Config, dataset: RealDataset, selections: dict, storage_root: str) -> dict:
    """What the trials that train as TorchTrainers need, in the object store once: each key's
    selection, the dataset (validation and test splits), and where Ray Train keeps its run state."""
    if not selections:
        return {}
    storage = join_uri(storage_root, f"{cfg.sweep.name}.train") if "://" in storage_root \
        else f"{storage_root}/{cfg.sweep.name}.train"
    return {"sets": {key: ray.put(sel) for key, sel in selections.items()}, "dataset": ray.put(dataset),
            "storage": storage}


# --- the trial: a driver --------------------------------------------------------------------------------
def _train_data(cfg: Config, selection: ShardSelection, dataset: RealDataset) -> ray.data.Dataset:
    """The trial's rows as a Ray Dataset of {"x", "y"}: the shards read and decoded by Ray Data."""
    context = DataContext.get_current()  # this trial's process: no progress bars or plans in the log
    context.enable_progress_bars, context.print_on_execution_start = False, False
    run = RunFolder.for_config(cfg)
    remote = run.remote()
    if remote is not None:
        fs, base = remote
        paths = [f"{base}/shards/{name}" for name in selection.files]
    else:
        fs, paths = None, [str((run.path / "shards" / name).resolve()) for name in selection.files]
    data = ray.data.read_parquet(paths, filesystem=fs, partitioning=None).select_columns(COLUMNS)
    data = data.map_batches(selection.decode, batch_format="pyarrow")
    if selection.real:
        x, y = dataset.train_split()
        data = data.union(ray.data.from_arrow(pa.table({"x": ArrowTensorArray.from_numpy(x.numpy()),
                                                        "y": y.numpy().astype(np.int64)})))
    return data


def fit_trial(config: dict, cfg: Config, dataset: RealDataset, selection: ShardSelection, *,
              dataset_ref, storage: str) -> None:
    """One trial as a TorchTrainer: build it, fit it; its epochs reach Tune by TuneReportCallback."""
    s = cfg.sweep
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"cfg": cfg.to_dict(), "trial": dict(config), "dataset": dataset_ref,
                           "size": selection.size, "source": selection.source},
        scaling_config=ScalingConfig(num_workers=s.trainer_workers, use_gpu=s.gpus_per_trial > 0,
                                     resources_per_worker={"CPU": s.cpus_per_trial, **(
                                         {"GPU": s.gpus_per_trial} if s.gpus_per_trial else {})}),
        datasets={"train": _train_data(cfg, selection, dataset)},
        run_config=RunConfig(name=tune.get_context().get_trial_id(), storage_path=storage,
                             failure_config=FailureConfig(max_failures=cfg.cluster.max_retries),
                             callbacks=[TuneReportCallback()]))
    trainer.fit()


# --- a worker ---------------------------------------------------------------------------------------------
def _worker(loop: dict) -> None:
    """One worker of a trial's group (Ray Train's train_loop_per_worker)."""
    cfg = task_setup(loop["cfg"])
    device = get_device() if trial_device(cfg) == "cuda" else torch.device("cpu")
    group = DataParallel.current()
    dataset: RealDataset = ray.get(loop["dataset"])
    shard = ray.train.get_dataset_shard("train")
    share: list = []

    def epoch_data(epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not share:  # read once: train_classifier shuffles the share again every epoch
            batches = list(shard.iter_torch_batches(batch_size=_COLLECT_ROWS, device="cpu",
                                                    dtypes={"x": torch.float32, "y": torch.int64}))
            share.extend([torch.cat([b["x"] for b in batches]), torch.cat([b["y"] for b in batches])])
        return share[0], share[1]

    empty = (torch.empty((0, *dataset.sample_shape)), torch.empty((0,), dtype=torch.int64))
    data = TrialData(train=empty, augment=cfg.eval.augment, source=loop["source"], epoch_data=epoch_data)
    trial = {**loop["trial"], "batch_size": int(loop["trial"]["batch_size"]) // group.world_size}
    context = {"node_id": ray.get_runtime_context().get_node_id(), "trainer_workers": group.world_size}
    run_trial(trial, cfg, dataset, None, {}, device=str(device), context=context, data=data,
              report=lambda record: ray.train.report({**record, "train_size": loop["size"]}),
              wrap=lambda net: group.wrap(net, device))


__all__ = ["DRIVER_CPUS", "concurrent_trials", "fit_trial", "trainer_inputs", "trial_resources"]
