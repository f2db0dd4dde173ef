"""Ray Tune sweeps of the downstream classifier over a trained run: the grid of ``cfg.sweep`` lists.

The Tune wiring only (search space, ASHA, the trainable, the object store, restore); what a sweep
searches and how a trial trains and scores is raygan.sweeps.classifier, without Ray.

Each trial trains one classifier on synthetic data from the first T members (TSTR, ``synthetic_only``)
or on real + mixing_ratio x synthetic (seed 002 Figure 2; ratio 0 = real only), reports every epoch
to Tune, and is stopped early by ASHA on the real validation accuracy. The results land in
``<run>/tune/<sweep.name>`` (Tune's storage), ``<run>/eval/sweep_best.json`` and
``<run>/eval/sweep_trials.json`` (each trial with the Ray node it ran on).

Protocol cells (``sweep.protocols``, seed 001's Table 1): one more grid axis, ``protocol``, each
trial's cell (on the fly, augment, filter_rho, truncation; MLflow params ``protocol/<key>``), its data
built once on the driver by raygan.sweeps.cells; the grid beside the paper's numbers goes
to ``<run>/eval/table1_seed001.md`` / ``.json`` (raygan.reporting.seed001).

Several nodes: the training sets (one per T and mixing ratio) are built once on the driver from the
shards as written (raygan.evaluation.measured's rule, as the evaluation reads them; regenerated from
the generators only where that rule says so), put in the object store and handed to the trials by
reference, so a trial reads nothing from the run folder. Tune's storage is the run folder's URI
(``<run URI>/tune``) when output.root is a URI (s3://..., file:///mnt/shared), reachable from every
node; a local run folder on a cluster of more than one node is refused before any work.

Large sets (``sweep.trainer_min_rows``): a trial whose set read from the shards has at least that many
rows is not handed its set; it drives a Ray Train TorchTrainer whose workers read the shards with Ray
Data (raygan.cluster.sweep_trainer), and Tune's max_concurrent_trials then comes from the cluster's
GPUs (CPUs on a cluster without). Its epochs reach Tune under the same keys as any trial's.

MLflow: trials never write to the tracking store (several processes racing on a new sqlite store
fail); the driver logs every trial (raygan.cluster.sweep_mlflow, a Tune callback) as one MLflow
run tagged ``raygan.sweep=<name>`` and ``raygan.trial_id=<Tune trial id>``, with the trial's
parameters (lr, batch_size, weight_decay, epochs, arch, mixing_ratio, T, seed, synthetic_only) and
per-epoch metrics (val_acc, test_acc, train_loss, best_val_acc, test_acc_at_best_val).

Resuming: a rerun with the same ``sweep.name`` restores the Tune experiment
(``Tuner.restore(resume_errored=True)``) instead of starting over; finished trials are kept and
unfinished ones start again from epoch 1 (a trial holds no checkpoint: trials are short). Ray's stock
``MLflowLoggerCallback`` would open a *second* MLflow run for a restored trial (one left RUNNING or
FAILED, one FINISHED, as seen with Ray 2.60); raygan's callback first looks the trial up by its
``raygan.trial_id`` tag and keeps logging into the run it already has, so a sweep holds one MLflow run
per trial; a restarted trial's metric history then shows its early epochs twice (the latest values
are the ones of the finished trial). The returned dict says whether the sweep was restored.
"""
from __future__ import annotations

import json
import logging
import math

import ray
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from raygan import seeds
from raygan.cluster.runtime import alive_nodes, connect
from raygan.cluster.sweep_mlflow import SweepMLflowLogger, mlflow_callbacks
from raygan.cluster.sweep_trainer import concurrent_trials, fit_trial, trainer_inputs, trial_resources
from raygan.config import Config
from raygan.data import RealDataset, load_dataset
from raygan.evaluation.job import cluster_named
from raygan.runs import RunFolder, atomic_write_text
from raygan.sweeps.cells import set_key
from raygan.sweeps.classifier import (
    LOGGED_METRICS,
    METRIC,
    check_trained,
    check_values,
    grid_fingerprint,
    run_trial,
    set_keys,
    summarise,
    sweep_values,
    training_sets,
)
from raygan.sweeps.shared import (
    MLFLOW_NOTE,
    check_same_grid,
    check_shared_storage,
    sweep_storage,
    trial_device,
    warn_if_short,
)
from raygan.sweeps.trainer_sets import trainer_selections

