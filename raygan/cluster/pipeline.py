"""The jobs: train an ensemble, synthesize shards, or both, on a Ray cluster or a local Ray.

Each job: validate config and data (before any work), connect, open the run folder and an MLflow
parent run, do its part, print a summary. `jobs/*.py` and the `raygan` CLI call these. Evaluation
is raygan.evaluation.job's evaluate_job, given the Ray steps here (the evaluation's units of work as
Ray tasks, raygan.cluster.evaluation; the audit on Ray); `raygan evaluate` on a local run with no
cluster named runs it without Ray (raygan.cluster.entry).
"""
from __future__ import annotations

import functools
import logging
import time

from raygan.audit.inputs import applicable, check_holdout
from raygan.cluster.runtime import connect, member_resources
from raygan.cluster.shards import write_shards
from raygan.cluster.train import train_ensemble
from raygan.config import Config
from raygan.data import RealDataset
from raygan.data.split_checks import check_classifiable
from raygan.evaluation.job import evaluate_job, prepare
from raygan.reporting.stages import StageClock, record_timing
from raygan.runs import RunFolder
from raygan.synthesis.shards import mixture_weights
from raygan.tracking import Tracker

logger = logging.getLogger(__name__)


def dataset_has_test_split(cfg: Config) -> bool:
    """The 2D grid has no labels to classify; its evaluation is Table 1 (raygan grid2d)."""
    return cfg.data.name != "grid2d"


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
        log_privacy_claim(run, tracker)
    logger.info(f"train: {len(entries)} members complete in {time.perf_counter() - t0:.0f}s")
    return {"run_dir": str(run.path), "members": entries, "trained_now": len(entries) - before}


def log_privacy_claim(run: RunFolder, tracker: Tracker) -> None:
    """A DP run's ledger in MLflow: the released set's epsilon and delta as metrics, privacy.json (the
    adjacency, unit, accountant, what was declared public and not covered) as an artifact."""
    ledger = run.manifest().get("privacy")
    if ledger:
        tracker.log_metrics({"privacy_epsilon": ledger["epsilon"], "privacy_delta": ledger["delta"]})
        tracker.log_artifact(run.path / "privacy.json")


def run_synth(cfg: Config, address: str | None = None,
              prepared: tuple[RealDataset, RunFolder] | None = None) -> dict:
    dataset, run = prepared or prepare(cfg)
    mixtures = mixture_weights(cfg, dataset, run)  # no trained members: refused before Ray starts
    connect(cfg, address)
    tracker = Tracker(cfg, "synthesize")
    with tracker.parent(run.path):
        shards = write_shards(cfg, dataset, run, mixtures, member_resources(cfg))
        tracker.log_metrics({"synthetic_rows": shards["rows"]})
    return {"run_dir": str(run.path), "shards": shards}


def evaluation_resources(cfg: Config, address: str | None = None) -> dict | None:
    """None: evaluate in this process; else the resources of each evaluation task.

    The evaluation fans out on Ray (raygan.cluster.evaluation: a task per classifier (T, repeat) and
    per set's quality metrics) when cluster.evaluate_as_task is true, or when it is null and members
    use GPUs (a GPU cluster's head often has none); else the job's driver runs the same units in turn.
    """
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


def _evaluate_on_ray(address: str | None):
    def evaluate(cfg: Config, dataset: RealDataset, run: RunFolder) -> dict:
        from raygan.cluster.evaluation import evaluate_on_ray
        from raygan.evaluation.curves import evaluate_run

        resources = evaluation_resources(cfg, address)
        if resources is None:
            return evaluate_run(cfg, dataset, run, mixing=cfg.eval.mixing)
        return evaluate_on_ray(cfg, dataset, run, resources, mixing=cfg.eval.mixing)
    return evaluate


def run_evaluate(cfg: Config, address: str | None = None,
                 prepared: tuple[RealDataset, RunFolder] | None = None, audit: bool = False,
                 clock: StageClock | None = None) -> dict:
    """TRTR, the TSTR ensemble-size curve and TRTS on the trained run (and, with ``audit``, the
    memorisation audit, logged into the same MLflow run), then the report: raygan.evaluation.job's
    evaluate_job with the evaluation fanned out on Ray where members use GPUs and the audit on Ray."""
    from raygan.cluster.audit import run_audit

    return evaluate_job(cfg, prepared=prepared, audit=audit, evaluate=_evaluate_on_ray(address),
                        audit_with=functools.partial(run_audit, address=address), clock=clock)


def run_pipeline(cfg: Config, address: str | None = None,
                 evaluate: bool = True) -> dict:
    """Train, synthesize, evaluate and report: real data to a measured synthetic set as one job; the
    time of each stage goes to eval/timing.json, the log and MLflow (raygan.reporting.stages)."""
    t0 = time.perf_counter()
    clock = StageClock()
    prepared = prepare(cfg)  # the dataset is loaded once for all three stages
    if evaluate and dataset_has_test_split(cfg):  # refused before training, not after it
        check_classifiable(prepared[0].classes, prepared[0].kind)
    if cfg.audit.enabled and applicable(cfg):
        check_holdout(cfg, prepared[0])
    with clock.stage("train"):
        trained = run_train(cfg, address, prepared)
    with clock.stage("synthesize"):
        synth = run_synth(cfg, address, prepared)
    if evaluate and dataset_has_test_split(cfg):
        synth.update(run_evaluate(cfg, address, prepared, audit=cfg.audit.enabled, clock=clock))
    elif cfg.audit.enabled:  # the memorisation audit (raygan.cluster.audit); points: "not applicable"
        from raygan.cluster.audit import run_audit
        with clock.stage("audit"):
            run_audit(cfg, address, run_dir=prepared[1].path, prepared=prepared)
    counts = synth["shards"]["counts"]
    logger.info(f"pipeline: {len(trained['members'])} members, {synth['shards']['rows']} synthetic rows "
        f"({', '.join(f'{k}: {sum(v.values())}' for k, v in counts.items())}) in "
        f"{time.perf_counter() - t0:.0f}s; run folder {trained['run_dir']}")
    return {**trained, **synth, "timing": record_timing(cfg, prepared[1].path, clock)}
