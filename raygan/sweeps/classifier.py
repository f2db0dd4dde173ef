"""The classifier sweep over a trained run, without Ray: the grid of ``cfg.sweep`` lists, its checks,
the training sets built once on the driver, one trial's training and the sweep's rows and summary.

Each trial trains one classifier on synthetic data from the first T members (TSTR, ``synthetic_only``)
or on real + mixing_ratio x synthetic (seed 002 Figure 2; ratio 0 = real only), and reports every
epoch (``run_trial``). The training sets (one per T and mixing ratio) are made once from the shards as
written (raygan.evaluation.measured's rule, as the evaluation reads them; regenerated from the
generators only where that rule says so); protocol cells' sets come from raygan.sweeps.cells. The
results: ``<run>/eval/sweep_best.json`` and ``<run>/eval/sweep_trials.json`` (each trial with the Ray
node it ran on). The Tune wiring (search space, scheduler, trainable, restore): raygan.cluster.sweep.
"""
from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path
from typing import Callable, Optional

from raygan import seeds
from raygan.classifiers.fit import train_classifier
from raygan.classifiers.networks import DOWNSTREAM
from raygan.classifiers.pack import PackMember, solo_reason, train_classifier_pack
from raygan.config import Config, ConfigError
from raygan.data import RealDataset
from raygan.ensemble.boosting_loop import state_path
from raygan.evaluation.measured import load_measured, shards_else_regenerated
from raygan.evaluation.protocols import mix_real_synthetic
from raygan.runs import RunFolder, atomic_write_text
from raygan.sweeps.cells import TrialData, trial_data

logger = logging.getLogger(__name__)

METRIC = "val_acc"
LOGGED_METRICS = ("val_acc", "val_acc_sd", "test_acc", "train_loss", "epoch", "best_val_acc", "best_val_epoch",
                  "test_acc_at_best_val", "train_size", "time_total_s")
_GRID_KEYS = ("lr", "batch_size", "weight_decay", "epochs", "arch", "mixing_ratio", "T")


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


def check_values(values: dict[str, list], dataset: RealDataset) -> None:
    """Every swept list checked before any work: one ConfigError naming the sweep.* key."""
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
    unknown = [a for a in values["arch"] if a not in DOWNSTREAM]
    if unknown:
        bad("arch", f"holds unknown classifier(s) {unknown}; choose from {', '.join(DOWNSTREAM)}")
    if dataset.kind == "points" and any(a != "mlp" for a in values["arch"]):
        bad("arch", f"holds convolutional classifiers but {dataset.name} samples are points; use mlp")


def check_trained(cfg: Config, dataset: RealDataset, run: RunFolder, t_max: int) -> None:
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


def set_keys(cfg: Config, values: dict[str, list]) -> list[tuple[int, float]]:
    """(T, mixing_ratio) of every trial that trains on synthetic samples (ratio 0: the real split)."""
    return sorted({(int(T), float(r)) for T in values["T"] for r in values["mixing_ratio"]
                   if cfg.sweep.synthetic_only or r > 0})


def training_sets(cfg: Config, dataset: RealDataset, run: RunFolder, values: dict[str, list],
                  skip: tuple = ()) -> tuple[dict, dict]:
    """({(T, ratio): (x, y)}, {(T, ratio): source}) of every synthetic or mixed set the grid needs but
    those of ``skip`` (trials that read the shards themselves: raygan.sweeps.trainer_sets).

    The size-T synthetic set follows raygan.evaluation.measured.shards_else_regenerated (the shards as
    written, or the generators where the shards hold too few rows: source "regenerated"); a mixed set
    adds ratio x the real count of it to the real split, seeded by synth.seed as before."""
    keys = [key for key in set_keys(cfg, values) if key not in skip]
    if not keys:
        return {}, {}
    run.pull("shards")  # a URI run: the shards come to this node's mirror (local: a no-op)
    measured = load_measured(cfg, dataset, run)
    synthetic = {T: shards_else_regenerated(run, cfg, dataset, measured, T) for T in sorted({T for T, _ in keys})}
    sets = {(T, r): synthetic[T][0] if cfg.sweep.synthetic_only else
            mix_real_synthetic(dataset.train_split(), synthetic[T][0], r, seed=cfg.synth.seed)
            for T, r in keys}
    sources = {(T, r): synthetic[T][1] for T, r in keys}
    logger.info(f"sweep: {len(sets)} training set(s) built once for every trial "
                f"({', '.join(f'T={T} ratio={r:g}: {sources[T, r]}' for T, r in keys)})")
    return sets, sources