logger = logging.getLogger(__name__)

# The tuner.pkl of a sweep started before raygan.cluster.sweep_mlflow names its callback by this path.
SweepMLflowCallback = SweepMLflowLogger


def param_space(cfg: Config, values: dict[str, list]) -> dict:
    """Grid search over every list with more than one value; num_samples repeats become seeds.

    Tune's num_samples would repeat the grid with the same seed; a grid over
    seed = eval.seed + r x sweep.repeats (r < num_samples) is the same number of trials, each
    reproducible.
    """
    space = {k: tune.grid_search(v) if len(v) > 1 else v[0] for k, v in values.items()}
    # trial r's classifiers: seeds eval.seed + r x sweep.repeats + j, j < sweep.repeats (run_trial)
    trial_seeds = [seeds.offset(cfg.eval.seed, r * cfg.sweep.repeats) for r in range(cfg.sweep.num_samples)]
    space["seed"] = tune.grid_search(trial_seeds) if len(trial_seeds) > 1 else trial_seeds[0]
    space["synthetic_only"] = cfg.sweep.synthetic_only
    return space


# --- the trial (runs in a Tune worker) ----------------------------------------------------------------
def sweep_trial(config: dict, cfg: Config, dataset: RealDataset, sets: dict, sources: dict,
                trainers: dict | None = None) -> None:
    """raygan.sweeps.classifier.run_trial in a Tune worker, reporting to Tune every epoch with the node
    it runs on; or, for a set key in ``trainers["sets"]``, a driver of a TorchTrainer that reads the
    shards (raygan.cluster.sweep_trainer.fit_trial).

    ``sets`` maps set_key(config) to an object reference of that set (training_sets, or a protocol
    cell's CellSet); a trial that trains on the real split alone finds none."""
    import ray

    key = set_key(config)
    if trainers and key in trainers["sets"]:
        fit_trial(config, cfg, dataset, ray.get(trainers["sets"][key]), dataset_ref=trainers["dataset"],
                  storage=trainers["storage"])
        return
    device = trial_device(cfg)
    got = ray.get(sets[key]) if key in sets else None
    node = ray.get_runtime_context().get_node_id()
    run_trial(config, cfg, dataset, got, sources, device=device, report=tune.report,
              context={"node_id": node})


# --- the job ------------------------------------------------------------------------------------------
def _put_once(sets: dict) -> dict:
    """{key: object reference}: one copy of each set in the object store (protocol cells that differ
    in augment only share one set object)."""
    import ray

    refs: dict[int, object] = {}
    for data in sets.values():
        if id(data) not in refs:
            refs[id(data)] = ray.put(data)
    return {key: refs[id(data)] for key, data in sets.items()}


def _trainable(cfg: Config, dataset: RealDataset, sets: dict, sources: dict, selections: dict,
               storage_root: str):
    """sweep_trial with its inputs in the object store and each trial's resources (a trial that
    trains as a TorchTrainer holds almost none: raygan.cluster.sweep_trainer)."""
    trainers = trainer_inputs(cfg, dataset, selections, storage_root)
    trainable = tune.with_parameters(sweep_trial, cfg=cfg, dataset=dataset, sets=_put_once(sets),
                                     sources=sources, **({"trainers": trainers} if trainers else {}))
    if not selections:
        return tune.with_resources(trainable, {"cpu": cfg.sweep.cpus_per_trial, "gpu": cfg.sweep.gpus_per_trial})
    return tune.with_resources(trainable, trial_resources(cfg, set(selections)))


