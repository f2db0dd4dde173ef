"""The jobs: train an ensemble, synthesize shards, or both, on a Ray cluster or a local Ray.

Each job: validate config and data (before any work), connect, open the run folder and an MLflow
parent run, do its part, print a summary. `jobs/*.py` and the `raygan` CLI call these.
"""
from __future__ import annotations

import logging

import time

import numpy as np
import ray

from raygan.cluster.runtime import connect, member_resources
from raygan.cluster.shards import write_shards
from raygan.cluster.train import train_ensemble
from raygan.config import Config, ConfigError
from raygan.data import RealDataset, check_batch_fits, load_dataset
from raygan.runs import RunFolder
from raygan.tracking import Tracker
from raygan.cluster.runtime import task_setup

logger = logging.getLogger(__name__)


def dataset_has_test_split(cfg: Config) -> bool:
    """The 2D grid has no labels to classify; its evaluation is Table 1 (raygan grid2d)."""
    return cfg.data.name != "grid2d"


def prepare(cfg: Config) -> tuple[RealDataset, RunFolder]:
    """Everything that can fail on bad input, before a cluster is touched or a file written."""
    dataset = load_dataset(cfg.data)
    check_batch_fits(dataset, cfg.train.batch_size)
    run = RunFolder.for_config(cfg)
    run.check_compatible(cfg)
    return dataset, run


def mixture_weights(cfg: Config, dataset: RealDataset, run: RunFolder) -> dict[str, list[float]]:
    """p_t per class: the configured/uniform weights for independent members, the boosted ones else."""
    manifest = run.manifest()
    T = cfg.ensemble.members
    out = {}
    for name in dataset.classes:
        missing = [t for t in range(T) if f"{name}/{t}" not in manifest["members"]]
        if missing:
            raise ConfigError(f"class {name} has no trained member(s) {missing} in {run.path}; "
                              "run the training job (raygan train) first")
        if cfg.ensemble.method == "independent":
            w = cfg.ensemble.weights or [1.0 / T] * T
        else:
            w = manifest["mixtures"][name][:T]
        out[name] = (np.asarray(w) / np.sum(w)).tolist()
    return out


def run_train(cfg: Config, address: str | None = None,
              prepared: tuple[RealDataset, RunFolder] | None = None) -> dict:
    dataset, run = prepared or prepare(cfg)
    resources = connect(cfg, address)
    run.write_config(cfg)
    logger.info(f"cluster: {resources.get('CPU', 0):g} CPU, {resources.get('GPU', 0):g} GPU; run {run.location}")
    logger.info(f"data: {dataset.summary()}")
    t0 = time.perf_counter()
    before = sum(run.member_entry(name, t) is not None for name in dataset.classes
                 for t in range(cfg.ensemble.members))
    tracker = Tracker(cfg, "train")
    with tracker.parent(run.path):
        entries = train_ensemble(cfg, dataset, run, tracker)
        tracker.log_metrics({"members": len(entries), "train_seconds": time.perf_counter() - t0})
    logger.info(f"train: {len(entries)} members complete in {time.perf_counter() - t0:.0f}s")
    return {"run_dir": str(run.path), "members": entries, "trained_now": len(entries) - before}


def run_synth(cfg: Config, address: str | None = None,
              prepared: tuple[RealDataset, RunFolder] | None = None) -> dict:
    dataset, run = prepared or prepare(cfg)
    connect(cfg, address)
    mixtures = mixture_weights(cfg, dataset, run)
    tracker = Tracker(cfg, "synthesize")
    with tracker.parent(run.path):
        shards = write_shards(cfg, dataset, run, mixtures, member_resources(cfg))
        tracker.log_metrics({"synthetic_rows": shards["rows"]})
    return {"run_dir": str(run.path), "shards": shards}


def evaluation_resources(cfg: Config, address: str | None = None) -> dict | None:
    """None: evaluate in this process; else the resources of the one evaluation task."""
    as_task = cfg.cluster.evaluate_as_task
    if as_task is False or (as_task is None and cfg.cluster.gpus_per_member == 0):
        return None  # no Ray needed to decide
    connect(cfg, address)  # idempotent; a standalone `raygan evaluate` has not joined Ray yet
    member = member_resources(cfg)
    if as_task is None:
        as_task = member["num_gpus"] > 0
    if not as_task:
        return None
    return {"num_cpus": member["num_cpus"], "num_gpus": min(1.0, member["num_gpus"]) or 0}


