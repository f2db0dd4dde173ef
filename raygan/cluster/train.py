"""Ensemble training on Ray: all K x T independent members submitted at once, or boosting per class.

Real data enters the object store once per class (ray.put) and every member task gets the reference.
Progress is reported member by member as tasks finish (ray.wait), and the driver, the only writer of
the manifest and of MLflow, records each member as soon as it is done. Independent members may train
packed, cluster.members_per_task of them to a task (raygan.cluster.packing): all packs are submitted
at once, each pack's members are recorded when it finishes; so do ccgan's conditional members. A member
that diverged in every attempt (train.divergence_retries) goes under the manifest's "diverged" section
and is reported at the end while the others go on; the job fails (exit 2) only if a class has no member.
With privacy on, every member task carries its DP-SGD settings from the run's plan, solved once here,
and the job ends by writing the privacy ledger (raygan.privacy).
"""
from __future__ import annotations

import logging
import time

import ray

from raygan.cluster.driver import train_boosting_ray
from raygan.cluster.packing import group_packs
from raygan.cluster.runtime import member_resources
from raygan.cluster.tasks import pack_size_on_ray, submit_units, wait_all
from raygan.config import Config
from raygan.data import RealDataset
from raygan.ensemble.members import CONDITIONAL_DIR, check_classes, member_grid, record_trained
from raygan.gan.models import CONDITIONAL
from raygan.privacy.accountant import plan_privacy
from raygan.privacy.ledger import write_ledger
from raygan.progress import progress
from raygan.runs import RunFolder
from raygan.tracking import Tracker

logger = logging.getLogger(__name__)


def _member_line(i: int, total: int, entry: dict, t0: float) -> str:
    where = f" on GPU {','.join(entry['gpu_ids'])}" if entry.get("gpu_ids") else ""
    resumed = f", resumed from step {entry['resumed_from']}" if entry.get("resumed_from") else ""
    return (f"[{i}/{total}] class {entry['class']} member {entry['member']}: {entry['steps']} steps in "
            f"{entry['seconds']:.1f}s{where}{resumed}; d_loss {entry['final_d_loss']:.3f}, "
            f"g_loss {entry['final_g_loss']:.3f} (elapsed {time.perf_counter() - t0:.0f}s)")


def train_independent_ray(cfg: Config, dataset: RealDataset, run: RunFolder, tracker: Tracker) -> list[dict]:
    """Submit every missing (class, member) task at once; record each as it finishes."""
    resources = member_resources(cfg)
    grid = member_grid(dataset, cfg.ensemble.members)
    done = [e for k, name, t in grid if (e := run.member_entry(name, t)) is not None]
    todo = [(k, name, t) for k, name, t in grid if run.member_entry(name, t) is None]
    if done:
        logger.info(f"{len(done)} of {len(grid)} members already complete (manifest): skipped")
    if not todo:
        return done
    data_refs = {name: ray.put(dataset.train[name]) for name in {name for _, name, _ in todo}}
    # Sized on the whole grid, not on what is left: a rerun must pack the members it resumes as the
    # first run did (a pack and a solo member agree only to float rounding).
    size = pack_size_on_ray(cfg, grid, resources, data_refs, dataset.train_sizes())
    if size > 1:
        return done + _train_packs(cfg, run, tracker, todo, size, resources, data_refs,
                                   first=len(done), total=len(grid))
    logger.info(f"submitting {len(todo)} member tasks ({resources['num_cpus']} CPU, "
        f"{resources['num_gpus']} GPU each)")
    _note_cpus(cfg, resources)
    plan = plan_privacy(cfg, dataset.train_sizes(), dataset.groups)  # privacy on: every member's noise, solved once
    refs = {submit_units(cfg, run, resources, heads=[(k, name, t)], data_refs=data_refs,
                         privacy=plan and [plan.member(name, t).to_dict()]): (name, t)
            for k, name, t in todo}
    t0, counter = time.perf_counter(), [len(done)]

    def record(_key, entries: list[dict]) -> None:
        counter[0] += 1
        for ok in record_trained(run, entries):
            tracker.log_member(ok, run.path)
            logger.info(_member_line(counter[0], len(grid), ok, t0))
        bar.update(1)

    with progress(total=len(grid), initial=len(done), desc="members", unit="member") as bar:
        return done + [e for entries in wait_all(refs, record) for e in entries if e.get("status") == "complete"]


def _note_cpus(cfg: Config, resources: dict) -> None:
    if resources["num_gpus"] == 0 and cfg.cluster.gpus_per_member is None:
        logger.info("note: the cluster has no GPU now, so members train on CPUs; on a cluster that adds GPU "
            "workers on demand (cluster.yaml) set cluster.gpus_per_member=1 so that they ask for one")