def run_sweep(cfg: Config, address: str | None = None) -> dict:
    """Run (or resume) the sweep of cfg.sweep over the trained run folder of cfg.

    Returns {"best": row of the trial with the highest validation accuracy at any epoch (its config,
    best_val_acc, test_acc_at_best_val and last-epoch figures), "trials": [row per trial],
    "storage": Tune's experiment path, "restored": whether an earlier experiment was resumed,
    "counts": trials per status, "mlflow": how trials map to MLflow runs}. sweep.target=gan runs the
    GAN search of raygan.cluster.sweep_gan instead (no trained run folder needed).
    """
    if cfg.sweep.target == "gan":
        from raygan.cluster.sweep_gan import run_gan_sweep
        return run_gan_sweep(cfg, address)
    values = sweep_values(cfg)
    dataset = load_dataset(cfg.data)
    check_values(values, dataset)
    t_max = max(values["T"])
    run = RunFolder.for_config(cfg)
    if not cluster_named(cfg, address) and not ray.is_initialized():  # a local Ray is yet to start:
        check_trained(cfg, dataset, run, t_max)                        # refuse before it does
    resources = connect(cfg, address)
    check_shared_storage(cfg, run, alive_nodes())  # first: on several nodes, a local run folder is the problem to fix
    check_trained(cfg, dataset, run, t_max)

    storage_root, storage, marker = sweep_storage(cfg, run)
    fingerprint = grid_fingerprint(values, cfg)
    check_same_grid(marker, fingerprint, cfg.sweep.name, storage, restorable=tune.Tuner.can_restore(storage))

    warn_if_short(cfg, resources, "sweep")
    selections = {} if "protocol" in values else trainer_selections(cfg, dataset, run, set_keys(cfg, values))
    sets, sources = training_sets(cfg, dataset, run, values, skip=tuple(selections))
    sources.update({key: selection.source for key, selection in selections.items()})
    if "protocol" in values:  # every trial trains on its cell's set, made from these
        from raygan.sweeps.cells import cell_sets
        sets, baseline = cell_sets(cfg, dataset, run, cells=values["protocol"], Ts=values["T"],
                                   batch_sizes=values["batch_size"],
                                   base={T: (sets[T, 0.0], sources[T, 0.0]) for T in values["T"]})
    trainable = _trainable(cfg, dataset, sets, sources, selections, storage_root)
    max_t = max(values["epochs"])
    scheduler = ASHAScheduler(time_attr="epoch", max_t=max_t,
                              grace_period=min(cfg.sweep.grace_period, max_t))
    run_config = tune.RunConfig(storage_path=storage_root, name=cfg.sweep.name,
                                callbacks=mlflow_callbacks(cfg, run, storage, metrics=LOGGED_METRICS,
                                                         step_key="training_iteration", params=dict),
                                verbose=1)

    restored = tune.Tuner.can_restore(storage)
    if restored:
        logger.info(f"sweep: restoring the Tune experiment in {storage} (finished trials are kept)")
        # The stored RunConfig comes back with it, the MLflow callback included (tuner.pkl).
        tuner = tune.Tuner.restore(storage, trainable, resume_errored=True)
    else:
        atomic_write_text(marker, json.dumps(fingerprint, indent=2))
        n_trials = math.prod(len(v) for v in values.values()) * cfg.sweep.num_samples
        logger.info(f"sweep: {n_trials} trials over "
            f"{', '.join(f'{k}={v}' for k, v in values.items() if len(v) > 1) or 'one setting'}; "
            f"storage {storage}")
        tuner = tune.Tuner(
            trainable, param_space=param_space(cfg, values),
            tune_config=tune.TuneConfig(metric=METRIC, mode="max", scheduler=scheduler,
                                        max_concurrent_trials=concurrent_trials(cfg, resources)
                                        if selections else cfg.sweep.max_concurrent,
                                        reuse_actors=True),  # same resources: skip a process start
            run_config=run_config)
    grid = tuner.fit()

    best, trials, counts = summarise(cfg, run, grid, storage=storage, restored=restored)
    out = {"best": best, "trials": trials, "storage": storage, "restored": restored,
           "counts": counts, "mlflow": MLFLOW_NOTE if cfg.tracking.enabled else "tracking disabled"}
    if "protocol" in values:
        from raygan.reporting.seed001 import write_table1
        out["table1"] = write_table1(run.path, cfg, trials, baseline=baseline)
    return out