# --- one trial ----------------------------------------------------------------------------------------
def run_trial(config: dict, cfg: Config, dataset: RealDataset, got, sources: dict, *, device: str,
              report: Callable[[dict], None], context: dict, data: Optional[TrialData] = None,
              wrap: Optional[Callable] = None) -> None:
    """One classifier on the training set the sweep handed the trial (``got``: its set, a protocol
    cell's CellSet, or None for the real split), calling ``report`` every epoch with the epoch's record,
    the best validation epoch's figures so far, ``context`` (the Ray node it runs on) and the data's
    figures. A worker of a trial trained as a TorchTrainer passes its ``data`` (its share of every
    epoch) and ``wrap`` (its DistributedDataParallel) instead (raygan.cluster.sweep_trainer)."""
    data = data or trial_data(config, cfg, dataset, got, sources)
    best = {"val_acc": -1.0, "test_acc": float("nan"), "epoch": 0, "best_test_acc": -1.0}

    def on_epoch(record: dict) -> None:
        if record["val_acc"] > best["val_acc"]:
            best.update(val_acc=record["val_acc"], test_acc=record["test_acc"], epoch=record["epoch"])
        best["best_test_acc"] = max(best["best_test_acc"], record["test_acc"])  # seed 001's figure
        report({**record, "best_val_acc": best["val_acc"], "best_val_epoch": best["epoch"],
                "test_acc_at_best_val": best["test_acc"], "best_test_acc": best["best_test_acc"],
                **context, **data.figures()})

    settings = dict(val=dataset.val, test=dataset.test, n_classes=len(dataset.classes), arch=config["arch"],
                    epochs=int(config["epochs"]), lr=float(config["lr"]), batch_size=int(config["batch_size"]),
                    weight_decay=float(config["weight_decay"]), augment=data.augment, device=device)
    repeats = cfg.sweep.repeats if wrap is None else 1
    if repeats == 1:
        train_classifier(*data.train, seed=int(config["seed"]), epoch_data=data.epoch_data, on_epoch=on_epoch,
                         wrap=wrap, **settings)
        return
    trial_seeds = [seeds.offset(int(config["seed"]), j) for j in range(repeats)]
    mean = lambda records: _mean_record(records, on_epoch)  # noqa: E731
    if solo_reason(config["arch"]) is None:  # the trial's classifiers as one pack
        train_classifier_pack([PackMember(seed=s, train=None if data.epoch_data else data.train,
                                          epoch_data=data.epoch_data) for s in trial_seeds],
                              sample_shape=tuple(data.train[0].shape[1:]), on_epoch=mean, **settings)
        return
    runs = [train_classifier(*data.train, seed=s, epoch_data=data.epoch_data, **settings) for s in trial_seeds]
    for records in zip(*(run.history for run in runs)):  # one after another, then reported epoch by epoch
        mean(list(records))


def _mean_record(records: list[dict], on_epoch: Callable[[dict], None]) -> None:
    """One epoch of a trial's repeats as one record: their mean figures and the spread of val_acc."""
    val = [r["val_acc"] for r in records]
    on_epoch({"epoch": records[0]["epoch"], "val_acc": statistics.fmean(val),
              "test_acc": statistics.fmean(r["test_acc"] for r in records),
              "train_loss": statistics.fmean(r["train_loss"] for r in records),
              "val_acc_sd": statistics.pstdev(val), "repeats": len(records)})


# --- the results --------------------------------------------------------------------------------------
def grid_fingerprint(space_values: dict, cfg: Config) -> dict:
    """What the sweep was started with (the grid marker's content): a rerun with other settings is
    refused (raygan.sweeps.shared.check_same_grid)."""
    return {"values": space_values, "num_samples": cfg.sweep.num_samples,
            "synthetic_only": cfg.sweep.synthetic_only, "eval_seed": cfg.eval.seed,
            "augment": cfg.eval.augment, "synth_seed": cfg.synth.seed,
            "samples_per_class": cfg.ensemble.samples_per_class, "weights": cfg.ensemble.weights,
            **({"samples_ratio": cfg.ensemble.samples_ratio} if cfg.ensemble.samples_ratio is not None else {}),
            **({"repeats": cfg.sweep.repeats} if cfg.sweep.repeats != 1 else {}),
            **({"trainer_min_rows": cfg.sweep.trainer_min_rows, "trainer_workers": cfg.sweep.trainer_workers}
               if cfg.sweep.trainer_min_rows is not None else {})}


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


def summarise(cfg: Config, run: RunFolder, grid, *, storage: str, restored: bool
              ) -> tuple[dict, list[dict], dict]:
    """The sweep's rows, its best trial (written to eval/sweep_best.json) and the closing lines, from
    Tune's ResultGrid ``grid``."""
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
