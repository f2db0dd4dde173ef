"""The evaluation's classifiers in packs: which units of work train together, and running a unit.

``plan_units`` groups the classifier jobs of raygan.evaluation.units (TRTR, TSTR at every T, mixed,
PCA, recursive rounds: R repeats each) into units of up to ``pack_size`` jobs, in the jobs' order,
never a job with one it needs (the filter of eval.filter_rho needs the reference classifier first);
every other job (the quality metrics) is a unit of its own. ``run_pack`` makes each job of a unit
ready (units.classifier_task), trains those whose sets have one size as one pack
(raygan.classifiers.pack.train_classifier_pack) and any other alone (fit_classifier), and finishes
each job's result as units.run_unit would. evaluate_run runs the units in turn here; raygan.cluster.
evaluation runs each as a Ray task, as the members' packs are. Every classifier keeps its own seed,
weights, data order and dropout stream, so a unit's results are the jobs' solo results up to float
rounding (tests/unit/test_classifier_pack.py), and the pack size changes no number's meaning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from raygan.classifiers.pack import max_pack_size, train_classifier_pack
from raygan.config import Config
from raygan.data import RealDataset
from raygan.evaluation.units import CLASSIFIER_KINDS, EvalInputs, Job, classifier_task, fit_alone, run_unit


@dataclass(frozen=True)
class Unit:
    """Jobs run together: a pack of classifier jobs, or one job of another kind."""
    jobs: tuple[Job, ...]

    @property
    def needs(self) -> tuple:
        """The keys of jobs outside the unit that its jobs need, in order."""
        inside = {j.key for j in self.jobs}
        return tuple(dict.fromkeys(k for j in self.jobs for k in j.needs if k not in inside))


def pack_size(cfg: Config, dataset: RealDataset, n_classifiers: int, *, slots: int = 1) -> int:
    """Classifiers per pack: eval.pack_size, or (null) as many as the activation budget allows and
    no more than spreads ``n_classifiers`` over ``slots`` tasks running at once; 1 for resnet18."""
    limit = max_pack_size(cfg.eval.arch, tuple(dataset.sample_shape), cfg.eval.batch_size)
    if cfg.eval.pack_size is not None:
        return max(1, min(cfg.eval.pack_size, limit))
    return max(1, min(limit, math.ceil(n_classifiers / max(1, slots))))


def plan_units(cfg: Config, dataset: RealDataset, jobs: list[Job], *, slots: int = 1) -> list[Unit]:
    """The jobs as units, each after the units it needs (see the module docstring)."""
    size = pack_size(cfg, dataset, sum(j.kind in CLASSIFIER_KINDS for j in jobs), slots=slots)
    units: list[Unit] = []
    pack: list[Job] = []

    def close() -> None:
        if pack:
            units.append(Unit(tuple(pack)))
            pack.clear()

    for job in jobs:
        if job.kind not in CLASSIFIER_KINDS:
            close()
            units.append(Unit((job,)))
            continue
        if len(pack) == size or any(k in {j.key for j in pack} for k in job.needs):
            close()
        pack.append(job)
    close()
    return units


def run_pack(inputs: EvalInputs, unit: Unit, needed: dict) -> dict:
    """{job.key: result} of every job of ``unit``; ``needed`` holds the results of unit.needs."""
    if len(unit.jobs) == 1 and unit.jobs[0].kind not in CLASSIFIER_KINDS:
        job = unit.jobs[0]
        return {job.key: run_unit(inputs, job, *(needed[k] for k in job.needs))}
    tasks = [classifier_task(inputs, job, *(needed[k] for k in job.needs)) for job in unit.jobs]
    groups: dict = {}
    for i, task in enumerate(tasks):  # classifiers whose sets have one size in every epoch
        groups.setdefault(task.size, []).append(i)
    runs: dict = {}
    for members in groups.values():
        if len(members) == 1:
            runs[members[0]] = fit_alone(inputs, tasks[members[0]])
            continue
        for i, run in zip(members, _fit_pack(inputs, [tasks[i] for i in members])):
            runs[i] = run
    sizes = {i: len(members) for members in groups.values() for i in members}
    return {job.key: {**task.finish(runs[i]), "pack": sizes[i]}
            for i, (job, task) in enumerate(zip(unit.jobs, tasks))}


def _fit_pack(inputs: EvalInputs, tasks: list) -> list:
    from raygan.gan.train import resolve_device

    cfg, dataset, e = inputs.cfg, inputs.dataset, inputs.cfg.eval
    return train_classifier_pack([t.member for t in tasks], val=dataset.val, test=dataset.test,
                                 n_classes=len(dataset.classes), sample_shape=tuple(dataset.sample_shape),
                                 arch=e.arch, epochs=e.epochs, lr=e.lr, batch_size=e.batch_size,
                                 weight_decay=e.weight_decay, augment=e.augment,
                                 device=str(resolve_device(cfg.train.device)))


def run_units(inputs: EvalInputs, jobs: list[Job], *, progress_desc: str = "classifiers") -> dict:
    """Every job's result {job.key: result}, the units of plan_units run in turn in this process."""
    from raygan.progress import progress

    units = plan_units(inputs.cfg, inputs.dataset, jobs)
    results: dict = {}
    with progress(total=len(jobs), desc=progress_desc, unit="job") as bar:
        for unit in units:
            results.update(run_pack(inputs, unit, {k: results[k] for k in unit.needs}))
            bar.update(len(unit.jobs))
    return results


__all__ = ["Unit", "pack_size", "plan_units", "run_pack", "run_units"]
