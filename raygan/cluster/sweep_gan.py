"""Ray Tune searches over GAN and training settings (``raygan sweep --target gan``).

The Tune wiring only (samplers, ASHA, the trainable, restore), as Ray's pbt_dcgan example keeps the GAN
maths apart from Tune: the search without Ray is raygan.sweeps.gan, one trial raygan.sweeps.gan_trial.

Every trial applies one point of ``sweep.gan_space`` to the config and runs the Ray-free trial of
raygan.sweeps.gan_trial: a small independent ensemble trained in its own run folder,
``<run>/tune/<sweep.name>/trials/<trial id>/``, in ``sweep.gan_rungs`` rungs, scored after each on
the real VALIDATION split (val_tstr, classifier_score, domain_fd). The test split never reaches a
trial: the driver replaces it (gan_trial.without_test) before the data enter the object store. The
domain classifier is trained once, here on the driver, on the real training split (cached beside the
Tune storage) and handed to the trials by reference (``tune.with_parameters`` puts it once).

ASHA stops weak trials on val_tstr with time_attr = GAN steps (reduction factor 2: a sweep has few
rungs). MLflow, resuming and the refusal of a changed space work as for the classifier sweep
(raygan.cluster.sweep): one MLflow run per trial, written by the driver; a rerun with the same
sweep.name restores the Tune experiment, and a restored trial replays the rungs its folder holds and
resumes its members from their checkpoints. The results: ``<run>/eval/gan_sweep_best.json``,
``gan_sweep_trials.json`` and ``gan_sweep_best.yaml``, the best trial as a config file of deltas for
``raygan pipeline --config``. No trained run folder is needed: the sweep trains its own members.

Several nodes: with output.root on a URI, the sweep's storage is ``<run URI>/tune/<sweep.name>`` and a
trial's folder ``<storage>/trials/<trial id>``, written through raygan.runs' storage layer (each node
works in its own mirror and uploads every file as it is written; a trial restarted on another node
pulls its folder first), so every node reaches it and the driver reads the results through storage. A
local run folder on a cluster of more than one node is refused before any work (as for the classifier
sweep). Each trial's rows record the Ray node it ran on and its folder.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from ray import tune
from ray.tune.schedulers import ASHAScheduler

from raygan import seeds
from raygan.cluster.runtime import alive_nodes, connect
from raygan.cluster.sweep_mlflow import mlflow_callbacks
from raygan.config import Config
from raygan.config.gan_space import apply_point, check_gan_space, steps_values
from raygan.data import RealDataset, load_dataset
from raygan.runs import RunFolder, atomic_write_text
from raygan.sweeps import shared
from raygan.sweeps.gan import LOGGED_METRICS, fingerprint, summarise, trial_folder, trial_point
from raygan.sweeps.gan_trial import METRIC, Reference, make_reference, run_gan_trial, without_test

logger = logging.getLogger(__name__)

# The tuner.pkl of a GAN sweep holds its MLflow callback, and the callback the function that maps a
# trial's config to its params, pickled by this name before it moved to raygan.sweeps.gan.
_point = trial_point

_TUNE_FORMS = {"choice": tune.choice, "uniform": tune.uniform, "loguniform": tune.loguniform,
               "randint": lambda lo, hi: tune.randint(lo, hi + 1)}  # Tune's upper bound is exclusive


def gan_param_space(cfg: Config, forms: dict) -> tuple[dict, int]:
    """(Tune's param_space, num_samples): lists become grid searches, sampled forms Tune's samplers
    drawn sweep.num_samples times. A space of grids alone repeats as a grid over train.seed
    (seeds.offset of the base seed), so that every repeat is a new, reproducible GAN."""
    space = {}
    for key, (form, values) in forms.items():
        if form == "grid":
            space[key] = tune.grid_search(values) if len(values) > 1 else values[0]
        else:
            space[key] = _TUNE_FORMS[form](values) if form == "choice" else _TUNE_FORMS[form](*values)
    n = cfg.sweep.num_samples
    if all(form == "grid" for form, _ in forms.values()) and "train.seed" not in forms:
        if n > 1:
            space["train.seed"] = tune.grid_search([seeds.offset(cfg.train.seed, r) for r in range(n)])
        return space, 1
    return space, n


def gan_trial(config: dict, cfg: Config, dataset: RealDataset, reference: Reference, storage: str) -> None:
    """One trial in a Tune worker: its point applied, its run folder under the sweep's storage (pulled
    first: a restarted trial may run on another node), every rung's record reported to Tune with the
    node it ran on."""
    import ray

    device = shared.trial_device(cfg)
    trial_cfg = apply_point(cfg, trial_point(config))
    trial_id = tune.get_context().get_trial_id()
    run = RunFolder.at(trial_folder(storage, trial_id))
    run.pull(".")  # a URI folder: what an earlier attempt uploaded (local: a no-op)
    node = ray.get_runtime_context().get_node_id()
    run_gan_trial(trial_cfg, dataset, run, reference, device=device,
                  on_rung=lambda record: tune.report({**record, "node_id": node}))


def _tuner(cfg: Config, run: RunFolder, forms: dict, trainable, *, storage_root: str, storage: str,
           marker: Path):
    """A restored Tune experiment if ``storage`` holds one, else a new one; and whether restored."""
    if tune.Tuner.can_restore(storage):
        logger.info(f"GAN sweep: restoring the Tune experiment in {storage} (finished trials are kept)")
        return tune.Tuner.restore(storage, trainable, resume_errored=True), True
    atomic_write_text(marker, json.dumps(fingerprint(cfg), indent=2))
    space, num_samples = gan_param_space(cfg, forms)
    steps = steps_values(cfg, forms)
    scheduler = ASHAScheduler(time_attr="gan_steps", max_t=max(steps), reduction_factor=2,
                              grace_period=max(1, min(steps) // cfg.sweep.gan_rungs))
    logger.info(f"GAN sweep: {', '.join(f'{k}={v}' for k, v in cfg.sweep.gan_space.items())}, "
                f"{num_samples} sample(s); {cfg.sweep.gan_rungs} rung(s) per trial; storage {storage}")
    callbacks = mlflow_callbacks(cfg, run, storage, metrics=LOGGED_METRICS, step_key="gan_steps",
                                 params=trial_point)
    run_config = tune.RunConfig(storage_path=storage_root, name=cfg.sweep.name, verbose=1,
                                callbacks=callbacks)
    return tune.Tuner(trainable, param_space=space, run_config=run_config,
                      tune_config=tune.TuneConfig(metric=METRIC, mode="max", scheduler=scheduler,
                                                  num_samples=num_samples, reuse_actors=True,
                                                  max_concurrent_trials=cfg.sweep.max_concurrent)), False


def run_gan_sweep(cfg: Config, address: str | None = None) -> dict:
    """Run (or resume) the GAN search of cfg.sweep.gan_space; returns {"best": its row, "trials":
    rows, "counts", "best_config": the path of gan_sweep_best.yaml, "storage", "restored", "mlflow"}."""
    forms = check_gan_space(cfg)  # every key and value, before any work
    dataset = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    storage_root, storage, marker = shared.sweep_storage(cfg, run)
    shared.check_same_grid(marker, fingerprint(cfg), cfg.sweep.name, storage, restorable=tune.Tuner.can_restore(storage))

    resources = connect(cfg, address)
    shared.check_shared_storage(cfg, run, alive_nodes())
    shared.warn_if_short(cfg, resources, "GAN sweep")
    seen = without_test(dataset)
    cache = marker.with_name(f"{cfg.sweep.name}.domain_classifier.pt")  # the mirror's copy for a URI run
    run.pull(cache)
    reference = make_reference(seen, cfg, cache=cache)
    trainable = tune.with_resources(
        tune.with_parameters(gan_trial, cfg=cfg, dataset=seen, reference=reference, storage=storage),
        {"cpu": cfg.sweep.cpus_per_trial, "gpu": cfg.sweep.gpus_per_trial})
    tuner, restored = _tuner(cfg, run, forms, trainable, storage_root=storage_root, storage=storage,
                             marker=marker)
    grid = tuner.fit()
    out = summarise(cfg, run, grid, storage=storage, restored=restored)
    return {**out, "storage": storage, "restored": restored,
            "mlflow": shared.MLFLOW_NOTE if cfg.tracking.enabled else "tracking disabled"}