def _train_packs(cfg: Config, run: RunFolder, tracker: Tracker, todo: list, size: int,
                 resources: dict, data_refs: dict, *, first: int, total: int) -> list[dict]:
    """Submit every pack of ``size`` members at once; record each pack's members as it finishes."""
    packs = group_packs(todo, size)
    logger.info(f"submitting {len(todo)} members as {len(packs)} pack tasks of up to {size} "
                f"({resources['num_cpus']} CPU, {resources['num_gpus']} GPU each)")
    _note_cpus(cfg, resources)
    refs = {submit_units(cfg, run, resources, pack=i, heads=heads, data_refs=data_refs): i
            for i, heads in enumerate(packs)}
    t0, counter, complete, diverged = time.perf_counter(), [first], [], []

    def record(i: int, entries: list[dict]) -> None:
        diverged.extend(e for e in entries if e.get("status") != "complete")
        ok = record_trained(run, entries)  # one manifest write per pack
        for entry in ok:
            counter[0] += 1
            tracker.log_member(entry, run.path)
            logger.info(f"{_member_line(counter[0], total, entry, t0)} "
                        f"[pack {i + 1}/{len(packs)}, {entry.get('pack_size', len(entries))} members]")
        complete.extend(ok)
        bar.update(len(entries))

    with progress(total=total, initial=first, desc="members", unit="member") as bar:
        wait_all(refs, record)
    for e in diverged:
        logger.warning(f"class {e['class']} member {e['member']} (pack {e['pack'] + 1}) "
                       f"{e.get('status', 'failed')} in {e.get('attempts', 1)} attempts: "
                       f"{e.get('error', 'no error given')}; it is left out of the ensemble")
    if diverged:
        logger.warning(f"{len(diverged)} of {len(todo)} members did not complete; the "
                       f"{len(complete)} others are recorded")
    return complete


def train_conditional_ray(cfg: Config, dataset: RealDataset, run: RunFolder, tracker: Tracker) -> list[dict]:
    """gan.family=ccgan: one task per member, each training one model for all classes, or packs of
    them (cluster.members_per_task; auto as for independent members)."""
    resources = member_resources(cfg)
    members = range(cfg.ensemble.members)
    complete = {t: [run.member_entry(name, t) for name in dataset.classes] for t in members}
    done = [e for t in members if all(complete[t]) for e in complete[t]]
    todo = [t for t in members if not all(complete[t])]
    if done:
        logger.info(f"{len(members) - len(todo)} of {len(members)} conditional members already complete: "
            "skipped")
    if not todo:
        return done
    data, labels = dataset.train_split()
    data_ref, labels_ref = ray.put(data), ray.put(labels)
    size = pack_size_on_ray(cfg, list(members), resources, {"_all": data_ref}, {"_all": len(data)}, labels_ref=labels_ref)
    packs = group_packs(todo, size)
    what = f"{len(todo)} conditional member tasks" if size == 1 else \
        f"{len(todo)} conditional members as {len(packs)} pack tasks of up to {size}"
    logger.info(f"submitting {what} ({resources['num_cpus']} CPU, {resources['num_gpus']} GPU each), each "
                f"member for all {len(dataset.classes)} classes")
    refs = {submit_units(cfg, run, resources, pack=None if size == 1 else i, data_refs={CONDITIONAL_DIR: data_ref},
                         heads=[(0, CONDITIONAL_DIR, t) for t in pack], labels_ref=labels_ref,
                         classes=dataset.classes): pack for i, pack in enumerate(packs)}
    t0, counter = time.perf_counter(), [len(members) - len(todo)]

    def record(held: list[int], entries: list[dict]) -> None:
        for t in held:
            ok = record_trained(run, [e for e in entries if e["member"] == t])
            counter[0] += 1
            if not ok:
                logger.warning(f"[{counter[0]}/{len(members)}] conditional member {t} diverged in every "
                               "attempt: left out of the ensemble")
                continue
            tracker.log_member({**ok[0], "class": "_conditional"}, run.path)
            logger.info(f"[{counter[0]}/{len(members)}] conditional member {t}: {ok[0]['steps']} steps in "
                        f"{ok[0]['seconds']:.1f}s (elapsed {time.perf_counter() - t0:.0f}s)")
        bar.update(len(held))

    with progress(total=len(members), initial=len(members) - len(todo), desc="members", unit="member") as bar:
        return done + [e for entries in wait_all(refs, record) for e in entries
                       if e.get("status") == "complete"]


def train_ensemble(cfg: Config, dataset: RealDataset, run: RunFolder, tracker: Tracker) -> list[dict]:
    """Train the ensemble on Ray; then name every member given up, and fail (NoMemberError) if a class
    is left with none."""
    if cfg.gan.family in CONDITIONAL:
        entries = train_conditional_ray(cfg, dataset, run, tracker)
    elif cfg.ensemble.method == "independent":
        entries = train_independent_ray(cfg, dataset, run, tracker)
    else:
        entries = train_boosting_ray(cfg, dataset, run, tracker)
    if (plan := plan_privacy(cfg, dataset.train_sizes(), dataset.groups)) is not None:
        write_ledger(cfg, plan, run, dataset.classes)  # what the members spent, before any class check
    check_classes(run, dataset.classes, cfg)
    return entries
