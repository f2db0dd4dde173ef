"""Evaluation of a trained run: the ensemble-size curve and everything evaluate_run measures (no Ray;
the cluster layer wraps these).

Seed 000 Figure 2: accuracy against T = 1..T_max from one trained ensemble (independent: the first T
members with p_t = 1/T; boosting: the mixture after step T), N_g = N real per class for every T.
Figure 3: test accuracy over classifier training epochs for each T.

``evaluate_run`` measures the shards as written (raygan.evaluation.measured: a run without complete
shards is refused before any work) and runs the units of work of raygan.evaluation.units one after
the other here; raygan.cluster.evaluation runs the same units as Ray tasks. The sets the units train
on: raygan.evaluation.measured (the shards, else regenerated) and raygan.evaluation.generated (the
generators' mixtures, on-the-fly generation, recursive rounds); the classifier fit:
raygan.classifiers.fit.
"""
from __future__ import annotations

import json
from pathlib import Path

from raygan.config import Config
from raygan.data import RealDataset
from raygan.runs import RunFolder


def write_json(path: Path, obj) -> None:
    from raygan.runs import atomic_write_text
    atomic_write_text(path, json.dumps(obj, indent=2))


def prepare_evaluation(cfg: Config, dataset: RealDataset, run: RunFolder):
    """Everything evaluate_run checks before any work: eval.metrics (a missing Inception weights file
    fails now, not after the training) and the shards (load_measured); returns the measured set."""
    from raygan.evaluation.measured import load_measured

    if cfg.eval.metrics:
        from raygan.metrics.quality import validate_metrics
        validate_metrics(cfg)
    return load_measured(cfg, dataset, run)


def ensemble_size_curve(run: RunFolder, cfg: Config, dataset: RealDataset, measured=None) -> list[dict]:
    """TSTR accuracy (mean +- std over R classifiers) for T = 1..T_max, with per-epoch histories."""
    from raygan.evaluation import units
    from raygan.evaluation.packs import run_units

    inputs = units.EvalInputs(cfg, dataset, measured or prepare_evaluation(cfg, dataset, run), run)
    tstr = [j for j in units.evaluation_jobs(cfg, dataset) if j.kind == "tstr"]
    needed = {key for j in tstr for key in j.needs}  # the reference classifier, when filtering
    jobs = [j for j in units.evaluation_jobs(cfg, dataset) if j.key in needed] + tstr
    return units.tstr_rows(cfg, jobs, run_units(inputs, jobs))


def finish_evaluation(run: RunFolder, result: dict) -> dict:
    """The driver's writes: eval/evaluation.json, then the manifest's evaluation entry."""
    write_json(run.path / "eval" / "evaluation.json", result)
    run.update_manifest(evaluation="eval/evaluation.json")
    return result


def evaluate_run(cfg: Config, dataset: RealDataset, run: RunFolder, *, mixing: bool = False) -> dict:
    """TRTR, the TSTR ensemble-size curve, TRTS (and the mixing table if asked) measured on the shards
    as written; eval/evaluation.json. The units of work (raygan.evaluation.units) run here in turn.

    With eval.metrics set, also the sample-quality metrics per T (``quality``) and, when "pca" is
    listed, the PCA baseline's TSTR accuracy (``pca_tstr``); eval.metrics and the shards are checked
    first. Every synthetic number carries its ``source`` (``trts_source`` for TRTS): "shards", or
    "regenerated" where the shards cannot make that set (raygan.evaluation.measured). The classifiers
    train in packs (raygan.evaluation.packs, eval.pack_size).
    """
    from raygan.evaluation import units
    from raygan.evaluation.packs import run_units

    measured = prepare_evaluation(cfg, dataset, run)
    inputs = units.EvalInputs(cfg, dataset, measured, run)
    jobs = units.evaluation_jobs(cfg, dataset, mixing=mixing)
    results = run_units(inputs, jobs)
    return finish_evaluation(run, units.assemble(cfg, dataset, jobs, results, mixing=mixing))
