"""The GAN search (``sweep.target: gan``), without Ray: a trial's point, where its run folder lives, the
search's fingerprint, its rows and its summary.

Every trial applies one point of ``sweep.gan_space`` (raygan.config.gan_space) to the config and runs
the trial of raygan.sweeps.gan_trial: a small independent ensemble trained in its own run folder,
``<storage>/trials/<trial id>``, scored after each rung on the real validation split. The results:
``<run>/eval/gan_sweep_best.json``, ``gan_sweep_trials.json`` and ``gan_sweep_best.yaml``, the best
trial as a config file of deltas for ``raygan pipeline --config``; the best trial is the one with the
highest val_tstr at its last rung, among the trials that ran all of their GAN steps if any did. The
Tune wiring (search space, scheduler, trainable, restore): raygan.cluster.sweep_gan.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import yaml

from raygan.config import Config
from raygan.config.gan_space import SPACE_KEYS, apply_point, expand, space_keys
from raygan.runs import RunFolder, atomic_write_text, is_uri, join_uri
from raygan.sweeps.gan_trial import METRIC

logger = logging.getLogger(__name__)

LOGGED_METRICS = ("val_tstr", "val_tstr_last_epoch", "best_val_tstr", "classifier_score", "domain_fd",
                  "gan_steps", "rung", "train_size", "time_total_s")


def trial_point(config: dict) -> dict:
    """A trial's point, tied keys spread out, as plain Python values (Tune's samplers may give numpy
    scalars)."""
    mine = {k: v for k, v in config.items() if all(part in SPACE_KEYS for part in space_keys(k))}
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in expand(mine).items()}


def trial_folder(storage: str, trial_id: str) -> str:
    """Where a trial's run folder lives: under the sweep's storage, a URI when that is one."""
    return join_uri(storage, "trials", trial_id) if is_uri(storage) else f"{storage}/trials/{trial_id}"


def fingerprint(cfg: Config) -> dict:
    """What the search was started with (the grid marker's content): a rerun with other settings is
    refused (raygan.sweeps.shared.check_same_grid)."""
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
    point = trial_point(result.config or {})
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


def summarise(cfg: Config, run: RunFolder, grid, *, storage: str, restored: bool) -> dict:
    """The search's rows, its best trial (eval/gan_sweep_best.json and .yaml) and the closing lines,
    from Tune's ResultGrid ``grid``."""
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
