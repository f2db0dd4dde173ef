"""Member folders of an ensemble of GANs: what a trained member writes (generator.pt, losses.csv,
samples.png) and the manifest entries it makes, the divergence retries, and the driver's record of
trained members. Training itself is raygan.ensemble.training (one way to train members).

Seed 000 Section 2: the ensemble of T GANs is the mixture G_T = sum_t p_t G_t, trained separately per
class k; a synthetic set of N_g samples holds p_t N_g samples from member t (N_g = N real by default).

Divergence policy: a member whose losses go NaN, inf or past train.max_abs_loss trains again from scratch
with its next seed (seeds.member_retry) up to train.divergence_retries times; attempts.json in its folder
keeps the diverged attempts (a rerun goes on with the next). Its entry then says attempts, seeds_tried and
divergence; a member never converging gets status "diverged", under the manifest's "diverged" section,
as does one dropped for collapse (status "collapsed"; raygan.ensemble.collapse).
"""
from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

from raygan import seeds
from raygan.config import Config, ConfigError
from raygan.data import RealDataset
from raygan.gan.train import GANDivergedError, TrainResult, load_generator, save_generator
from raygan.runs import RunFolder, atomic_write_text, sha256_file
from raygan.synthesis.generate import generate
from raygan.synthesis.grids import save_sample_grid

logger = logging.getLogger(__name__)


# Called once a member's generator.pt is written, with the trained generator and the device: draws
# the member folder's samples.png.
SampleGrid = Callable[[nn.Module, torch.device], None]


def write_member(folder, result: TrainResult, cfg: Config, run: RunFolder, *, seed: int, shape: tuple,
                  heads: list[tuple[dict, dict]], sample_grid: SampleGrid, device: torch.device,
                  sizes: Optional[list[int]] = None) -> list[dict]:
    """Write a trained model's member folder (generator.pt, losses.csv and, through ``sample_grid``,
    samples.png) and return the manifest entries it makes. ``heads`` holds, per entry, the fields that
    name it (class, class index, member) and those that only it has (the condition of a conditional
    member); the rest of every entry describes the shared model."""
    save_generator(result.generator, cfg.gan, shape, folder / "generator.pt")
    _write_losses(result.losses, folder / "losses.csv")
    sample_grid(result.generator, device)
    tail = result.losses[-max(1, cfg.train.log_every):].mean(0)
    model = {"seed": seed, "status": "complete", "steps": result.steps,
             "resumed_from": result.resumed_from, "seconds": round(result.seconds, 3),
             "final_d_loss": float(tail[0]), "final_g_loss": float(tail[1]),
             "generator": str((folder / "generator.pt").relative_to(run.path)),
             "generator_sha256": sha256_file(folder / "generator.pt")}
    rounds = {"recursive_train_sizes": sizes} if cfg.train.recursive_rounds else {}
    privacy = {"privacy": result.privacy} if result.privacy is not None else {}  # its accountant history
    return [{**who, **model, **own, "device": str(device), **rounds, **privacy} for who, own in heads]


def class_grid(data: torch.Tensor, cfg: Config, folder, seed: int, class_name: str,
                member: int) -> SampleGrid:
    """samples.png of a per-class member: a grid, or for 2-D points a scatter of 2000 over the real
    points."""
    def sample_grid(generator: nn.Module, device: torch.device) -> None:
        points = data.dim() == 2
        samples = generate(generator, 2000 if points else cfg.output.sample_grid, seed=seed, device=device)
        save_sample_grid(samples, folder / "samples.png", real=data[:2000].cpu() if points else None,
                         title=f"class {class_name}, member {member}")
    return sample_grid


# --- divergence: retries with the next seed ---------------------------------------------------------
ATTEMPTS_FILE = "attempts.json"


class NoMemberError(ConfigError):
    """A class ended with no member (every one diverged past its retries): nothing to synthesize from."""


def failed_attempts(folder: Path) -> list[dict]:
    """The member's attempts that diverged ({"seed", "error"} each, oldest first)."""
    path = Path(folder) / ATTEMPTS_FILE
    return json.loads(path.read_text()) if path.is_file() else []


def _note_divergence(folder: Path, seed: int, err: Exception, failed: list[dict]) -> list[dict]:
    """Keep a diverged attempt in the member folder; its checkpoints go, because they belong to the
    diverged seed: the next attempt starts from scratch with the next seed."""
    failed = failed + [{"seed": seed, "error": str(err)}]
    atomic_write_text(Path(folder) / ATTEMPTS_FILE, json.dumps(failed, indent=2))
    for ckpt in [Path(folder) / "checkpoint.pt", *Path(folder).glob("round*.pt")]:
        ckpt.unlink(missing_ok=True)
    logger.warning(f"{folder}: attempt {len(failed)} (seed {seed}) diverged: {err}")
    return failed