@ray.remote
def evaluate_task(cfg_dict: dict, run_location: str, dataset: RealDataset) -> dict:
    """evaluate_run on a worker (its GPU when it has one); the results land in the run folder."""

    from raygan.evaluation.curves import evaluate_run

    cfg = task_setup(cfg_dict)
    run = RunFolder.at(run_location)
    run.pull_outputs()
    return evaluate_run(cfg, dataset, run, mixing=cfg.eval.mixing)


def run_evaluate(cfg: Config, address: str | None = None,
                 prepared: tuple[RealDataset, RunFolder] | None = None, audit: bool = False) -> dict:
    """TRTR, the TSTR ensemble-size curve and TRTS on the trained run (and, with ``audit``, the
    memorisation audit, logged into the same MLflow run), then the report."""
    from raygan.evaluation.curves import evaluate_run
    from raygan.reporting.report import write_report

    dataset, run = prepared or prepare(cfg)
    run.pull_outputs()  # a URI run folder: shards and generators come to this node (else a no-op)
    resources = evaluation_resources(cfg, address)
    tracker = Tracker(cfg, "evaluate")
    with tracker.parent(run.path):
        if resources is None:
            result = evaluate_run(cfg, dataset, run, mixing=cfg.eval.mixing)
        else:
            logger.info(f"evaluate: as a Ray task ({resources['num_cpus']} CPU, {resources['num_gpus']} GPU); "
                "its lines appear in the job's log")
            result = ray.get(evaluate_task.options(**resources, max_retries=cfg.cluster.max_retries)
                             .remote(cfg.to_dict(), run.location, ray.put(dataset)))
            run.pull("eval")  # what the task wrote (a no-op for a local run folder)
            for r in result["tstr_curve"]:
                logger.info(f"TSTR T={r['T']}: test {r['test_acc_mean']:.3f} ± {r['test_acc_std']:.3f}")
        tracker.log_metrics({"trtr_test_acc": result["trtr"]["test_acc_mean"], "trts": result["trts"],
                             **{f"tstr_test_acc_T{r['T']}": r["test_acc_mean"]
                                for r in result["tstr_curve"]}})
        if audit:  # before the report, which shows the privacy section when audit/privacy.json exists
            from raygan.cluster.audit import run_audit
            run_audit(cfg, address, run_dir=run.path, prepared=(dataset, run), tracker=tracker)
        report = write_report(run.path, tracker)
    run.push_outputs()  # plots and figures, written without atomic_write_* (a no-op locally)
    logger.info(f"report: {report}")
    return {"evaluation": result, "report": str(report)}


def run_pipeline(cfg: Config, address: str | None = None,
                 evaluate: bool = True) -> dict:
    """Train, synthesize, evaluate and report: real data to a measured synthetic set as one job."""
    t0 = time.perf_counter()
    prepared = prepare(cfg)  # the dataset is loaded once for all three stages
    trained = run_train(cfg, address, prepared)
    synth = run_synth(cfg, address, prepared)
    if evaluate and dataset_has_test_split(cfg):
        synth.update(run_evaluate(cfg, address, prepared, audit=cfg.audit.enabled))
    elif cfg.audit.enabled:  # the memorisation audit (raygan.cluster.audit); points: "not applicable"
        from raygan.cluster.audit import run_audit
        run_audit(cfg, address, run_dir=prepared[1].path, prepared=prepared)
    prepared[1].push_outputs()  # a URI run folder: what the stages wrote without atomic_write_*
    counts = synth["shards"]["counts"]
    logger.info(f"pipeline: {len(trained['members'])} members, {synth['shards']['rows']} synthetic rows "
        f"({', '.join(f'{k}: {sum(v.values())}' for k, v in counts.items())}) in "
        f"{time.perf_counter() - t0:.0f}s; run folder {trained['run_dir']}")
    return {**trained, **synth}
