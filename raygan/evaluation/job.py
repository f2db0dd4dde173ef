"""The evaluate and audit jobs, in this process and without Ray (`raygan evaluate|audit` on a local run).

``evaluate_job`` opens the run and an MLflow parent run, evaluates (evaluate_run), audits when asked,
logs the metrics and writes the report; ``audit_job`` audits a run folder and logs into MLflow. Both
take the step that needs compute as an argument: by default it runs here, and raygan.cluster passes
its Ray version (the evaluation's units as Ray tasks, one audit task per class) when the job runs on a
cluster, so the bookkeeping, log lines and MLflow records are the same either way.

A run without complete shards (the measured set, raygan.evaluation.measured) is refused before the
MLflow run opens or anything is written.

``runs_here`` says which: a job runs here when no cluster is named (no --address, RAY_ADDRESS or
cluster.address) and the run folder is local; nothing is gained then by starting a local Ray, which
would only run the same code in another process of this machine.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Callable, Optional

from raygan.config import Config
from raygan.data import RealDataset, check_batch_fits, load_dataset
from raygan.privacy.accountant import check_privacy_data
from raygan.runs import RunFolder, is_uri
from raygan.tracking import Tracker

logger = logging.getLogger(__name__)

Evaluate = Callable[[Config, RealDataset, RunFolder], dict]
AuditCompute = Callable[[Config, RunFolder, RealDataset], dict]


def prepare(cfg: Config) -> tuple[RealDataset, RunFolder]:
    """Everything that can fail on bad input, before a cluster is touched or a file written."""
    dataset = load_dataset(cfg.data)
    check_batch_fits(dataset, cfg.train.batch_size)
    check_privacy_data(cfg, dataset.train_sizes(), dataset.groups)  # privacy on: delta below 1/N, a member's batch
    run = RunFolder.for_config(cfg)
    run.check_compatible(cfg)
    return dataset, run


def cluster_named(cfg: Config, address: Optional[str] = None) -> bool:
    """A Ray cluster to join: --address, else cluster.address, else RAY_ADDRESS."""
    return bool(address or cfg.cluster.address or os.environ.get("RAY_ADDRESS"))


def runs_here(cfg: Config, address: Optional[str] = None, *, job: str) -> bool:
    """The evaluate or audit job runs in this process: no cluster named, a local run folder, and (to
    evaluate) cluster.evaluate_as_task not asking for a Ray task."""
    if cluster_named(cfg, address) or is_uri(cfg.output.root):
        return False
    return job != "evaluate" or cfg.cluster.evaluate_as_task is not True


def log_evaluation(tracker: Tracker, result: dict) -> None:
    """TRTR, TRTS and the TSTR curve (one metric per T) into the parent run."""
    tracker.log_metrics({"trtr_test_acc": result["trtr"]["test_acc_mean"], "trts": result["trts"],
                         **{f"tstr_test_acc_T{r['T']}": r["test_acc_mean"] for r in result["tstr_curve"]}})


def log_audit(tracker: Tracker, privacy: dict, run: RunFolder) -> None:
    """Verdict as a tag, the headline numbers as metrics, privacy.json and the figure as artifacts."""
    if not tracker.enabled:
        return
    metrics = {"audit_warn": float(privacy["verdict"] == "warn")}
    metrics.update({f"audit_mia_auroc_{space}": v for space, v in privacy["mia_auroc"].items()
                    if v is not None})
    for name, c in privacy["classes"].items():
        key = re.sub(r"[^A-Za-z0-9_.-]", "_", name)  # MLflow metric names allow few characters
        for space, s in c["spaces"].items():
            for stat in ("fraction_below_p1", "fraction_below_p5", "near_duplicates", "mia_auroc"):
                if s["synthetic"].get(stat) is not None:
                    metrics[f"audit_{key}_{space}_{stat}"] = float(s["synthetic"][stat])
    for name in ("gan_leaks", "domias"):  # the calibrated attacks, all classes (raygan.audit.attacks)
        overall = (privacy.get("attacks") or {}).get(name, {}).get("overall") or {}
        metrics.update({f"audit_{name}_{k}": float(v) for k, v in overall.items()
                        if k == "auroc" or k.startswith("tpr_at_")})
    tracker.log_metrics(metrics)
    tracker.mlflow.set_tag("raygan.audit_verdict", privacy["verdict"])
    tracker.log_artifact(run.path / "audit" / "privacy.json")
    tracker.log_artifact(run.path / "audit" / "closest_pairs.png")


def _evaluate_here(cfg: Config, dataset: RealDataset, run: RunFolder) -> dict:
    from raygan.evaluation.curves import evaluate_run

    return evaluate_run(cfg, dataset, run, mixing=cfg.eval.mixing)


def _audit_here(cfg: Config, run: RunFolder, dataset: RealDataset) -> dict:
    from raygan.audit.run import audit_run

    # force: audit_job has already decided that privacy.json is out of date
    return audit_run(cfg, run.path, dataset=dataset, force=True)


def _stage(clock, name: str):
    """The pipeline's clock for stage ``name`` (raygan.reporting.stages), or nothing outside a pipeline."""
    return clock.stage(name) if clock is not None else contextlib.nullcontext()


