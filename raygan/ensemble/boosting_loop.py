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
- the loop itself (:func:`run_lockstep`: every class one step on per round, so that a step's K members
  can train as packs), with "compute the weights" and "train the members" passed in. Each class's state
  is saved after each of its steps, so a loop restarted from them continues every class at its next step;
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
from raygan.ensemble.training import class_unit, train_units
from raygan.gan.train import load_generator, resolve_device
from raygan.runs import RunFolder, atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

# compute_weights(state=..., step=...) -> (data weights summing to 1, info): step t > 1's W_t.
ComputeWeights = Callable[..., tuple[np.ndarray, dict]]
# train_member(member=..., data_weights=...) -> the member's manifest entry (data_weights None: uniform).
TrainMember = Callable[..., dict]
# The lockstep loop's: [(class index, name, state, step)] -> [(W_t, info)], one per class asked, and
# [(class index, name, member, W_t or None)] -> [manifest entry], in the order given.
StepWeights = Callable[[list[tuple]], list[tuple[np.ndarray, dict]]]
TrainStep = Callable[[list[tuple]], list[dict]]


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
def mixture_so_far(state: dict) -> tuple[list[dict], list[float]]:
    """The members of a class's mixture so far (their entries) and their mixture weights: a step whose
    member diverged past its retries has none, so the others' weights are renormalised without it."""
    kept = [(e, w) for e, w in zip(state["members"], state["mixture_weights"]) if e.get("status") != "diverged"]
    if len(kept) == len(state["members"]):
        return state["members"], state["mixture_weights"]
    total = sum(w for _, w in kept)
    return [e for e, _ in kept], [w / total for _, w in kept]


def run_lockstep(cfg: Config, run: RunFolder, classes: Sequence[tuple[int, str]], *,
                 compute_weights: StepWeights, train_step: TrainStep,
                 on_step: Optional[Callable[[dict], None]] = None) -> dict[str, dict]:
    """Boost ``classes`` ((class index, name) each) in lockstep from their saved states up to
    ``ensemble.members`` steps; returns every class's final state.

    A round takes every unfinished class one step on, each at its own next step (after a crash the
    classes may be at different steps: every state.json is its own): beta_t; the data weights W_t of
    every class that has members, ``compute_weights([(class index, name, state, t), ...])`` at once
    (saved as data_weights_step<t>.npy; uniform for t = 1); the round's members, one per class,
    ``train_step([(class index, name, member t - 1, W_t or None), ...])`` at once (how many to a pack
    is the caller's); the mixture updates; each state saved, then ``on_step(state)``. A step whose
    member diverged past its retries (status "diverged") leaves the mixture as it was: the member
    gets weight 0 and later steps weigh the data against the members that exist.
    """
    total = cfg.ensemble.members
    states = {name: load_state(run, name) for _, name in classes}
    while active := [(k, name) for k, name in classes if states[name]["step"] < total]:
        t0 = time.perf_counter()
        step = {name: states[name]["step"] + 1 for _, name in active}
        asks = [(k, name, states[name], step[name]) for k, name in active if mixture_so_far(states[name])[0]]
        weighed = dict(zip([name for _, name, _, _ in asks], compute_weights(asks) if asks else []))
        heads = []
        for k, name in active:
            weights = None
            if name in weighed:
                save_data_weights(run, name, step[name], weighed[name][0])
                # A copy: weights that came through Ray's object store are read-only.
                weights = torch.tensor(weighed[name][0], dtype=torch.float32)
            heads.append((k, name, step[name] - 1, weights))
        for (_, name), entry in zip(active, train_step(heads)):
            states[name] = _advance(cfg, run, states[name], step=step[name], entry=entry, t0=t0,
                                    info=weighed[name][1] if name in weighed else None)
            if on_step is not None:
                on_step(states[name])
    return states


def _advance(cfg: Config, run: RunFolder, state: dict, *, step: int, entry: dict, info: Optional[dict],
             t0: float) -> dict:
    """A class's state after step ``step`` trained ``entry`` (saved); ``info``: its weights' (None:
    uniform data weights)."""
    b, name = cfg.boosting, state["class"]
    beta = boosting.mixture_beta(step, schedule=b.beta_schedule, constant=b.beta_constant)
    info = info if info is not None else {"beta": beta, "uniform_data_weights": True}
    diverged = entry.get("status") == "diverged"
    mixture = np.append(np.asarray(state["mixture_weights"], dtype=np.float64), 0.0) if diverged \
        else boosting.update_mixture_weights(state["mixture_weights"], beta)
    record = {"step": step, **{k: v for k, v in info.items() if _jsonable(v)},
              **({"member_diverged": True} if diverged else {}),
              "mixture_weights": mixture.tolist(), "seconds": round(time.perf_counter() - t0, 3)}
    state = {**state, "step": step, "mixture_weights": mixture.tolist(),
             "members": state["members"] + [entry], "steps": state["steps"] + [record]}
    save_state(run, name, state)
    ess = info.get("effective_sample_size")
    weights_text = "uniform data weights" if ess is None else f"ESS {ess:.1f}"
    given_up = "; its member diverged in every attempt: the mixture stays as it was" if diverged else ""
    logger.info(f"[boosting] class {name} step {step}/{cfg.ensemble.members}: beta {beta:.3f}, "
                f"{weights_text}, mixture {np.round(mixture, 3).tolist()}{given_up}")
    return state


