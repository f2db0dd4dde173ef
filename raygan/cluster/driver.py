"""The boosting driver actor: sequences AdaGAN (or seed 001 reweighting) steps for one class.

One actor per class, so classes boost concurrently while steps within a class run in order. Step t:
sample the current mixture and compute data weights (a Ray task: the boosting classifier may want a
GPU), train member t - 1 on those weights (the member task), update the mixture weights, persist the
state under boosting/<class>/. A restarted actor (Ray re-runs __init__) or a rerun of the job reloads
that state and continues from the last finished step.
"""
from __future__ import annotations

import logging

import io
import json
import time
from pathlib import Path

import numpy as np
import ray
import torch

from raygan.ensemble import boosting
from raygan.cluster.runtime import member_resources
from raygan.cluster.tasks import submit_member
from raygan.config import Config, from_dict
from raygan.data import RealDataset
from raygan.ensemble.mixture import Mixture
from raygan.ensemble.members import member_seed
from raygan.gan.train import load_generator
from raygan.runs import RunFolder, atomic_write_bytes, atomic_write_text
from raygan.tracking import Tracker
from raygan.cluster.runtime import task_setup

logger = logging.getLogger(__name__)


def state_path(run: RunFolder, class_name: str) -> Path:
    return run.path / "boosting" / class_name / "state.json"


def load_state(run: RunFolder, class_name: str) -> dict:
    path = state_path(run, class_name)
    if path.exists():
        return json.loads(path.read_text())
    return {"class": class_name, "step": 0, "mixture_weights": [], "members": [], "steps": []}


@ray.remote
def boost_weights_task(data: torch.Tensor, cfg_dict: dict, run_path: str, generators: list[str],
                       class_index: int, mixture_weights: list, step: int) -> tuple:
    """Data weights for step `step` > 1 against the mixture of the members trained so far."""
    cfg = task_setup(cfg_dict)
    device = "cuda:0" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
    run = RunFolder.at(run_path)  # a URI run folder: generators trained elsewhere are fetched
    mixture = Mixture([load_generator(run.fetch(g), device=device) for g in generators],
                      np.asarray(mixture_weights))
    seed = member_seed(cfg.train.seed, class_index, 10_000 + step)
    samples, _ = mixture.sample(len(data), seed=seed, device=device)
    b = cfg.boosting
    beta = boosting.mixture_beta(step, b.beta_schedule, b.beta_constant)
    if cfg.ensemble.method == "adagan":
        weights, info = boosting.adagan_step_weights(data, samples, beta=beta, rule=b.rule, seed=seed,
                                                     epochs=b.classifier_epochs, device=device,
                                                     topk_fraction=b.topk_fraction)
    else:  # seed 001 Algorithm 1, distances in pixel space
        weights = boosting.feature_distance_weights(data.flatten(1), samples.flatten(1),
                                                    transform=b.reweight_transform, device=device)
        info = {"beta": beta, "transform": b.reweight_transform,
                "effective_sample_size": float(1.0 / np.sum(np.square(weights))),
                "zero_fraction": float(np.mean(weights == 0))}
    return np.asarray(weights, dtype=np.float64), info


@ray.remote
class BoostingDriver:
    def __init__(self, cfg_dict: dict, run_path: str, class_name: str, class_index: int,
                 data_box: list):
        self.cfg = from_dict(cfg_dict)
        self.run = RunFolder.at(run_path)  # a path, or a URI (then the state lives in storage)
        self.class_name, self.class_index = class_name, class_index
        self.data_ref = data_box[0]  # kept as a reference: the actor never holds the images
        self.run.pull(state_path(self.run, class_name).parent)  # a URI run: restarted on another node
        self.state = load_state(self.run, class_name)  # a restarted actor continues from here

    def get_state(self) -> dict:
        return self.state

    def run_steps(self) -> dict:
        cfg, b = self.cfg, self.cfg.boosting
        resources = member_resources(cfg)
        folder = state_path(self.run, self.class_name).parent
        for step in range(self.state["step"] + 1, cfg.ensemble.members + 1):
            t0 = time.perf_counter()
            beta = boosting.mixture_beta(step, b.beta_schedule, b.beta_constant)
            weights, info = None, {"beta": beta, "uniform_data_weights": True}
            if step > 1:
                weights, info = ray.get(boost_weights_task.options(**resources).remote(
                    self.data_ref, cfg.to_dict(), self.run.location,
                    [e["generator"] for e in self.state["members"]], self.class_index,
                    self.state["mixture_weights"], step))
                buf = io.BytesIO()
                np.save(buf, weights)
                atomic_write_bytes(folder / f"data_weights_step{step}.npy", buf.getvalue())
                weights = torch.from_numpy(weights).float()
            entry = ray.get(submit_member(self.data_ref, cfg, self.run, resources,
                                          class_name=self.class_name, class_index=self.class_index,
                                          member=step - 1, data_weights=weights))
            mixture = boosting.update_mixture_weights(self.state["mixture_weights"], beta)
            record = {"step": step, **{k: v for k, v in info.items() if _jsonable(v)},
                      "mixture_weights": mixture.tolist(), "seconds": round(time.perf_counter() - t0, 3)}
            self.state = {**self.state, "step": step, "mixture_weights": mixture.tolist(),
                          "members": self.state["members"] + [entry],
                          "steps": self.state["steps"] + [record]}
            atomic_write_text(state_path(self.run, self.class_name), json.dumps(self.state, indent=2))
            ess = info.get("effective_sample_size")
            weights_text = "uniform data weights" if ess is None else f"ESS {ess:.1f}"
            print(f"[boosting] class {self.class_name} step {step}/{cfg.ensemble.members}: beta "
                  f"{beta:.3f}, {weights_text}, mixture {np.round(mixture, 3).tolist()}", flush=True)
        return self.state


def _jsonable(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


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
    manifest = run.manifest()
    known = manifest["members"]
    for entry in state["members"][:members]:
        if f"{entry['class']}/{entry['member']}" not in known:
            run.record_member(entry)
            tracker.log_member(entry, run.path)
    mixtures = run.manifest().get("mixtures", {})
    mixtures[state["class"]] = state["mixture_weights"]
    run.update_manifest(mixtures=mixtures)
    if not quiet:
        logger.info(f"class {state['class']}: {state['step']} boosting steps, mixture weights "
            f"{np.round(state['mixture_weights'], 3).tolist()}")
