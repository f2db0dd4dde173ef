"""The boosting step loop of one class, without Ray: its state in the run folder, and step t.

Algorithm 1 of AdaGAN (Tolstikhin et al., "AdaGAN: Boosting Generative Models", NeurIPS 2017), per class:
for t = 1..T, the mixture weight beta_t; data weights W_t against the mixture G_{t-1} of the members so far
(uniform for t = 1); a new member trained on the data drawn by W_t; the mixture
G_t = (1 - beta_t) G_{t-1} + beta_t (new member). Seed 001's sample reweighting (Algorithm 1 of
"Boosting generative networks for incremental learning") runs the same loop with its feature-distance
weights in place of AdaGAN's classifier-based ones.

Owns:
- the boosting state of a run folder: boosting/<class>/state.json (step, mixture weights, members, one
  record per step) and data_weights_step<t>.npy for every t > 1. Nothing else knows that layout;
- the data weights of one step (:func:`step_weights`) given the members' generators;
- the loop itself (:func:`run_boosting`), with "compute the weights" and "train a member" passed in. The
  state is saved after every step, so a loop restarted from it continues at the next step;
- the in-process runner (:func:`train_boosting`); the cluster's driver actor runs the same loop with Ray
  tasks as the two callables.
"""
from __future__ import annotations

import io
import json
import logging
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from raygan import seeds
from raygan.config import Config
from raygan.data import RealDataset
from raygan.ensemble import boosting, members
from raygan.ensemble.mixture import Mixture
from raygan.gan.train import load_generator, resolve_device
from raygan.runs import RunFolder, atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

# compute_weights(state=..., step=...) -> (data weights summing to 1, info): step t > 1's W_t.
ComputeWeights = Callable[..., tuple[np.ndarray, dict]]
# train_member(member=..., data_weights=...) -> the member's manifest entry (data_weights None: uniform).
TrainMember = Callable[..., dict]


# --- the state in the run folder ----------------------------------------------------------------------
def state_dir(run: RunFolder, class_name: str) -> Path:
    """The folder of a class's boosting state and data weights."""
    return run.path / "boosting" / class_name


def state_path(run: RunFolder, class_name: str) -> Path:
    return state_dir(run, class_name) / "state.json"


def data_weights_path(run: RunFolder, class_name: str, step: int) -> Path:
    return state_dir(run, class_name) / f"data_weights_step{step}.npy"


def load_state(run: RunFolder, class_name: str) -> dict:
    """The saved state of a class, or the state before step 1."""
    path = state_path(run, class_name)
    if path.exists():
        return json.loads(path.read_text())
    return {"class": class_name, "step": 0, "mixture_weights": [], "members": [], "steps": []}


def save_state(run: RunFolder, class_name: str, state: dict) -> None:
    # Atomic: an interrupted step leaves the previous step's state, never half a file.
    atomic_write_text(state_path(run, class_name), json.dumps(state, indent=2))


def save_data_weights(run: RunFolder, class_name: str, step: int, weights: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, weights)
    atomic_write_bytes(data_weights_path(run, class_name, step), buf.getvalue())


# --- one step -----------------------------------------------------------------------------------------
def step_weights(cfg: Config, data: torch.Tensor, generators: Sequence[nn.Module],
                 mixture_weights: Sequence[float], *, class_index: int, step: int,
                 device: str | torch.device) -> tuple[np.ndarray, dict]:
    """Data weights of step ``step`` > 1 for a class's real ``data`` against the mixture so far.

    The mixture draws len(data) samples; AdaGAN trains its real-vs-mixture classifier on them and turns
    the density ratio into weights by ``boosting.rule``; seed 001 weighs each real point by its distance
    to the samples in pixel space. Returns (float64 weights summing to 1, info for the step record).
    """
    mixture = Mixture(list(generators), np.asarray(mixture_weights))
    seed = seeds.boosting_step(cfg.train.seed, class_index, step)
    samples, _ = mixture.sample(len(data), seed=seed, device=device)
    b = cfg.boosting
    beta = boosting.mixture_beta(step, schedule=b.beta_schedule, constant=b.beta_constant)
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


