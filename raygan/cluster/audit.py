"""The memorisation audit on Ray (`raygan audit RUN`, jobs/audit.py, a step of the pipeline job).

One task per class on the resources of a member task (a GPU each where the cluster has GPUs: the
chunked search runs on the task's device); before them one task trains the domain classifier, or loads
it from <run>/eval/, when audit.spaces has domain. The driver reads the shards, ray.puts each class's
tensors once, collects the tasks with ray.wait and makes the summary, figure, privacy.json and verdict
(raygan.audit.run.finish), logging them to MLflow. The maths is raygan.audit's, without Ray.
"""
from __future__ import annotations

import logging

import json
import re
from pathlib import Path
from typing import Optional

import ray
import torch

from raygan.audit.statistics import ClassAudit, audit_class
from raygan.audit.inputs import (ClassInputs, applicable, check_config, check_run, domain_model, load_inputs,
                                 up_to_date)
from raygan.audit.run import finish
from raygan.cluster.runtime import connect, member_resources
from raygan.cluster.tasks import _device_for_task, wait_all
from raygan.config import Config
from raygan.runs import RunFolder
from raygan.tracking import Tracker
from raygan.cluster.runtime import task_setup

logger = logging.getLogger(__name__)


@ray.remote
def domain_model_task(dataset, run_path: str, cfg_dict: dict) -> torch.nn.Module:
    task_setup(cfg_dict)
    return domain_model(dataset, RunFolder(Path(run_path)), _device_for_task())


@ray.remote
def audit_class_task(inputs: ClassInputs, model: Optional[torch.nn.Module], cfg_dict: dict) -> ClassAudit:
    cfg = task_setup(cfg_dict)
    return audit_class(inputs.name, inputs.train, inputs.holdout, inputs.synthetic, inputs.members,
                       shard_index=inputs.shard_index, spaces=cfg.audit.spaces, domain_model=model,
                       chunk_size=cfg.audit.chunk_size, device=_device_for_task())


def log_to_mlflow(tracker: Tracker, privacy: dict, run: RunFolder) -> None:
    """Verdict as a tag, the headline numbers as metrics, privacy.json and the figure as artifacts."""
    if not tracker.enabled:
        return
    metrics = {"audit_warn": float(privacy["verdict"] == "warn")}
    metrics.update({f"audit_mia_auroc_{space}": v for space, v in privacy["mia_auroc"].items()
                    if v is not None})
    for name, c in privacy["classes"].items():
        key = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        for space, s in c["spaces"].items():
            for stat in ("fraction_below_p1", "fraction_below_p5", "near_duplicates", "mia_auroc"):
                if s["synthetic"].get(stat) is not None:
                    metrics[f"audit_{key}_{space}_{stat}"] = float(s["synthetic"][stat])
    tracker.log_metrics(metrics)
    tracker.mlflow.set_tag("raygan.audit_verdict", privacy["verdict"])
    tracker.log_artifact(run.path / "audit" / "privacy.json")
    tracker.log_artifact(run.path / "audit" / "closest_pairs.png")


def _audit_on_ray(cfg: Config, run: RunFolder, dataset) -> dict:
    inputs = load_inputs(cfg, run, dataset)
    resources = {**member_resources(cfg), "max_retries": cfg.cluster.max_retries}
    model_ref = None
    if "domain" in cfg.audit.spaces:
        model_ref = domain_model_task.options(**resources, name="audit:domain_classifier").remote(
            dataset, str(run.path), cfg.to_dict())
    refs = {audit_class_task.options(**resources, name=f"audit:{c.name}").remote(
        ray.put(c), model_ref, cfg.to_dict()): c.name for c in inputs}
    done = wait_all(refs, lambda name, a: logger.info(f"audit: class {name} searched "
                                              f"({len(a.members)} synthetic samples)"))
    by_name = {a.class_name: a for a in done}
    return finish(cfg, run, inputs, [by_name[c.name] for c in inputs], dataset_name=dataset.name)


def run_audit(cfg: Config, address: str | None = None, *,
              run_dir: str | Path | None = None, force: bool = False, prepared=None,
              tracker: Optional[Tracker] = None) -> Optional[dict]:
    """Audit a run folder (default: the one cfg.output names); None where it does not apply.

    With ``tracker`` (the pipeline's evaluate run) the numbers go into that MLflow run and the caller
    writes the report; alone it opens an "audit" parent run and refreshes an existing report.md.
    A rerun whose shards and audit settings are unchanged reuses privacy.json unless ``force``.
    """
    check_config(cfg)
    run = check_run(run_dir if run_dir is not None else RunFolder.for_config(cfg).path)
    if not applicable(cfg):
        logger.info(f"audit: not applicable to {cfg.data.name} (points, not images); nothing written")
        return None
    run.check_compatible(cfg)
    if not force and up_to_date(cfg, run):
        privacy = json.loads((run.path / "audit" / "privacy.json").read_text())
        logger.info(f"audit: {run.path / 'audit' / 'privacy.json'} is up to date with the shards (skipped; "
            f"--force recomputes); verdict {privacy['verdict'].upper()}")
    else:
        if prepared is not None:
            dataset = prepared[0]
        else:
            from raygan.data import load_dataset
            dataset = load_dataset(cfg.data)
        connect(cfg, address)
        privacy = None
    own = tracker is None
    tracker = tracker or Tracker(cfg, "audit")
    if own:
        with tracker.parent(run.path):
            privacy = privacy or _audit_on_ray(cfg, run, dataset)
            log_to_mlflow(tracker, privacy, run)
            if (run.path / "report.md").exists():
                from raygan.reporting.report import write_report
                logger.info(f"report: {write_report(run.path, tracker)}")
    else:
        privacy = privacy or _audit_on_ray(cfg, run, dataset)
        log_to_mlflow(tracker, privacy, run)
    return privacy
