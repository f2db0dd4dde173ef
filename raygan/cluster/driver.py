"""The boosting driver actor: runs AdaGAN's (or seed 001 reweighting's) step loop on Ray.

The loop, its state files and the weights of a step are raygan.ensemble.boosting_loop's (AdaGAN, Tolstikhin
et al., "AdaGAN: Boosting Generative Models", NeurIPS 2017, Algorithm 1); here its two callables become
Ray work: the data weights of a round's classes are tasks submitted at once (the boosting classifier
may want a GPU), and its members member tasks, or packs of them. With one member per task
(cluster.members_per_task=1, or auto's choice) every class has an actor of its own, so classes boost
concurrently; with packs one actor steps every class in lockstep, so that the K members of step t train
in packs. A restarted actor (Ray re-runs __init__) or a rerun of the job reloads every class's saved
state and continues each from its own last finished step.
"""
from __future__ import annotations

import logging

import numpy as np
import ray
import torch

from raygan import logs
from raygan.cluster.packing import group_packs
from raygan.cluster.runtime import member_resources, task_setup
from raygan.cluster.tasks import pack_size_on_ray, submit_units
from raygan.config import Config, from_dict
from raygan.data import RealDataset
from raygan.ensemble.boosting_loop import (
    load_state,
    mixture_so_far,
    record_class,
    run_lockstep,
    state_dir,
    step_weights,
)
from raygan.gan.train import load_generator
from raygan.runs import RunFolder
from raygan.tracking import Tracker

logger = logging.getLogger(__name__)


@ray.remote
def boost_weights_task(data: torch.Tensor, cfg_dict: dict, run_path: str, generators: list[str],
                       class_index: int, mixture_weights: list, step: int) -> tuple:
    """Data weights for step `step` > 1 against the mixture of the members trained so far."""
    cfg = task_setup(cfg_dict)
    device = "cuda:0" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
    run = RunFolder.at(run_path)  # a URI run folder: generators trained elsewhere are fetched
    modules = [load_generator(run.fetch(g), device=device) for g in generators]
    return step_weights(cfg, data, modules, mixture_weights, class_index=class_index, step=step,
                        device=device)


@ray.remote
class BoostingDriver:
    def __init__(self, cfg_dict: dict, run_path: str, classes: list, data_box: list, pack_size: int = 1):
        logs.configure()  # the loop's step lines reach the driver through Ray's log forwarding
        self.cfg = from_dict(cfg_dict)
        self.run = RunFolder.at(run_path)  # a path, or a URI (then the state lives in storage)
        self.classes = [(int(k), str(name)) for k, name in classes]
        # kept as references: the actor never holds the images
        self.data_refs = dict(zip((name for _, name in self.classes), data_box))
        self.pack_size = pack_size
        for _, name in self.classes:
            self.run.pull(state_dir(self.run, name))  # a URI run: restarted on another node
        # a restarted actor continues from here
        self.states = {name: load_state(self.run, name) for _, name in self.classes}

    def get_state(self) -> dict:
        return self.states

    def run_steps(self) -> dict:
        cfg, run = self.cfg, self.run
        resources = member_resources(cfg)

        def compute_weights(asks: list[tuple]) -> list[tuple]:
            refs = []
            for k, name, state, step in asks:
                entries, weights = mixture_so_far(state)
                refs.append(boost_weights_task.options(**resources).remote(
                    self.data_refs[name], cfg.to_dict(), run.location, [e["generator"] for e in entries], k,
                    weights, step))
            return ray.get(refs)  # every class's weights at once

        def train_step(heads: list[tuple]) -> list[dict]:
            if self.pack_size == 1:
                refs = [submit_units(cfg, run, resources, heads=[(k, name, t)], data_refs=self.data_refs,
                                     data_weights=[w]) for k, name, t, w in heads]
                return [e for entries in ray.get(refs) for e in entries]
            refs = [submit_units(cfg, run, resources, pack=i, heads=[(k, name, t) for k, name, t, _ in pack],
                                 data_refs=self.data_refs, data_weights=[w for *_, w in pack])
                    for i, pack in enumerate(group_packs(heads, self.pack_size))]
            return [e for entries in ray.get(refs) for e in entries]

        self.states = run_lockstep(cfg, run, self.classes, compute_weights=compute_weights,
                                   train_step=train_step, on_step=self._keep)
        return self.states

    def _keep(self, state: dict) -> None:
        self.states = {**self.states, state["class"]: state}


def actor_name(run: RunFolder, *class_names: str) -> str:
    """The driver actor of ``class_names`` (one class: its own actor; several: the lockstep one)."""
    return f"raygan-boost:{run.path.resolve()}:{','.join(class_names)}"


def train_boosting_ray(cfg: Config, dataset: RealDataset, run: RunFolder, tracker: Tracker) -> list[dict]:
    """Driver actors for the classes still boosting (one per class, or one for all of them when a
    step's members train in packs); record each class's members as its actor finishes."""
    retries, total = cfg.cluster.max_retries, cfg.ensemble.members
    todo = []
    for k, name in enumerate(dataset.classes):
        state = load_state(run, name)
        if state["step"] >= total:
            logger.info(f"class {name}: {state['step']} boosting steps already complete: skipped")
            _record_class(run, tracker, state, total, quiet=True)
        else:
            todo.append((k, name))
            logger.info(f"class {name}: boosting from step {state['step'] + 1} of {total} "
                        f"({cfg.ensemble.method})")
    actors, refs = [], {}
    if todo:
        resources = member_resources(cfg)
        data_refs = {name: ray.put(dataset.train[name]) for _, name in todo}
        # All classes, done or not: a rerun packs the steps it resumes as the first run did.
        size = pack_size_on_ray(cfg, list(enumerate(dataset.classes)), resources, data_refs,
                                dataset.train_sizes())
        for group in ([c] for c in todo) if size == 1 else [todo]:
            names = [name for _, name in group]
            actor = BoostingDriver.options(name=actor_name(run, *names), max_restarts=retries,
                                           max_task_retries=retries, num_cpus=0).remote(
                cfg.to_dict(), run.location, [list(c) for c in group], [data_refs[n] for n in names], size)
            actors.append(actor)
            refs[actor.run_steps.remote()] = names
        if size > 1:
            logger.info(f"boosting classes {', '.join(name for _, name in todo)} in lockstep: each step's "
                        f"{len(todo)} members in packs of up to {size}")
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        for state in ray.get(ready[0]).values():
            _record_class(run, tracker, state, total)
    for actor in actors:
        ray.kill(actor, no_restart=True)
    return [e for name in dataset.classes for t in range(total) if (e := run.member_entry(name, t))]


def _record_class(run: RunFolder, tracker: Tracker, state: dict, members: int, quiet: bool = False) -> None:
    record_class(run, state, total=members, on_member=lambda entry: tracker.log_member(entry, run.path))
    if not quiet:
        logger.info(f"class {state['class']}: {state['step']} boosting steps, mixture weights "
            f"{np.round(state['mixture_weights'], 3).tolist()}")
