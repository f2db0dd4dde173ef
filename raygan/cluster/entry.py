"""The jobs behind `raygan train|synthesize|evaluate|pipeline|sweep|audit|demo` (and `python -m raygan ...`,
what `ray job submit` runs): resolve the config, check what can be checked, run one job function.

Evaluate and audit on a local run folder with no cluster named run in this process
(raygan.evaluation.job) and never import ray; every other job, and those two on a cluster or a URI
run folder, run through the Ray modules beside this one. This module imports no Ray itself.
"""
from __future__ import annotations

import argparse
import functools
import importlib

from raygan.config import load_config

JOBS = {"train": ("pipeline", "run_train"), "synthesize": ("pipeline", "run_synth"),
        "evaluate": ("pipeline", "run_evaluate"), "pipeline": ("pipeline", "run_pipeline"),
        "sweep": ("sweep", "run_sweep"),
        "audit": ("audit", "run_audit")}
# The jobs that can run without Ray, and their function in raygan.evaluation.job.
LOCAL_JOBS = {"evaluate": "evaluate_job", "audit": "audit_job"}


def job_function(job: str, cfg, address: str | None):
    """The function that runs ``job``, called as f(cfg, **options): in this process where nothing
    needs Ray, else the Ray job with ``address``."""
    if job in LOCAL_JOBS:
        from raygan.evaluation import job as local

        if local.runs_here(cfg, address, job=job):
            return getattr(local, LOCAL_JOBS[job])
    module, function = JOBS[job]
    on_ray = getattr(importlib.import_module(f"raygan.cluster.{module}"), function)
    return functools.partial(on_ray, address=address)


def preflight(job: str, cfg, address: str | None) -> None:
    """What can hang or fail on the network, checked before the job touches its run folder: the
    MLflow server (within seconds) or a local MLflow store that cannot be opened, and a named Ray cluster, joined here (an unreachable address or an
    HTTP server there fails within seconds, a join is bounded; GPUs asked for are checked against it).
    SIGTERM ends the process while Ray connects (raygan.cluster.join), so a job stopped then leaves
    nothing behind. A local Ray is started by the job itself, after its data checks; the GPUs it would
    need are checked here, before it starts (raygan.cluster.runtime.check_devices)."""
    from raygan.evaluation.job import cluster_named, runs_here
    from raygan.tracking import check_server, check_store

    check_server(cfg)
    check_store(cfg)  # a half-made local store: refused now, not after training
    if job in LOCAL_JOBS and runs_here(cfg, address, job=job):
        return
    from raygan.cluster.runtime import check_devices, connect

    if cluster_named(cfg, address):
        connect(cfg, address)
    check_devices(cfg, job)


def run_job(job: str, args: argparse.Namespace) -> int:
    """Run ``job`` as the command line asked; 0 when it is done. A ConfigError (bad input, refused
    before any work) goes up to the one place that shows it, raygan.cli.main (exit status 2)."""
    cfg = load_config(args.config, args.overrides, getattr(args, "config_preset", None))
    from raygan.metrics.quality import validate_metrics
    validate_metrics(cfg)  # unknown metric names, missing Inception weights: before any work
    print(f"# raygan {job}: resolved config\n{cfg.to_yaml()}", flush=True)
    if args.dry_run:
        return 0
    preflight(job, cfg, args.address)
    from raygan.runs.lock import job_lock

    with job_lock(job, cfg):  # this driver only, never its Ray tasks: a second job refuses at once
        job_function(job, cfg, args.address)(cfg)
    return 0


def run_demo(cfg) -> str:
    """`raygan demo`: the pipeline job on a local Ray, with its pre-flight and run lock like any other
    job, then the demo's summary of the run folder (raygan.reporting.demo)."""
    import time

    from raygan.reporting.demo import demo_summary
    from raygan.runs.lock import job_lock

    preflight("pipeline", cfg, None)
    t0 = time.perf_counter()
    with job_lock("pipeline", cfg):
        result = job_function("pipeline", cfg, None)(cfg)
    return demo_summary(cfg, result, time.perf_counter() - t0)