def with_retries(folders: list[Path], cfg: Config, seed_of: Callable[[int, int], int],
                  train: Callable[[list[tuple[int, int]]], list]) -> list[tuple]:
    """``train([(i, seed), ...])`` (per pair its result, or the GANDivergedError) for the models of
    ``folders``; the diverged ones again with their next seeds (``seed_of(i, attempt)``) while they
    have retries left. Per model: (its result or None when given up, its last seed, failed attempts)."""
    failed = [failed_attempts(f) for f in folders]
    done, tried = {}, {}
    todo = list(range(len(folders)))
    while todo := [i for i in todo if len(failed[i]) <= cfg.train.divergence_retries]:
        tried.update({i: seed_of(i, len(failed[i])) for i in todo})
        try:
            results = train([(i, tried[i]) for i in todo])
        except GANDivergedError as err:  # a model trained alone raises what a pack returns
            results = [err]
        for i, result in zip(todo, results):
            if isinstance(result, GANDivergedError):
                failed[i] = _note_divergence(folders[i], tried[i], result, failed[i])
            else:
                done[i] = result
        todo = [i for i in todo if i not in done]
    return [(done.get(i), tried.get(i), failed[i]) for i in range(len(folders))]


def finished(made: Optional[list[dict]], heads: list[tuple[dict, dict]], seed: int, failed: list[dict],
              device) -> list[dict]:
    """A model's entries after its attempts: those it ``made``, saying the retries it needed, or
    given-up ones (status "diverged", no generator; their ``seed`` is the member's first)."""
    tried = [f["seed"] for f in failed] + ([] if made is None else [seed])
    retries = {"attempts": len(tried), "seeds_tried": tried,
               "divergence": [f["error"] for f in failed]} if failed else {}
    if made is None:
        return [{**who, **own, "seed": tried[0], "status": "diverged", **retries, "error": failed[-1]["error"],
                 "device": str(device)} for who, own in heads]
    return [{**e, **retries} for e in made]


CONDITIONAL_DIR = "_conditional"
GIVEN_UP = ("diverged", "collapsed")  # statuses of members left out of the mixture


def conditional_heads(classes: list[str], member: int) -> list[tuple[dict, dict]]:
    """A conditional member's entry heads: one per class, the class index as its ``condition``."""
    return [({"class": name, "class_index": k, "member": member}, {"condition": k, "conditional": True})
            for k, name in enumerate(classes)]


def conditional_grid(folder: Path, classes: list[str], cfg: Config, member: int, seed: int) -> SampleGrid:
    """A conditional member's samples.png: each class's row from the saved file fixed to that class,
    as synthesis loads it."""
    per_class = max(1, cfg.output.sample_grid // len(classes))

    def sample_grid(_generator: nn.Module, device: torch.device) -> None:
        grid = torch.cat([generate(load_generator(folder / "generator.pt", device=device, condition=k),
                                   per_class, seed=seeds.offset(seed, k), device=device)
                          for k in range(len(classes))])
        save_sample_grid(grid, folder / "samples.png", title=f"conditional member {member}: "
                         f"{per_class} per class, classes in order")
    return sample_grid


def _write_losses(losses: np.ndarray, path) -> None:
    buf = io.StringIO()
    rows = ([step, f"{d:.6g}", f"{g:.6g}"] for step, (d, g) in enumerate(losses, start=1))
    csv.writer(buf).writerows([["step", "d_loss", "g_loss"], *rows])
    atomic_write_text(path, buf.getvalue())


def member_grid(dataset: RealDataset, members: int) -> list[tuple[int, str, int]]:
    """Every (class index, class name, member) of a K x T ensemble, member-major per class."""
    return [(k, name, t) for k, name in enumerate(dataset.classes) for t in range(members)]


def record_trained(run: RunFolder, entries: list[dict]) -> list[dict]:
    """The driver's record of trained members: the complete ones into the manifest's members (one
    write), given-up ones (diverged, or collapsed under ensemble.on_collapse=drop) under its "diverged"
    section; returns the complete ones."""
    ok = [e for e in entries if e.get("status") == "complete"]
    if ok:
        run.record_member(*ok)
    diverged = run.manifest().get("diverged", {})
    kept = {key: e for key, e in diverged.items() if key not in {f"{o['class']}/{o['member']}" for o in ok}}
    kept.update({f"{e['class']}/{e['member']}": e for e in entries if e.get("status") in GIVEN_UP})
    if kept != diverged:
        run.update_manifest(diverged=kept)
    return ok


def check_classes(run: RunFolder, classes: list[str], cfg: Config) -> None:
    """After training: name every member given up; NoMemberError (exit 2) if a class has none left."""
    given_up = run.manifest().get("diverged", {})
    for key, e in sorted(given_up.items()):
        how = (f"diverged in all {e.get('attempts', 1)} attempts (seeds {e.get('seeds_tried')})"
               if e.get("status") != "collapsed" else e.get("error", "collapsed"))
        logger.warning(f"member {key} {how}: left out; synthesis renormalises its class's mixture weights "
                       "without it")
    empty = [name for name in classes
             if not any(run.member_entry(name, t) for t in range(cfg.ensemble.members))]
    if empty and any(key.rsplit("/", 1)[0] in empty for key in given_up):
        collapsed = any(e.get("status") == "collapsed" for key, e in given_up.items()
                        if key.rsplit("/", 1)[0] in empty)
        why = ("every one diverged or was dropped as collapsed (ensemble.on_collapse=drop); train longer, "
               "use ensemble.on_collapse=warn or retrain, or lower ensemble.collapse_threshold"
               if collapsed else f"every one diverged in {cfg.train.divergence_retries + 1} attempts; lower "
               "gan.lr_d / gan.lr_g or raise train.divergence_retries")
        raise NoMemberError(f"class(es) {empty} ended with no member: {why} (with a new output.run)")