def evaluate_job(cfg: Config, *, prepared: Optional[tuple[RealDataset, RunFolder]] = None,
                 audit: bool = False, evaluate: Optional[Evaluate] = None,
                 audit_with: Optional[Callable[..., Optional[dict]]] = None, clock=None) -> dict:
    """TRTR, the TSTR ensemble-size curve and TRTS on the trained run (and, with ``audit``, the
    memorisation audit, logged into the same MLflow run), then the report.

    ``evaluate(cfg, dataset, run)`` defaults to evaluate_run here; ``audit_with`` (called like
    ``audit_job``, which it defaults to) runs the audit. ``clock`` (the pipeline's StageClock) times
    the evaluate, audit and report stages.
    """
    from raygan.data.split_checks import check_classifiable
    from raygan.evaluation.measured import check_shards
    from raygan.reporting.report import write_report
    from raygan.runs.manifest import check_run_exists

    with _stage(clock, "evaluate"):
        dataset, run = prepared or prepare(cfg)
        check_classifiable(dataset.classes, dataset.kind)  # one class: every accuracy would be 1.000
        run.pull_outputs()  # a URI run folder: shards and generators come to this node (else a no-op)
        check_run_exists(run.path, run.location)  # no run at all: not "run synthesize"
        check_shards(cfg, dataset, run)  # no shards to measure: refused before MLflow or eval/ is touched
    tracker = Tracker(cfg, "evaluate")
    with tracker.parent(run.path):
        with _stage(clock, "evaluate"):
            result = (evaluate or _evaluate_here)(cfg, dataset, run)
            log_evaluation(tracker, result)
        if audit:  # before the report, which shows the privacy section when audit/privacy.json exists
            with _stage(clock, "audit"):
                (audit_with or audit_job)(cfg, run_dir=run.path, prepared=(dataset, run), tracker=tracker)
        with _stage(clock, "report"):
            report = write_report(run.path, tracker)
    logger.info(f"report: {report}")
    return {"evaluation": result, "report": str(report)}


def audit_job(cfg: Config, *, run_dir: str | Path | None = None, force: bool = False,
              prepared: Optional[tuple[RealDataset, RunFolder]] = None, tracker: Optional[Tracker] = None,
              compute: Optional[AuditCompute] = None) -> Optional[dict]:
    """Audit a run folder (default: the one cfg.output names); None where it does not apply.

    With ``tracker`` (the pipeline's evaluate run) the numbers go into that MLflow run and the caller
    writes the report; alone it opens an "audit" parent run and refreshes an existing report.md.
    A rerun whose shards and audit settings are unchanged reuses privacy.json unless ``force``.
    ``compute(cfg, run, dataset)`` makes privacy.json: audit_run here by default.
    """
    from raygan.audit.inputs import applicable, check_config, check_run, up_to_date

    check_config(cfg)
    run = check_run(run_dir if run_dir is not None else RunFolder.for_config(cfg).path)
    if not applicable(cfg):
        logger.info(f"audit: not applicable to {cfg.data.name} (points, not images); nothing written")
        return None
    run.check_compatible(cfg)
    privacy, dataset = None, None
    if not force and up_to_date(cfg, run):
        privacy = json.loads((run.path / "audit" / "privacy.json").read_text())
        logger.info(f"audit: {run.path / 'audit' / 'privacy.json'} is up to date with the shards (skipped; "
                    f"--force recomputes); verdict {privacy['verdict'].upper()}")
    else:
        dataset = prepared[0] if prepared is not None else load_dataset(cfg.data)
    compute = compute or _audit_here
    if tracker is not None:
        privacy = privacy or compute(cfg, run, dataset)
        log_audit(tracker, privacy, run)
        return privacy
    tracker = Tracker(cfg, "audit")
    with tracker.parent(run.path):
        privacy = privacy or compute(cfg, run, dataset)
        log_audit(tracker, privacy, run)
        if (run.path / "report.md").exists():
            from raygan.reporting.report import write_report
            logger.info(f"report: {write_report(run.path, tracker)}")
    return privacy
