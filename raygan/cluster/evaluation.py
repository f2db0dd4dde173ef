"""The evaluation fanned out on Ray: one task per downstream classifier (T, repeat) and one per set's
quality metrics; the driver only collects, assembles and writes.

raygan.evaluation.units lists the jobs, runs one and assembles the result; here every job is a Ray
task with a member task's resources (raygan.cluster.runtime.member_resources: cluster.cpus_per_member,
cluster.gpus_per_member capped at one GPU, fractions allowed, so four classifiers share a GPU at 0.25).
The dataset and the decoded shards go into the object store once (ray.put) and every task gets their
references. A job that needs another's result (the filter of eval.filter_rho and TRTS use the first
TRTR classifier; the quality sets use the feature extractors of ``quality_setup``) is given that task's
reference as an argument, so Ray starts it once its input exists. The driver waits with ray.wait (a
progress line as tasks finish), fetches every result with one ray.get, assembles, and writes
eval/evaluation.json and the manifest's ``evaluation`` entry itself: tasks return what they computed
and write no result, so a multi-node URI run keeps its entry. The numbers are those of evaluate_run
in one process for the same config and seeds (every job is seeded by its own named stream).
"""
from __future__ import annotations

import logging
import time

import ray

from raygan.cluster.runtime import task_setup
from raygan.config import Config
from raygan.data import RealDataset
from raygan.progress import progress
from raygan.runs import RunFolder

logger = logging.getLogger(__name__)

# Jobs that may draw from the generators (a regenerated set, on-the-fly, recursive rounds): on a URI
# run folder their task brings the run's files to its node first.
_GENERATOR_JOBS = ("tstr", "quality", "recursive")


@ray.remote
def evaluation_job_task(cfg_dict: dict, dataset: RealDataset, measured, run_location: str, job, *needed):
    """One unit of work of the evaluation on a worker (its GPU when it has one); returns its result."""
    cfg = task_setup(cfg_dict)

    from raygan.evaluation.units import EvalInputs, run_unit

    run = RunFolder.at(run_location)
    if run.uri is not None and job.kind in _GENERATOR_JOBS:
        run.pull_outputs()
    return run_unit(EvalInputs(cfg, dataset, measured, run), job, *needed)


def evaluate_on_ray(cfg: Config, dataset: RealDataset, run: RunFolder, resources: dict, *,
                    mixing: bool = False) -> dict:
    """evaluate_run's result and files, every unit of work a Ray task with ``resources``."""
    from raygan.evaluation.curves import finish_evaluation, prepare_evaluation
    from raygan.evaluation.units import assemble, evaluation_jobs

    measured = prepare_evaluation(cfg, dataset, run)  # refused here, before a task starts
    jobs = evaluation_jobs(cfg, dataset, mixing=mixing)
    location = run.uri or str(run.path.absolute())  # a worker's working directory may differ
    cfg_dict, dataset_ref, measured_ref = cfg.to_dict(), ray.put(dataset), ray.put(measured)
    task = evaluation_job_task.options(**resources, max_retries=cfg.cluster.max_retries)
    refs: dict = {}
    for job in jobs:  # listed after the jobs they need, whose references exist by then
        refs[job.key] = task.remote(cfg_dict, dataset_ref, measured_ref, location, job,
                                    *(refs[key] for key in job.needs))
    logger.info(f"evaluate: as a Ray task per unit of work ({len(jobs)} tasks, {resources['num_cpus']:g} "
                f"CPU, {resources['num_gpus']:g} GPU each); their lines appear in the job's log")
    pending, t0 = list(refs.values()), time.perf_counter()
    last = t0  # a line every 10 s as before; the bar (where shown) moves every second
    with progress(total=len(jobs), desc="classifiers", unit="task") as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
            bar.update(len(done))
            if pending and time.perf_counter() - last >= 10.0:
                last = time.perf_counter()
                logger.info(f"evaluate: {len(jobs) - len(pending)}/{len(jobs)} tasks done "
                            f"({last - t0:.0f}s)")
    keys = list(refs)
    results = dict(zip(keys, ray.get([refs[key] for key in keys])))
    logger.info(f"evaluate: {len(jobs)} tasks done in {time.perf_counter() - t0:.0f}s")
    return finish_evaluation(run, assemble(cfg, dataset, jobs, results, mixing=mixing))
