"""Ray Tune sweeps of the downstream classifier over a trained run: the grid of ``cfg.sweep`` lists.

Each trial trains one classifier on synthetic data from the first T members (TSTR, ``synthetic_only``)
or on real + mixing_ratio x synthetic (seed 002 Figure 2; ratio 0 = real only), reports every epoch
to Tune, and is stopped early by ASHA on the real validation accuracy. The results land in
``<run>/tune/<sweep.name>`` (Tune's storage), ``<run>/eval/sweep_best.json`` and
``<run>/eval/sweep_trials.json`` (each trial with the Ray node it ran on).

Protocol cells (``sweep.protocols``, seed 001's Table 1): one more grid axis, ``protocol``, each
trial's cell (on the fly, augment, filter_rho, truncation; MLflow params ``protocol/<key>``), its data
built once on the driver by raygan.evaluation.protocol_sets; the grid beside the paper's numbers goes
to ``<run>/eval/table1_seed001.md`` / ``.json`` (raygan.reporting.seed001).

Several nodes: the training sets (one per T and mixing ratio) are built once on the driver from the
shards as written (raygan.evaluation.measured's rule, as the evaluation reads them; regenerated from
the generators only where that rule says so), put in the object store and handed to the trials by
reference, so a trial reads nothing from the run folder. Tune's storage is the run folder's URI
(``<run URI>/tune``) when output.root is a URI (s3://..., file:///mnt/shared), reachable from every
node; a local run folder on a cluster of more than one node is refused before any work.

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
from pathlib import Path

from ray import tune
from ray.tune.schedulers import ASHAScheduler

from raygan import seeds
from raygan.cluster.runtime import connect
from raygan.cluster.sweep_mlflow import SweepMLflowLogger, mlflow_callbacks
from raygan.config import Config, ConfigError
from raygan.data import RealDataset, load_dataset
from raygan.ensemble.boosting_loop import state_path
from raygan.runs import RunFolder, atomic_write_text, join_uri

logger = logging.getLogger(__name__)

# The tuner.pkl of a sweep started before raygan.cluster.sweep_mlflow names its callback by this path.
SweepMLflowCallback = SweepMLflowLogger

METRIC = "val_acc"
_DOWNSTREAM_ARCHS = ("simplecnn", "resnet18", "mlp")  # raygan.evaluation.classifiers.DOWNSTREAM
_LOGGED_METRICS = ("val_acc", "test_acc", "train_loss", "epoch", "best_val_acc", "best_val_epoch",
                   "test_acc_at_best_val", "train_size", "time_total_s")
_GRID_KEYS = ("lr", "batch_size", "weight_decay", "epochs", "arch", "mixing_ratio", "T")
MLFLOW_NOTE = ("one MLflow run per trial: a trial restored after a crash keeps logging into its "
               "earlier run (found by the raygan.trial_id tag), and its metric history then shows "
               "the epochs it re-ran twice")


# --- the grid ---------------------------------------------------------------------------------------
def sweep_values(cfg: Config) -> dict[str, list]:
    """Every swept list, with T for sweep.members (empty: ensemble.members) and, for synthetic_only,
    no mixing_ratio (it would only duplicate trials)."""
    s = cfg.sweep
    values = {"lr": list(s.lr), "batch_size": list(s.batch_size), "weight_decay": list(s.weight_decay),
              "epochs": list(s.epochs), "arch": list(s.arch), "mixing_ratio": list(s.mixing_ratio),
              "T": list(s.members) or [cfg.ensemble.members]}
    if s.synthetic_only:
        values["mixing_ratio"] = [0.0]
    if s.protocols:  # seed 001's Table 1: a grid axis of protocol cells (raygan.config.protocol_cells)
        from raygan.config.protocol_cells import protocol_cells
        values["protocol"] = protocol_cells(cfg)
    return values


def _check_values(values: dict[str, list], dataset: RealDataset) -> None:
    def bad(key, why):
        raise ConfigError(f"sweep.{'members' if key == 'T' else key}: {values[key]!r} {why}")

    for key, vals in values.items():
        if not vals:
            bad(key, "is empty; give at least one value")
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    integer = lambda v: isinstance(v, int) and not isinstance(v, bool)  # noqa: E731
    if not all(number(v) and v > 0 for v in values["lr"]):
        bad("lr", "must hold numbers > 0")
    if not all(number(v) and v >= 0 for v in values["weight_decay"]):
        bad("weight_decay", "must hold numbers >= 0")
    if not all(number(v) and v >= 0 for v in values["mixing_ratio"]):
        bad("mixing_ratio", "must hold numbers >= 0 (synthetic / real)")
    if not all(integer(v) and v >= 2 for v in values["batch_size"]):
        bad("batch_size", "must hold integers >= 2")
    if not all(integer(v) and v >= 1 for v in values["epochs"]):
        bad("epochs", "must hold integers >= 1")
    if not all(integer(v) and v >= 1 for v in values["T"]):
        bad("T", "must hold integers >= 1 (ensemble sizes)")
    unknown = [a for a in values["arch"] if a not in _DOWNSTREAM_ARCHS]
    if unknown:
        bad("arch", f"holds unknown classifier(s) {unknown}; choose from {', '.join(_DOWNSTREAM_ARCHS)}")
    if dataset.kind == "points" and any(a != "mlp" for a in values["arch"]):
        bad("arch", f"holds convolutional classifiers but {dataset.name} samples are points; use mlp")


def _check_trained(cfg: Config, dataset: RealDataset, run: RunFolder, t_max: int) -> None:
    """The run folder must hold at least t_max complete members (or boosting steps) per class."""
    fix = (f"run `raygan train` with ensemble.members>={t_max} and output.run={cfg.output.run} "
           "first (or lower sweep.members)")
    if not run.manifest_path.exists():
        raise ConfigError(f"run folder {run.path} holds no trained ensemble; {fix}")
    run.check_compatible(cfg)
    for name in dataset.classes:
        have = sum(run.member_entry(name, t) is not None for t in range(t_max))
        if have < t_max:
            raise ConfigError(f"run folder {run.path} has {have} of the {t_max} trained members of "
                              f"class {name} the sweep needs; {fix}")
        if cfg.ensemble.method != "independent":
            state = state_path(run, name)
            steps = len(json.loads(state.read_text())["steps"]) if state.exists() else 0
            if steps < t_max:
                raise ConfigError(f"run folder {run.path} has {steps} of the {t_max} "
                                  f"{cfg.ensemble.method} steps of class {name}; {fix}")


def param_space(cfg: Config, values: dict[str, list]) -> dict:
    """Grid search over every list with more than one value; num_samples repeats become seeds.

    Tune's num_samples would repeat the grid with the same seed; a grid over
    seed = eval.seed + r (r < num_samples) is the same number of trials, each reproducible.
    """
    space = {k: tune.grid_search(v) if len(v) > 1 else v[0] for k, v in values.items()}
    trial_seeds = [seeds.offset(cfg.eval.seed, r) for r in range(cfg.sweep.num_samples)]
    space["seed"] = tune.grid_search(trial_seeds) if len(trial_seeds) > 1 else trial_seeds[0]
    space["synthetic_only"] = cfg.sweep.synthetic_only
    return space


# --- the training sets (built once, on the driver) ------------------------------------------------------
def _set_keys(cfg: Config, values: dict[str, list]) -> list[tuple[int, float]]:
    """(T, mixing_ratio) of every trial that trains on synthetic samples (ratio 0: the real split)."""
    return sorted({(int(T), float(r)) for T in values["T"] for r in values["mixing_ratio"]
                   if cfg.sweep.synthetic_only or r > 0})


def training_sets(cfg: Config, dataset: RealDataset, run: RunFolder, values: dict[str, list]
                  ) -> tuple[dict, dict]:
    """({(T, ratio): (x, y)}, {(T, ratio): source}) of every synthetic or mixed set the grid needs.

    The size-T synthetic set follows raygan.evaluation.measured (the shards as written, or the
    generators where the shards hold too few rows: source "regenerated"); a mixed set adds ratio x
    the real count of it to the real split, seeded by synth.seed as before."""
    from raygan.evaluation.curves import synthetic_set
    from raygan.evaluation.measured import REGENERATED, SHARDS, load_measured, pick_rows
    from raygan.evaluation.protocols import mix_real_synthetic

    keys = _set_keys(cfg, values)
    if not keys:
        return {}, {}
    run.pull("shards")  # a URI run: the shards come to this node's mirror (local: a no-op)
    measured = load_measured(cfg, dataset, run)
    from raygan.ensemble.counts import synthetic_count  # N_g's one rule

    sizes = {n: synthetic_count(cfg, dataset.train_sizes()[n]) for n in dataset.classes}
    synthetic = {}
    for T in sorted({T for T, _ in keys}):
        rows = pick_rows(run, cfg, dataset, measured, T, sizes)
        synthetic[T] = (measured.split(rows), SHARDS) if rows is not None else \
            (synthetic_set(run, cfg, dataset, T, seed=cfg.synth.seed), REGENERATED)
    sets = {(T, r): synthetic[T][0] if cfg.sweep.synthetic_only else
            mix_real_synthetic(dataset.train_split(), synthetic[T][0], r, seed=cfg.synth.seed)
            for T, r in keys}
    sources = {(T, r): synthetic[T][1] for T, r in keys}
    logger.info(f"sweep: {len(sets)} training set(s) built once for every trial "
                f"({', '.join(f'T={T} ratio={r:g}: {sources[T, r]}' for T, r in keys)})")
    return sets, sources


# --- the trial (runs in a Tune worker) ----------------------------------------------------------------
def sweep_trial(config: dict, cfg: Config, dataset: RealDataset, sets: dict, sources: dict) -> None:
    """One classifier on its training set, reporting to Tune every epoch (and the node it runs on).

    ``sets`` maps set_key(config) to an object reference of that set (training_sets, or a protocol
    cell's CellSet); a trial that trains on the real split alone finds none."""
    import ray
    import torch

    from raygan.evaluation.protocol_sets import set_key, trial_data
    from raygan.evaluation.protocols import train_classifier

    torch.set_num_threads(max(1, math.floor(cfg.sweep.cpus_per_trial)))
    device = "cuda" if cfg.sweep.gpus_per_trial > 0 and torch.cuda.is_available() else "cpu"
    key = set_key(config)
    data = trial_data(config, cfg, dataset, ray.get(sets[key]) if key in sets else None, sources)
    node = ray.get_runtime_context().get_node_id()
    best = {"val_acc": -1.0, "test_acc": float("nan"), "epoch": 0, "best_test_acc": -1.0}

    def report(record: dict) -> None:
        if record["val_acc"] > best["val_acc"]:
            best.update(val_acc=record["val_acc"], test_acc=record["test_acc"], epoch=record["epoch"])
        best["best_test_acc"] = max(best["best_test_acc"], record["test_acc"])  # seed 001's figure
        tune.report({**record, "best_val_acc": best["val_acc"], "best_val_epoch": best["epoch"],
                     "test_acc_at_best_val": best["test_acc"], "best_test_acc": best["best_test_acc"],
                     "node_id": node, **data.figures()})

    train_classifier(*data.train, val=dataset.val, test=dataset.test, n_classes=len(dataset.classes),
                     arch=config["arch"], epochs=int(config["epochs"]), lr=float(config["lr"]),
                     batch_size=int(config["batch_size"]),
                     weight_decay=float(config["weight_decay"]), augment=data.augment,
                     seed=int(config["seed"]), device=device, epoch_data=data.epoch_data,
                     on_epoch=report)


# --- the job ------------------------------------------------------------------------------------------
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


def check_shared_storage(cfg: Config, run: RunFolder) -> None:
    """A local run folder on a cluster of several nodes is refused: trials on the other nodes could not
    read it, and Tune (since Ray 2.7) needs a storage_path that every node reaches."""
    import ray

    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    if nodes > 1 and not run.is_remote:
        raise ConfigError(f"output.root {cfg.output.root!r} is a local folder but the Ray cluster has "
                          f"{nodes} nodes, whose trials cannot reach it; set output.root to shared storage "
                          "(a URI such as s3://bucket/prefix or file:///mnt/shared)")


def _grid_fingerprint(space_values: dict, cfg: Config) -> dict:
    return {"values": space_values, "num_samples": cfg.sweep.num_samples,
            "synthetic_only": cfg.sweep.synthetic_only, "eval_seed": cfg.eval.seed,
            "augment": cfg.eval.augment, "synth_seed": cfg.synth.seed,
            "samples_per_class": cfg.ensemble.samples_per_class, "weights": cfg.ensemble.weights,
            **({"samples_ratio": cfg.ensemble.samples_ratio} if cfg.ensemble.samples_ratio is not None else {})}


def _check_same_grid(marker: Path, fingerprint: dict, name: str, storage: str) -> None:
    """A restore keeps the stored grid; refuse a rerun whose sweep settings differ from it."""
    if tune.Tuner.can_restore(storage) and marker.exists():
        old = json.loads(marker.read_text())
        if old != json.loads(json.dumps(fingerprint)):
            raise ConfigError(f"sweep {name!r} in {storage} was started with other settings "
                              f"({old}); choose a new sweep.name or delete {storage}")


def trial_row(result, index: int) -> dict:
    """A trial's config, status and figures: last epoch, and the best validation epoch."""
    m = result.metrics or {}
    row = {"trial": index, "trial_id": m.get("trial_id") or Path(result.path).name, "path": result.path,
           "status": "TERMINATED" if result.error is None else "ERROR",
           "config": {k: v for k, v in (result.config or {}).items()},
           "epochs_run": m.get("epoch"), "val_acc": m.get("val_acc"), "test_acc": m.get("test_acc"),
           "best_val_acc": m.get("best_val_acc"), "best_val_epoch": m.get("best_val_epoch"),
           "test_acc_at_best_val": m.get("test_acc_at_best_val"), "train_size": m.get("train_size"),
           "train_source": m.get("train_source"), "node_id": m.get("node_id")}
    row.update({k: m[k] for k in ("best_test_acc", "kept_fraction") if m.get(k) is not None})
    if result.error is not None:
        row["error"] = str(result.error)[:2000]
    return row


def _summarise(cfg: Config, run: RunFolder, grid, *, storage: str, restored: bool
               ) -> tuple[dict, list[dict], dict]:
    """The sweep's rows, its best trial (written to eval/sweep_best.json) and the closing lines."""
    trials = [trial_row(result, i) for i, result in enumerate(grid)]
    finished = [t for t in trials if t["best_val_acc"] is not None]
    if not finished:
        raise RuntimeError(f"sweep {cfg.sweep.name}: no trial reported a result; see {storage} "
                           f"({trials[0].get('error', '') if trials else 'no trials'})")
    best = max(finished, key=lambda t: t["best_val_acc"])  # first of equals: trial order
    counts = {"TERMINATED": grid.num_terminated, "ERROR": grid.num_errors, "total": len(trials)}
    summary = {"sweep": cfg.sweep.name, "metric": "best_val_acc (real validation split)",
               "best": best, "storage": storage, "restored": restored, "counts": counts}
    atomic_write_text(run.path / "eval" / "sweep_best.json", json.dumps(summary, indent=2))
    atomic_write_text(run.path / "eval" / "sweep_trials.json",
                      json.dumps({"sweep": cfg.sweep.name, "storage": storage, "trials": trials},
                                 indent=2))
    for t in trials:
        if t["status"] == "ERROR":
            logger.info(f"sweep: trial {t['trial_id']} {t['config']} failed: "
                f"{t['error'].strip().splitlines()[-1] if t['error'].strip() else '?'}")
    shown = {k: best["config"].get(k) for k in (*_GRID_KEYS, "seed")}
    logger.info(f"sweep {cfg.sweep.name}: {counts['TERMINATED']}/{counts['total']} trials terminated, "
        f"{counts['ERROR']} errored{' (restored)' if restored else ''}; best {shown}: val "
        f"{best['best_val_acc']:.3f} at epoch {best['best_val_epoch']}, test "
        f"{best['test_acc_at_best_val']:.3f} (last epoch {best['epochs_run']}: val "
        f"{best['val_acc']:.3f}, test {best['test_acc']:.3f}); {run.path / 'eval' / 'sweep_best.json'}")
    return best, trials, counts


def _put_once(sets: dict) -> dict:
    """{key: object reference}: one copy of each set in the object store (protocol cells that differ
    in augment only share one set object)."""
    import ray

    refs: dict[int, object] = {}
    for data in sets.values():
        if id(data) not in refs:
            refs[id(data)] = ray.put(data)
    return {key: refs[id(data)] for key, data in sets.items()}


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
    _check_values(values, dataset)
    t_max = max(values["T"])
    run = RunFolder.for_config(cfg)
    resources = connect(cfg, address)
    check_shared_storage(cfg, run)  # first: on several nodes, a local run folder is the problem to fix
    _check_trained(cfg, dataset, run, t_max)

    storage_root, storage, marker = sweep_storage(cfg, run)
    fingerprint = _grid_fingerprint(values, cfg)
    _check_same_grid(marker, fingerprint, cfg.sweep.name, storage)

    if cfg.sweep.cpus_per_trial > resources.get("CPU", 0) or \
            cfg.sweep.gpus_per_trial > resources.get("GPU", 0):
        logger.info(f"sweep: warning: a trial asks for {cfg.sweep.cpus_per_trial:g} CPU / "
            f"{cfg.sweep.gpus_per_trial:g} GPU but the cluster has {resources.get('CPU', 0):g} CPU / "
            f"{resources.get('GPU', 0):g} GPU now; trials wait until nodes with them join")
    sets, sources = training_sets(cfg, dataset, run, values)
    if "protocol" in values:  # every trial trains on its cell's set, made from these
        from raygan.evaluation.protocol_sets import cell_sets
        sets, baseline = cell_sets(cfg, dataset, run, cells=values["protocol"], Ts=values["T"],
                                   batch_sizes=values["batch_size"],
                                   base={T: (sets[T, 0.0], sources[T, 0.0]) for T in values["T"]})
    refs = _put_once(sets)
    trainable = tune.with_resources(tune.with_parameters(sweep_trial, cfg=cfg, dataset=dataset, sets=refs,
                                                         sources=sources),
                                    {"cpu": cfg.sweep.cpus_per_trial, "gpu": cfg.sweep.gpus_per_trial})
    max_t = max(values["epochs"])
    scheduler = ASHAScheduler(time_attr="epoch", max_t=max_t,
                              grace_period=min(cfg.sweep.grace_period, max_t))
    run_config = tune.RunConfig(storage_path=storage_root, name=cfg.sweep.name,
                                callbacks=mlflow_callbacks(cfg, run, storage, metrics=_LOGGED_METRICS,
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
                                        max_concurrent_trials=cfg.sweep.max_concurrent,
                                        reuse_actors=True),  # same resources: skip a process start
            run_config=run_config)
    grid = tuner.fit()

    best, trials, counts = _summarise(cfg, run, grid, storage=storage, restored=restored)
    out = {"best": best, "trials": trials, "storage": storage, "restored": restored,
           "counts": counts, "mlflow": MLFLOW_NOTE if cfg.tracking.enabled else "tracking disabled"}
    if "protocol" in values:
        from raygan.reporting.seed001 import write_table1
        out["table1"] = write_table1(run.path, cfg, trials, baseline=baseline)
    return out
