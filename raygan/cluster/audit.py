"""The memorisation audit on Ray (`raygan audit RUN`, jobs/audit.py, a step of the pipeline job).

One task per class on the resources of a member task (a GPU each where the cluster has GPUs: the
chunked search runs on the task's device); before them one task trains the domain classifier, or loads
it from <run>/eval/, when audit.spaces has domain. The driver reads the shards, ray.puts each class's
tensors once, collects the tasks with ray.wait and makes the summary, figure, privacy.json and verdict
(raygan.audit.run.finish), logging them to MLflow. The maths is raygan.audit's, without Ray.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import ray
import torch

from raygan.audit.inputs import ClassInputs, domain_model, load_inputs
from raygan.audit.run import finish
from raygan.audit.statistics import ClassAudit, audit_class
from raygan.cluster.runtime import connect, member_resources, task_setup
from raygan.cluster.tasks import _device_for_task, wait_all
from raygan.config import Config
from raygan.evaluation.job import audit_job
from raygan.progress import progress
from raygan.runs import RunFolder
from raygan.tracking import Tracker

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
                       chunk_size=cfg.audit.chunk_size, device=_device_for_task(), canaries=inputs.canaries)


def _audit_on_ray(cfg: Config, run: RunFolder, dataset) -> dict:
    inputs = load_inputs(cfg, run, dataset)
    resources = {**member_resources(cfg), "max_retries": cfg.cluster.max_retries}
    model_ref = None
    if "domain" in cfg.audit.spaces:
        model_ref = domain_model_task.options(**resources, name="audit:domain_classifier").remote(
            dataset, str(run.path), cfg.to_dict())
    refs = {audit_class_task.options(**resources, name=f"audit:{c.name}").remote(
        ray.put(c), model_ref, cfg.to_dict()): c.name for c in inputs}
    def searched(name: str, a: ClassAudit) -> None:
        logger.info(f"audit: class {name} searched ({len(a.members)} synthetic samples)")
        bar.update(1)

    with progress(total=len(refs), desc="audit", unit="class") as bar:
        done = wait_all(refs, searched)
    by_name = {a.class_name: a for a in done}
    return finish(cfg, run, inputs, [by_name[c.name] for c in inputs], dataset_name=dataset.name)


def run_audit(cfg: Config, address: str | None = None, *,
              run_dir: str | Path | None = None, force: bool = False, prepared=None,
              tracker: Optional[Tracker] = None) -> Optional[dict]:
    """Audit a run folder (default: the one cfg.output names) on Ray; None where it does not apply.

    raygan.evaluation.job.audit_job with the per-class searches as Ray tasks: with ``tracker`` (the
    pipeline's evaluate run) the numbers go into that MLflow run and the caller writes the report;
    alone it opens an "audit" parent run and refreshes an existing report.md. A rerun whose shards and
    audit settings are unchanged reuses privacy.json unless ``force``.
    """
    def compute(cfg: Config, run: RunFolder, dataset) -> dict:
        connect(cfg, address)
        return _audit_on_ray(cfg, run, dataset)

    return audit_job(cfg, run_dir=run_dir, force=force, prepared=prepared, tracker=tracker, compute=compute)
