"""The evaluation fanned out on Ray: one task per pack of downstream classifiers (raygan.evaluation.
packs: no more classifiers to a pack than spreads them over the cluster's task slots) and one per
set's quality metrics; the driver only collects, assembles and writes.

raygan.evaluation.units lists the jobs and assembles the result, raygan.evaluation.packs groups
them into units and runs one; here every unit is a Ray task with a member task's resources
(raygan.cluster.runtime.member_resources: cluster.cpus_per_member, cluster.gpus_per_member capped at
one GPU, fractions allowed, so four packs share a GPU at 0.25).
The dataset and the decoded shards go into the object store once (ray.put) and every task gets their
references. A unit that needs another's result (the filter of eval.filter_rho and TRTS use the first
TRTR classifier; the quality sets use the feature extractors of ``quality_setup``) is given that task's
reference as an argument, so Ray starts it once its input exists. The driver waits with ray.wait (a
progress line as tasks finish), fetches every result with one ray.get, assembles, and writes
eval/evaluation.json and the manifest's ``evaluation`` entry itself: tasks return what they computed
and write no result, so a multi-node URI run keeps its entry. The numbers are those of evaluate_run
in one process for the same config and seeds (every job is seeded by its own named stream), up to
the float rounding of other pack sizes.
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
def evaluation_unit_task(cfg_dict: dict, dataset: RealDataset, measured, run_location: str, unit,
                         *needed: dict) -> dict:
    """One unit of the evaluation (a pack of classifiers, or one set's quality metrics) on a worker (its
    GPU when it has one); ``needed``: the results of the units holding what it needs. Returns
    {job key: result}."""
    cfg = task_setup(cfg_dict)

    from raygan.evaluation.packs import run_pack
    from raygan.evaluation.units import EvalInputs

    run = RunFolder.at(run_location)
    if run.uri is not None and any(job.kind in _GENERATOR_JOBS for job in unit.jobs):
        run.pull_outputs()
    known = {k: v for results in needed for k, v in results.items()}
    return run_pack(EvalInputs(cfg, dataset, measured, run), unit, {k: known[k] for k in unit.needs})


def _slots(resources: dict) -> int:
    """Tasks of ``resources`` the cluster runs at once now (its GPUs when they ask for one, else CPUs)."""
    total = ray.cluster_resources()
    if resources.get("num_gpus"):
        return max(1, int(total.get("GPU", 0) // resources["num_gpus"]))
    return max(1, int(total.get("CPU", 1) // max(resources.get("num_cpus", 1), 1e-6)))


def evaluate_on_ray(cfg: Config, dataset: RealDataset, run: RunFolder, resources: dict, *,
                    mixing: bool = False) -> dict:
    """evaluate_run's result and files, every unit of work a Ray task with ``resources``."""
    from raygan.evaluation.curves import finish_evaluation, prepare_evaluation
    from raygan.evaluation.packs import plan_units
    from raygan.evaluation.units import assemble, evaluation_jobs

    measured = prepare_evaluation(cfg, dataset, run)  # refused here, before a task starts
    jobs = evaluation_jobs(cfg, dataset, mixing=mixing)
    units = plan_units(cfg, dataset, jobs, slots=_slots(resources))
    location = run.uri or str(run.path.absolute())  # a worker's working directory may differ
    cfg_dict, dataset_ref, measured_ref = cfg.to_dict(), ray.put(dataset), ray.put(measured)
    task = evaluation_unit_task.options(**resources, max_retries=cfg.cluster.max_retries)
    refs, holder = [], {}
    for i, unit in enumerate(units):  # listed after the units they need, whose references exist by then
        needed = list(dict.fromkeys(holder[key] for key in unit.needs))
        refs.append(task.remote(cfg_dict, dataset_ref, measured_ref, location, unit, *(refs[j] for j in needed)))
        holder.update({job.key: i for job in unit.jobs})
    logger.info(f"evaluate: as a Ray task per pack of classifiers or set's quality metrics ({len(units)} "
                f"tasks for {len(jobs)} units of work, {resources['num_cpus']:g} CPU, "
                f"{resources['num_gpus']:g} GPU each); their lines appear in the job's log")
    pending, t0 = list(refs), time.perf_counter()
    last = t0  # a line every 10 s as before; the bar (where shown) moves every second
    done_jobs = {ref: len(unit.jobs) for ref, unit in zip(refs, units)}
    with progress(total=len(jobs), desc="classifiers", unit="job") as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=len(pending), timeout=1.0)
            bar.update(sum(done_jobs[ref] for ref in done))
            if pending and time.perf_counter() - last >= 10.0:
                last = time.perf_counter()
                logger.info(f"evaluate: {len(units) - len(pending)}/{len(units)} tasks done "
                            f"({last - t0:.0f}s)")
    results = {k: v for part in ray.get(refs) for k, v in part.items()}
    logger.info(f"evaluate: {len(units)} tasks done in {time.perf_counter() - t0:.0f}s")
    return finish_evaluation(run, assemble(cfg, dataset, jobs, results, mixing=mixing))
