"""Ensemble training on Ray: all K x T independent members submitted at once, or boosting per class.

Real data enters the object store once per class (ray.put) and every member task gets the reference.
Progress is reported member by member as tasks finish (ray.wait), and the driver, the only writer of
the manifest and of MLflow, records each member as soon as it is done.
"""
from __future__ import annotations

import logging
import time

import ray

from raygan.cluster.runtime import member_resources
from raygan.cluster.tasks import submit_conditional, submit_member, wait_all
from raygan.config import Config
from raygan.data import RealDataset
from raygan.ensemble.members import member_grid
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
    logger.info(f"submitting {len(todo)} member tasks ({resources['num_cpus']} CPU, "
        f"{resources['num_gpus']} GPU each)")
    if resources["num_gpus"] == 0 and cfg.cluster.gpus_per_member is None:
        logger.info("note: the cluster has no GPU now, so members train on CPUs; on a cluster that adds GPU "
            "workers on demand (cluster.yaml) set cluster.gpus_per_member=1 so that they ask for one")
    refs = {submit_member(data_refs[name], cfg, run, resources, class_name=name, class_index=k,
                          member=t): (name, t) for k, name, t in todo}
    t0, counter = time.perf_counter(), [len(done)]

    def record(_key, entry: dict) -> None:
        counter[0] += 1
        run.record_member(entry)
        tracker.log_member(entry, run.path)
        logger.info(_member_line(counter[0], len(grid), entry, t0))

    return done + wait_all(refs, record)


def train_conditional_ray(cfg: Config, dataset: RealDataset, run: RunFolder, tracker: Tracker) -> list[dict]:
    """gan.family=ccgan: one task per member, each training one model for all classes."""
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
    logger.info(f"submitting {len(todo)} conditional member tasks ({resources['num_cpus']} CPU, "
        f"{resources['num_gpus']} GPU each), each for all {len(dataset.classes)} classes")
    refs = {submit_conditional(data_ref, labels_ref, dataset.classes, cfg, run, resources, member=t): t
            for t in todo}
    t0, counter = time.perf_counter(), [len(members) - len(todo)]

    def record(t, entries: list[dict]) -> None:
        counter[0] += 1
        run.record_member(*entries)
        tracker.log_member({**entries[0], "class": "_conditional"}, run.path)
        logger.info(f"[{counter[0]}/{len(members)}] conditional member {t}: {entries[0]['steps']} steps in "
            f"{entries[0]['seconds']:.1f}s (elapsed {time.perf_counter() - t0:.0f}s)")

    return done + [e for entries in wait_all(refs, record) for e in entries]


def train_ensemble(cfg: Config, dataset: RealDataset, run: RunFolder, tracker: Tracker) -> list[dict]:
    if cfg.gan.family == "ccgan":
        return train_conditional_ray(cfg, dataset, run, tracker)
    if cfg.ensemble.method == "independent":
        return train_independent_ray(cfg, dataset, run, tracker)
    from raygan.cluster.driver import train_boosting_ray
    return train_boosting_ray(cfg, dataset, run, tracker)
