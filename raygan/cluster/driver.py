"""The boosting driver actor: runs AdaGAN's (or seed 001 reweighting's) step loop for one class on Ray.

One actor per class, so classes boost concurrently while steps within a class run in order. The loop,
its state files and the weights of a step are raygan.ensemble.boosting_loop's (AdaGAN, Tolstikhin et
al., NeurIPS 2017, Algorithm 1); here its two callables become Ray work: the data weights of step t a
task (the boosting classifier may want a GPU), member t - 1 the member task. A restarted actor (Ray
re-runs __init__) or a rerun of the job reloads the saved state and continues from the last finished step.
"""
from __future__ import annotations

import logging

import numpy as np
import ray
import torch

from raygan import logs
from raygan.cluster.runtime import member_resources, task_setup
from raygan.cluster.tasks import submit_member
from raygan.config import Config, from_dict
from raygan.data import RealDataset
from raygan.ensemble.boosting_loop import load_state, record_class, run_boosting, state_dir, step_weights
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
    def __init__(self, cfg_dict: dict, run_path: str, class_name: str, class_index: int,
                 data_box: list):
        logs.configure()  # the loop's step lines reach the driver through Ray's log forwarding
        self.cfg = from_dict(cfg_dict)
        self.run = RunFolder.at(run_path)  # a path, or a URI (then the state lives in storage)
        self.class_name, self.class_index = class_name, class_index
        self.data_ref = data_box[0]  # kept as a reference: the actor never holds the images
        self.run.pull(state_dir(self.run, class_name))  # a URI run: restarted on another node
        self.state = load_state(self.run, class_name)  # a restarted actor continues from here

    def get_state(self) -> dict:
        return self.state

    def run_steps(self) -> dict:
        cfg = self.cfg
        resources = member_resources(cfg)

        def compute_weights(*, state: dict, step: int) -> tuple:
            return ray.get(boost_weights_task.options(**resources).remote(
                self.data_ref, cfg.to_dict(), self.run.location, [e["generator"] for e in state["members"]],
                self.class_index, state["mixture_weights"], step))

        def train_member(*, member: int, data_weights) -> dict:
            return ray.get(submit_member(self.data_ref, cfg, self.run, resources, class_name=self.class_name,
                                         class_index=self.class_index, member=member,
                                         data_weights=data_weights))

        self.state = run_boosting(cfg, self.run, self.class_name, self.class_index,
                                  compute_weights=compute_weights, train_member=train_member,
                                  on_step=self._keep)
        return self.state

    def _keep(self, state: dict) -> None:
        self.state = state


def actor_name(run: RunFolder, class_name: str) -> str:
    return f"raygan-boost:{run.path.resolve()}:{class_name}"


def train_boosting_ray(cfg: Config, dataset: RealDataset, run: RunFolder, tracker: Tracker) -> list[dict]:
    """One driver actor per class, all classes at once; record each class's members as it finishes."""
    retries = cfg.cluster.max_retries
    actors, refs = {}, {}
    for k, name in enumerate(dataset.classes):
        state = load_state(run, name)
        if state["step"] >= cfg.ensemble.members:
            logger.info(f"class {name}: {state['step']} boosting steps already complete: skipped")
            _record_class(run, tracker, state, cfg.ensemble.members, quiet=True)
            continue
        data_ref = ray.put(dataset.train[name])
        actor = BoostingDriver.options(name=actor_name(run, name), max_restarts=retries,
                                       max_task_retries=retries, num_cpus=0).remote(
            cfg.to_dict(), run.location, name, k, [data_ref])
        actors[name] = actor
        refs[actor.run_steps.remote()] = name
        logger.info(f"class {name}: boosting driver started at step {state['step'] + 1} of "
            f"{cfg.ensemble.members} ({cfg.ensemble.method})")
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        state = ray.get(ready[0])
        _record_class(run, tracker, state, cfg.ensemble.members)
    for actor in actors.values():
        ray.kill(actor, no_restart=True)
    return [run.member_entry(name, t) for name in dataset.classes for t in range(cfg.ensemble.members)]


def _record_class(run: RunFolder, tracker: Tracker, state: dict, members: int, quiet: bool = False) -> None:
    record_class(run, state, total=members, on_member=lambda entry: tracker.log_member(entry, run.path))
    if not quiet:
        logger.info(f"class {state['class']}: {state['step']} boosting steps, mixture weights "
            f"{np.round(state['mixture_weights'], 3).tolist()}")
