"""Ray Tune searches over GAN and training settings (``raygan sweep --target gan``).

Every trial applies one point of ``sweep.gan_space`` to the config and runs the Ray-free trial of
raygan.evaluation.gan_trial: a small independent ensemble trained in its own run folder,
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
import math
from pathlib import Path

import yaml
from ray import tune
from ray.tune.schedulers import ASHAScheduler

from raygan import seeds
from raygan.cluster.runtime import connect
from raygan.cluster.sweep import _check_same_grid, check_shared_storage, sweep_storage
from raygan.cluster.sweep_mlflow import mlflow_callbacks
from raygan.config import Config
from raygan.data import RealDataset, load_dataset
from raygan.evaluation.gan_trial import (
    METRIC,
    SPACE_KEYS,
    Reference,
    apply_point,
    check_gan_space,
    expand,
    make_reference,
    run_gan_trial,
    space_keys,
    steps_values,
    without_test,
)
from raygan.runs import RunFolder, atomic_write_text, is_uri, join_uri

logger = logging.getLogger(__name__)

LOGGED_METRICS = ("val_tstr", "val_tstr_last_epoch", "best_val_tstr", "classifier_score", "domain_fd",
                  "gan_steps", "rung", "train_size", "time_total_s")
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


def _point(config: dict) -> dict:
    """A trial's point, tied keys spread out, as plain Python values (Tune's samplers may give numpy
    scalars)."""
    mine = {k: v for k, v in config.items() if all(part in SPACE_KEYS for part in space_keys(k))}
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in expand(mine).items()}


def gan_trial(config: dict, cfg: Config, dataset: RealDataset, reference: Reference, storage: str) -> None:
    """One trial in a Tune worker: its point applied, its run folder under the sweep's storage (pulled
    first: a restarted trial may run on another node), every rung's record reported to Tune with the
    node it ran on."""
    import ray
    import torch

    torch.set_num_threads(max(1, math.floor(cfg.sweep.cpus_per_trial)))
    device = "cuda" if cfg.sweep.gpus_per_trial > 0 and torch.cuda.is_available() else "cpu"
    trial_cfg = apply_point(cfg, _point(config))
    trial_id = tune.get_context().get_trial_id()
    run = RunFolder.at(trial_folder(storage, trial_id))
    run.pull(".")  # a URI folder: what an earlier attempt uploaded (local: a no-op)
    node = ray.get_runtime_context().get_node_id()
    run_gan_trial(trial_cfg, dataset, run, reference, device=device,
                  on_rung=lambda record: tune.report({**record, "node_id": node}))


def trial_folder(storage: str, trial_id: str) -> str:
    """Where a trial's run folder lives: under the sweep's storage, a URI when that is one."""
    return join_uri(storage, "trials", trial_id) if is_uri(storage) else f"{storage}/trials/{trial_id}"


def _fingerprint(cfg: Config) -> dict:
    made = {s: v for s, v in cfg.to_dict().items() if s in ("data", "gan", "train", "ensemble", "eval",
                                                             "synth")}
    return {"target": "gan", "gan_space": cfg.sweep.gan_space, "num_samples": cfg.sweep.num_samples,
            "gan_rungs": cfg.sweep.gan_rungs, "config": made}


def _steps_of(cfg: Config, point: dict) -> int:
    return int(point.get("train.steps", cfg.train.steps))


def trial_row(cfg: Config, result, index: int, storage: str) -> dict:
    """A trial's point, status, last rung's scores, whether it ran all of its GAN steps, its node and
    its folder."""
    m = result.metrics or {}
    point = _point(result.config or {})
    trial_id = m.get("trial_id") or Path(result.path).name
    row = {"trial": index, "trial_id": trial_id, "node_id": m.get("node_id"),
           "folder": trial_folder(storage, trial_id),
           "status": "TERMINATED" if result.error is None else "ERROR", "config": point,
           "gan_steps": m.get("gan_steps"), "rungs_run": m.get("rung"),
           "complete": m.get("gan_steps") == _steps_of(cfg, point),
           **{k: m.get(k) for k in ("val_tstr", "best_val_tstr", "classifier_score", "domain_fd",
                                    "train_size")}}
    if result.error is not None:
        row["error"] = str(result.error)[:2000]
    return row


def best_config(cfg: Config, point: dict) -> dict:
    """The best trial as config deltas: the sweep config's own (everything but sweep.*, credentials
    redacted) plus the point, with a new output.run."""
    from raygan.secrets import redact_tree

    defaults, mine = Config().to_dict(), redact_tree(apply_point(cfg, point).to_dict())
    deltas = {}
    for section, values in mine.items():
        changed = {k: v for k, v in values.items() if v != defaults[section][k]}
        if changed and section != "sweep":
            deltas[section] = changed
    deltas.setdefault("output", {})["run"] = f"{cfg.output.run}-{cfg.sweep.name}-best"
    return deltas


def _summarise(cfg: Config, run: RunFolder, grid, *, storage: str, restored: bool) -> dict:
    trials = [trial_row(cfg, result, i, storage) for i, result in enumerate(grid)]
    scored = [t for t in trials if t["val_tstr"] is not None]
    if not scored:
        raise RuntimeError(f"GAN sweep {cfg.sweep.name}: no trial reported a result; see {storage} "
                           f"({trials[0].get('error', '') if trials else 'no trials'})")
    # A trial ASHA stopped early was scored on fewer steps than its config trains: prefer full ones.
    pool = [t for t in scored if t["complete"]] or scored
    best = max(pool, key=lambda t: t[METRIC])  # first of equals: trial order
    counts = {"TERMINATED": grid.num_terminated, "ERROR": grid.num_errors, "total": len(trials)}
    eval_dir = run.path / "eval"
    config_path = eval_dir / "gan_sweep_best.yaml"
    summary = {"sweep": cfg.sweep.name, "target": "gan",
               "metric": f"{METRIC} (TSTR on the real validation split, last rung)", "best": best,
               "best_config": str(config_path), "storage": storage, "restored": restored,
               "counts": counts}
    atomic_write_text(eval_dir / "gan_sweep_best.json", json.dumps(summary, indent=2))
    atomic_write_text(eval_dir / "gan_sweep_trials.json",
                      json.dumps({"sweep": cfg.sweep.name, "storage": storage, "trials": trials}, indent=2))
    header = (f"# raygan GAN sweep {cfg.sweep.name!r}: its best trial {best['trial_id']} ({best['config']};"
              f" val TSTR {best[METRIC]:.3f}) as deltas from the defaults\n")
    atomic_write_text(config_path, header + yaml.safe_dump(best_config(cfg, best["config"]), sort_keys=False))
    logger.info(f"GAN sweep {cfg.sweep.name}: {counts['TERMINATED']}/{counts['total']} trials terminated, "
                f"{counts['ERROR']} errored{' (restored)' if restored else ''}; best {best['config']}: val "
                f"TSTR {best[METRIC]:.3f}, classifier score {best['classifier_score']:.3f}, domain FD "
                f"{best['domain_fd']:.2f} at {best['gan_steps']} GAN steps; {eval_dir / 'gan_sweep_best.json'}")
    logger.info(f"best config: {config_path}\n  train it: raygan pipeline --config {config_path}")
    return {"best": best, "trials": trials, "counts": counts, "best_config": str(config_path)}


def _tuner(cfg: Config, run: RunFolder, forms: dict, trainable, *, storage_root: str, storage: str,
           marker: Path):
    """A restored Tune experiment if ``storage`` holds one, else a new one; and whether restored."""
    if tune.Tuner.can_restore(storage):
        logger.info(f"GAN sweep: restoring the Tune experiment in {storage} (finished trials are kept)")
        return tune.Tuner.restore(storage, trainable, resume_errored=True), True
    atomic_write_text(marker, json.dumps(_fingerprint(cfg), indent=2))
    space, num_samples = gan_param_space(cfg, forms)
    steps = steps_values(cfg, forms)
    scheduler = ASHAScheduler(time_attr="gan_steps", max_t=max(steps), reduction_factor=2,
                              grace_period=max(1, min(steps) // cfg.sweep.gan_rungs))
    logger.info(f"GAN sweep: {', '.join(f'{k}={v}' for k, v in cfg.sweep.gan_space.items())}, "
                f"{num_samples} sample(s); {cfg.sweep.gan_rungs} rung(s) per trial; storage {storage}")
    callbacks = mlflow_callbacks(cfg, run, storage, metrics=LOGGED_METRICS, step_key="gan_steps",
                                 params=_point)
    run_config = tune.RunConfig(storage_path=storage_root, name=cfg.sweep.name, verbose=1,
                                callbacks=callbacks)
    return tune.Tuner(trainable, param_space=space, run_config=run_config,
                      tune_config=tune.TuneConfig(metric=METRIC, mode="max", scheduler=scheduler,
                                                  num_samples=num_samples, reuse_actors=True,
                                                  max_concurrent_trials=cfg.sweep.max_concurrent)), False


def run_gan_sweep(cfg: Config, address: str | None = None) -> dict:
    """Run (or resume) the GAN search of cfg.sweep.gan_space; returns {"best": its row, "trials":
    rows, "counts", "best_config": the path of gan_sweep_best.yaml, "storage", "restored", "mlflow"}."""
    from raygan.cluster.sweep import MLFLOW_NOTE

    forms = check_gan_space(cfg)  # every key and value, before any work
    dataset = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    storage_root, storage, marker = sweep_storage(cfg, run)
    _check_same_grid(marker, _fingerprint(cfg), cfg.sweep.name, storage)

    resources = connect(cfg, address)
    check_shared_storage(cfg, run)
    if cfg.sweep.cpus_per_trial > resources.get("CPU", 0) or cfg.sweep.gpus_per_trial > resources.get("GPU", 0):
        logger.info(f"GAN sweep: warning: a trial asks for {cfg.sweep.cpus_per_trial:g} CPU / "
                    f"{cfg.sweep.gpus_per_trial:g} GPU but the cluster has {resources.get('CPU', 0):g} CPU "
                    f"/ {resources.get('GPU', 0):g} GPU now; trials wait until nodes with them join")
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
    out = _summarise(cfg, run, grid, storage=storage, restored=restored)
    return {**out, "storage": storage, "restored": restored,
            "mlflow": MLFLOW_NOTE if cfg.tracking.enabled else "tracking disabled"}