def run_boosting(cfg: Config, run: RunFolder, class_name: str, class_index: int, *,
                 compute_weights: ComputeWeights, train_member: TrainMember,
                 on_step: Optional[Callable[[dict], None]] = None) -> dict:
    """:func:`run_lockstep` for one class, with one-step callables: ``compute_weights(state=...,
    step=...)`` and ``train_member(member=..., data_weights=...)``; returns the final state."""
    return run_lockstep(
        cfg, run, [(class_index, class_name)], on_step=on_step,
        compute_weights=lambda asks: [compute_weights(state=state, step=t) for _, _, state, t in asks],
        train_step=lambda heads: [train_member(member=t, data_weights=w) for _, _, t, w in heads],
    )[class_name]


def _jsonable(value) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def record_class(run: RunFolder, state: dict, total: int,
                 on_member: Optional[Callable[[dict], None]] = None) -> None:
    """A class's finished boosting into the manifest: its first ``total`` members (those not there yet;
    each complete one then passed to ``on_member``; one given up goes under "diverged") and its
    mixture weights under "mixtures"."""
    known = run.manifest()["members"]
    new = [e for e in state["members"][:total] if f"{e['class']}/{e['member']}" not in known]
    for entry in members.record_trained(run, new):
        if on_member is not None:
            on_member(entry)
    mixtures = run.manifest().get("mixtures", {})
    mixtures[state["class"]] = state["mixture_weights"]
    run.update_manifest(mixtures=mixtures)


# --- in this process ----------------------------------------------------------------------------------
def train_boosting(cfg: Config, dataset: RealDataset, run: RunFolder) -> list[dict]:
    """Boost every class in this process, in lockstep (:func:`run_lockstep`), resuming each from its
    saved state.

    The in-process twin of the cluster's driver actors: the same loop, seeds and files, with the weights
    and the members computed here; a step's members train cluster.members_per_task to a pack
    (train_units; null, auto, trains them one by one here, like train_independent). Returns the
    manifest entries of the K x T members that are complete.
    """
    device = resolve_device(cfg.train.device)
    total, classes = cfg.ensemble.members, list(enumerate(dataset.classes))
    for _, name in classes:
        step = load_state(run, name)["step"]
        logger.info(f"class {name}: {step} boosting steps already complete: skipped" if step >= total else
                    f"class {name}: boosting from step {step + 1} of {total} ({cfg.ensemble.method})")
    states = run_lockstep(cfg, run, classes, compute_weights=_local_weights(cfg, run, dataset, device),
                          train_step=_local_step(cfg, run, dataset, device))
    for _, name in classes:
        record_class(run, states[name], total=total)
        logger.info(f"class {name}: {states[name]['step']} boosting steps, mixture weights "
                    f"{np.round(states[name]['mixture_weights'], 3).tolist()}")
    members.check_classes(run, dataset.classes, cfg)
    return [e for name in dataset.classes for t in range(total) if (e := run.member_entry(name, t))]


def _local_weights(cfg: Config, run: RunFolder, dataset: RealDataset, device: torch.device) -> StepWeights:
    def compute(asks: list[tuple]) -> list[tuple[np.ndarray, dict]]:
        out = []
        for k, name, state, step in asks:
            entries, weights = mixture_so_far(state)
            generators = [load_generator(run.fetch(e["generator"], sha256=e.get("generator_sha256")),
                                         device=device) for e in entries]
            out.append(step_weights(cfg, dataset.train[name], generators, weights, class_index=k,
                                    step=step, device=str(device)))
        return out
    return compute


def _local_step(cfg: Config, run: RunFolder, dataset: RealDataset, device: torch.device) -> TrainStep:
    size = cfg.cluster.members_per_task or 1

    def train(heads: list[tuple]) -> list[dict]:
        units = [class_unit(cfg, run, dataset.train[name], class_name=name, class_index=k, member=t,
                            data_weights=w) for k, name, t, w in heads]
        if size == 1:  # each member on its own modules, as one member per task does
            return [e for entries in train_units(units, cfg, run, pack=False, device=device) for e in entries]
        return [e for i in range(0, len(units), size)
                for entries in train_units(units[i:i + size], cfg, run, pack=True, device=device) for e in entries]
    return train