# --- the loop -----------------------------------------------------------------------------------------
def run_boosting(cfg: Config, run: RunFolder, class_name: str, class_index: int, *,
                 compute_weights: ComputeWeights, train_member: TrainMember,
                 on_step: Optional[Callable[[dict], None]] = None) -> dict:
    """Boost one class from its saved state up to ``ensemble.members`` steps; returns the final state.

    Step t: beta_t; W_t = compute_weights(state=..., step=t) for t > 1 (saved as data_weights_step<t>.npy),
    uniform for t = 1; entry = train_member(member=t - 1, data_weights=W_t or None); the mixture update;
    the state saved, then ``on_step(state)``. The callables decide where the work runs.
    """
    state = load_state(run, class_name)
    b, total = cfg.boosting, cfg.ensemble.members
    for step in range(state["step"] + 1, total + 1):
        t0 = time.perf_counter()
        beta = boosting.mixture_beta(step, schedule=b.beta_schedule, constant=b.beta_constant)
        weights, info = None, {"beta": beta, "uniform_data_weights": True}
        if step > 1:
            weights, info = compute_weights(state=state, step=step)
            save_data_weights(run, class_name, step, weights)
            # A copy: weights that came through Ray's object store are read-only.
            weights = torch.tensor(weights, dtype=torch.float32)
        entry = train_member(member=step - 1, data_weights=weights)
        mixture = boosting.update_mixture_weights(state["mixture_weights"], beta)
        record = {"step": step, **{k: v for k, v in info.items() if _jsonable(v)},
                  "mixture_weights": mixture.tolist(), "seconds": round(time.perf_counter() - t0, 3)}
        state = {**state, "step": step, "mixture_weights": mixture.tolist(),
                 "members": state["members"] + [entry], "steps": state["steps"] + [record]}
        save_state(run, class_name, state)
        ess = info.get("effective_sample_size")
        weights_text = "uniform data weights" if ess is None else f"ESS {ess:.1f}"
        logger.info(f"[boosting] class {class_name} step {step}/{total}: beta {beta:.3f}, {weights_text}, "
                    f"mixture {np.round(mixture, 3).tolist()}")
        if on_step is not None:
            on_step(state)
    return state


def _jsonable(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def record_class(run: RunFolder, state: dict, total: int,
                 on_member: Optional[Callable[[dict], None]] = None) -> None:
    """A class's finished boosting into the manifest: its first ``total`` members (those not there yet,
    each then passed to ``on_member``) and its mixture weights under "mixtures"."""
    known = run.manifest()["members"]
    for entry in state["members"][:total]:
        if f"{entry['class']}/{entry['member']}" not in known:
            run.record_member(entry)
            if on_member is not None:
                on_member(entry)
    mixtures = run.manifest().get("mixtures", {})
    mixtures[state["class"]] = state["mixture_weights"]
    run.update_manifest(mixtures=mixtures)


# --- in this process ----------------------------------------------------------------------------------
def train_boosting(cfg: Config, dataset: RealDataset, run: RunFolder) -> list[dict]:
    """Boost every class in turn in this process, resuming each from its saved state.

    The in-process twin of the cluster's driver actors: the same loop, seeds and files, with the weights
    and the members computed here. Returns the manifest entries of all K x T members.
    """
    device = resolve_device(cfg.train.device)
    total = cfg.ensemble.members
    for k, name in enumerate(dataset.classes):
        state = load_state(run, name)
        if state["step"] >= total:
            logger.info(f"class {name}: {state['step']} boosting steps already complete: skipped")
        else:
            logger.info(f"class {name}: boosting from step {state['step'] + 1} of {total} "
                        f"({cfg.ensemble.method})")
            state = run_boosting(cfg, run, name, k,
                                 compute_weights=_local_weights(cfg, run, dataset.train[name], k, device),
                                 train_member=_local_member(cfg, run, dataset.train[name], name, k, device))
        record_class(run, state, total=total)
        logger.info(f"class {name}: {state['step']} boosting steps, mixture weights "
                    f"{np.round(state['mixture_weights'], 3).tolist()}")
    return [run.member_entry(name, t) for name in dataset.classes for t in range(total)]


def _local_weights(cfg: Config, run: RunFolder, data: torch.Tensor, class_index: int,
                   device: torch.device) -> ComputeWeights:
    def compute(*, state: dict, step: int) -> tuple[np.ndarray, dict]:
        generators = [load_generator(run.fetch(e["generator"], sha256=e.get("generator_sha256")),
                                     device=device) for e in state["members"]]
        return step_weights(cfg, data, generators, state["mixture_weights"], class_index=class_index,
                            step=step, device=str(device))
    return compute


def _local_member(cfg: Config, run: RunFolder, data: torch.Tensor, class_name: str, class_index: int,
                  device: torch.device) -> TrainMember:
    def train(*, member: int, data_weights: Optional[torch.Tensor]) -> dict:
        return members.train_member(data, cfg, run, class_name=class_name, class_index=class_index,
                                    member=member, data_weights=data_weights, device=device)
    return train
