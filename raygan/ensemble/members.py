"""Ensembles of GANs: one member per (class, member index), member seeds, and the mixture of generators.

Seed 000 Section 2: the ensemble of T GANs is the mixture G_T = sum_t p_t G_t, trained separately per
class k; a synthetic set of N_g samples holds p_t N_g samples from member t (N_g = N real by default).

Divergence policy: a member whose losses go NaN, inf or past train.max_abs_loss trains again from scratch
with its next seed (seeds.member_retry) up to train.divergence_retries times; attempts.json in its folder
keeps the diverged attempts (a rerun goes on with the next). Its entry then says attempts, seeds_tried and
divergence; a member never converging gets status "diverged", under the manifest's "diverged" section.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

from raygan import seeds
from raygan.config import Config, ConfigError
from raygan.data import RealDataset
from raygan.gan.models import CONDITIONAL, UNPACKABLE
from raygan.gan.pack import PackMember, train_pack
from raygan.gan.train import GANDivergedError, TrainResult, load_generator, resolve_device, save_generator, train_gan
from raygan.progress import track
from raygan.runs import RunFolder, atomic_write_text, sha256_file
from raygan.synthesis.generate import generate
from raygan.synthesis.grids import save_sample_grid

logger = logging.getLogger(__name__)


# Called once a member's generator.pt is written, with the trained generator and the device: draws
# the member folder's samples.png.
SampleGrid = Callable[[nn.Module, torch.device], None]


def _train_rounds(data: torch.Tensor, cfg: Config, folder, seed: int, *, labels=None,
                  n_classes=None, data_weights=None, device=None, on_log=None):
    """train_gan, or seed 002's recursive training when train.recursive_rounds > 0.

    Recursive training (seed 002, Experiment 3): round 0 trains on the real set s_0; after round i the
    round's generator draws recursive_fraction * s_i samples, which join the training set of round
    i + 1, and a GAN is trained anew on it. The member is the last round's GAN; every round keeps its
    own checkpoint (round<i>.pt) so a resumed member skips finished rounds.
    """
    rounds = cfg.train.recursive_rounds
    sizes = [int(data.shape[0])]
    for r in range(rounds + 1):
        last = r == rounds
        ckpt = folder / ("checkpoint.pt" if last else f"round{r}.pt")
        kwargs = {"labels": labels, "n_classes": n_classes} if labels is not None else {}
        result = train_gan(data, gan=cfg.gan, train=cfg.train,
                           seed=seed if r == 0 else seeds.recursive_round(seed, r),
                           checkpoint_path=ckpt, data_weights=data_weights if r == 0 else None,
                           device=device, on_log=on_log if last else None, **kwargs)
        if last:
            return result, sizes
        extra = max(1, int(round(cfg.train.recursive_fraction * data.shape[0])))
        synthetic = generate(result.generator, extra, seed=seeds.recursive_samples(seed, r), device=device)
        data = torch.cat([data.cpu(), synthetic.to(data.dtype)])
        sizes.append(int(data.shape[0]))
        logger.info(f"recursive round {r}: trained on {sizes[-2]}, +{extra} synthetic -> {sizes[-1]}")
    raise AssertionError("unreachable")


def _device(cfg: Config, device: Optional[torch.device]) -> torch.device:
    """The training device (train.num_threads applied to this process's torch first)."""
    if cfg.train.num_threads is not None:
        torch.set_num_threads(cfg.train.num_threads)
    return device or resolve_device(cfg.train.device)


def _write_member(folder, result: TrainResult, cfg: Config, run: RunFolder, *, seed: int, shape: tuple,
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
    return [{**who, **model, **own, "device": str(device), **rounds} for who, own in heads]


def _train_into(folder, data: torch.Tensor, cfg: Config, run: RunFolder, *, seed: int,
                heads: list[tuple[dict, dict]], sample_grid: SampleGrid, labels=None,
                n_classes: Optional[int] = None, data_weights: Optional[torch.Tensor] = None,
                device: Optional[torch.device] = None, on_log=None) -> list[dict]:
    """Train (or resume) one model into its member folder and return the manifest entries it makes
    (see _write_member)."""
    device = _device(cfg, device)
    result, sizes = _train_rounds(data, cfg, folder, seed, labels=labels, n_classes=n_classes,
                                  data_weights=data_weights, device=device, on_log=on_log)
    return _write_member(folder, result, cfg, run, seed=seed, shape=tuple(data.shape[1:]), heads=heads,
                         sample_grid=sample_grid, device=device, sizes=sizes)


def _class_grid(data: torch.Tensor, cfg: Config, folder, seed: int, class_name: str,
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


def _with_retries(folders: list[Path], cfg: Config, seed_of: Callable[[int, int], int],
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


def _packed(cfg: Config, member_of: Callable[[int, int], PackMember], device) -> Callable:
    """_with_retries' ``train`` for models trained as one pack (``member_of(i, seed)``)."""
    return lambda pairs: train_pack([member_of(i, seed) for i, seed in pairs], gan=cfg.gan, train=cfg.train,
                                    device=device)


def _finished(made: Optional[list[dict]], heads: list[tuple[dict, dict]], seed: int, failed: list[dict],
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


# --- members ------------------------------------------------------------------------------------------
def train_member(data: torch.Tensor, cfg: Config, run: RunFolder, *, class_name: str,
                 class_index: int, member: int, data_weights: Optional[torch.Tensor] = None,
                 device: Optional[torch.device] = None,
                 on_log: Optional[Callable[[int, float, float], None]] = None) -> dict:
    """Train (or resume) one member into members/<class>/<member>/ and return its manifest entry
    (status "diverged" when every attempt diverged: see the divergence policy above)."""
    folder = run.member_dir(class_name, member)
    who = {"class": class_name, "class_index": class_index, "member": member}

    def train(seed: int) -> list[dict]:
        return _train_into(folder, data, cfg, run, seed=seed, heads=[(who, {})],
                           sample_grid=_class_grid(data, cfg, folder, seed, class_name, member),
                           data_weights=data_weights, device=device, on_log=on_log)

    [(made, seed, failed)] = _with_retries(
        [folder], cfg, train=lambda pairs: [train(pairs[0][1])],
        seed_of=lambda _, a: seeds.member_retry(cfg.train.seed, class_index, member, a))
    [entry] = _finished(made, [(who, {})], seed, failed, device or cfg.train.device)
    return entry


def train_members(units: list, cfg: Config, run: RunFolder, *,
                  device: Optional[torch.device] = None) -> list[dict]:
    """Train (or resume) per-class members as one pack (raygan.gan.pack) and write each member's
    folder as train_member does; returns their manifest entries, in the order of ``units``.

    A unit (a dict or an object) has class_name, class_index, member, data and optionally
    data_weights. Every entry also says ``pack_size``. A diverged member does not stop the others:
    it trains again with its next seed (in a pack of the diverged ones), and if it never converges
    its entry has status "diverged", the attempts and no generator. An UNPACKABLE family (pggan) and
    recursive training (train.recursive_rounds > 0) train their units one by one (pack_size 1).
    """
    device = _device(cfg, device)
    if cfg.gan.family in CONDITIONAL:
        raise ValueError(f"gan.family={cfg.gan.family} is class-conditional: its members cover every "
                         "class; train them with train_conditional_members")
    units = [u if isinstance(u, dict) else vars(u) for u in units]
    if cfg.gan.family in UNPACKABLE or cfg.train.recursive_rounds > 0:
        return [{**train_member(u["data"], cfg, run, class_name=u["class_name"], class_index=u["class_index"],
                                member=u["member"], data_weights=u.get("data_weights"), device=device),
                 "pack_size": 1} for u in units]
    who = [{"class": u["class_name"], "class_index": u["class_index"], "member": u["member"]} for u in units]
    folders = [run.member_dir(w["class"], w["member"]) for w in who]
    trained = _with_retries(
        folders, cfg,
        seed_of=lambda i, a: seeds.member_retry(cfg.train.seed, who[i]["class_index"], who[i]["member"], a),
        train=_packed(cfg, device=device, member_of=lambda i, seed: PackMember(
            data=units[i]["data"], seed=seed, checkpoint_path=folders[i] / "checkpoint.pt",
            data_weights=units[i].get("data_weights"))))
    entries = []
    for u, w, folder, (result, seed, failed) in zip(units, who, folders, trained):
        made = None if result is None else _write_member(
            folder, result, cfg, run, seed=seed, shape=tuple(u["data"].shape[1:]), heads=[(w, {})],
            device=device, sample_grid=_class_grid(u["data"], cfg, folder, seed, w["class"], w["member"]))
        [entry] = _finished(made, [(w, {})], seed, failed, device)
        entries.append({**entry, "pack_size": len(units)})
    return entries


CONDITIONAL_DIR = "_conditional"


def _conditional_parts(folder: Path, classes: list[str], cfg: Config, member: int, seed: int
                       ) -> tuple[list[tuple[dict, dict]], SampleGrid]:
    """A conditional member's entry heads (one per class, the class index as its ``condition``) and
    its samples.png: each class's row from the saved file fixed to that class, as synthesis loads it."""
    per_class = max(1, cfg.output.sample_grid // len(classes))

    def sample_grid(_generator: nn.Module, device: torch.device) -> None:
        grid = torch.cat([generate(load_generator(folder / "generator.pt", device=device, condition=k),
                                   per_class, seed=seeds.offset(seed, k), device=device)
                          for k in range(len(classes))])
        save_sample_grid(grid, folder / "samples.png", title=f"conditional member {member}: "
                         f"{per_class} per class, classes in order")

    heads = [({"class": name, "class_index": k, "member": member}, {"condition": k, "conditional": True})
             for k, name in enumerate(classes)]
    return heads, sample_grid


def train_conditional_member(data: torch.Tensor, labels: torch.Tensor, classes: list[str],
                             cfg: Config, run: RunFolder, *, member: int,
                             device: Optional[torch.device] = None,
                             on_log: Optional[Callable[[int, float, float], None]] = None
                             ) -> list[dict]:
    """A class-conditional GAN (seed 003's ccgan, or biggan): one model per member for every class.

    The task grid is then per member, not per (class, member). The model lives in
    members/_conditional/<member>/; the manifest gets one entry per class pointing at it with the class
    index as its ``condition``, so synthesis, curves and the audit treat it like K per-class members.
    """
    folder = run.member_dir(CONDITIONAL_DIR, member)

    def train(seed: int) -> list[dict]:
        heads, sample_grid = _conditional_parts(folder, classes, cfg, member, seed)
        return _train_into(folder, data, cfg, run, seed=seed, heads=heads, sample_grid=sample_grid,
                           labels=labels, n_classes=len(classes), device=device, on_log=on_log)

    [(made, seed, failed)] = _with_retries(
        [folder], cfg, train=lambda pairs: [train(pairs[0][1])],
        seed_of=lambda _, a: seeds.conditional_member_retry(cfg.train.seed, member, a))
    return _finished(made, _conditional_parts(folder, classes, cfg, member, 0)[0], seed, failed,
                     device or cfg.train.device)


def train_conditional_members(data: torch.Tensor, labels: torch.Tensor, classes: list[str],
                              cfg: Config, run: RunFolder, *, members: list[int],
                              device: Optional[torch.device] = None) -> list[dict]:
    """Conditional ``members`` trained as one pack, each written as train_conditional_member writes
    it (members/_conditional/<t>/, one entry per class); their entries, member by member. An UNPACKABLE
    family (biggan) trains them one by one with train_conditional_member instead (pack_size 1)."""
    device = _device(cfg, device)
    if cfg.train.recursive_rounds > 0:
        raise ValueError("recursive training cannot be packed: train_conditional_member one by one")
    if cfg.gan.family in UNPACKABLE:
        return [{**e, "pack_size": 1} for t in members for e in train_conditional_member(
            data, labels, classes, cfg, run, member=t, device=device)]
    folders = [run.member_dir(CONDITIONAL_DIR, t) for t in members]
    trained = _with_retries(
        folders, cfg, seed_of=lambda i, a: seeds.conditional_member_retry(cfg.train.seed, members[i], a),
        train=_packed(cfg, device=device, member_of=lambda i, seed: PackMember(
            data=data, seed=seed, labels=labels, n_classes=len(classes),
            checkpoint_path=folders[i] / "checkpoint.pt")))
    entries = []
    for t, folder, (result, seed, failed) in zip(members, folders, trained):
        heads, sample_grid = _conditional_parts(folder, classes, cfg, t, seed)
        made = None if result is None else _write_member(
            folder, result, cfg, run, seed=seed, shape=tuple(data.shape[1:]), heads=heads,
            sample_grid=sample_grid, device=device)
        made = _finished(made, heads, seed, failed, device)
        entries += [{**e, "pack_size": len(members)} for e in made]
    return entries


def _write_losses(losses: np.ndarray, path) -> None:
    buf = io.StringIO()
    rows = ([step, f"{d:.6g}", f"{g:.6g}"] for step, (d, g) in enumerate(losses, start=1))
    csv.writer(buf).writerows([["step", "d_loss", "g_loss"], *rows])
    atomic_write_text(path, buf.getvalue())


def member_grid(dataset: RealDataset, members: int) -> list[tuple[int, str, int]]:
    """Every (class index, class name, member) of a K x T ensemble, member-major per class."""
    return [(k, name, t) for k, name in enumerate(dataset.classes) for t in range(members)]


def _training_units(cfg: Config, dataset: RealDataset, run: RunFolder
                    ) -> list[tuple[str, list[tuple[str, int]], Callable[[], list[dict]]]]:
    """What train_independent trains, one model at a time: (what to call it in the log, the manifest
    (class, member) keys it completes, a call that trains it and returns their entries)."""
    if cfg.gan.family in CONDITIONAL:  # a conditional member covers every class
        data, labels = dataset.train_split()
        return [(f"conditional member {t}", [(name, t) for name in dataset.classes],
                 lambda t=t: train_conditional_member(data, labels, dataset.classes, cfg, run, member=t))
                for t in range(cfg.ensemble.members)]
    return [(f"class {name} member {t}", [(name, t)],
             lambda k=k, name=name, t=t: [train_member(dataset.train[name], cfg, run, class_name=name,
                                                       class_index=k, member=t)])
            for k, name, t in member_grid(dataset, cfg.ensemble.members)]


def train_independent(cfg: Config, dataset: RealDataset, run: RunFolder) -> list[dict]:
    """Train the K x T independent ensemble in this process, skipping members already complete (the
    Ray layer runs the same calls as tasks); conditional families train T members, each for every class."""
    entries = []
    units = _training_units(cfg, dataset, run)
    for i, (label, keys, train) in enumerate(track(units, "members", unit="member"), start=1):
        done = [run.member_entry(name, t) for name, t in keys]
        if all(done):
            logger.info(f"[{i}/{len(units)}] {label}: complete, skipped")
            entries += done
            continue
        t0 = time.perf_counter()
        new = record_trained(run, train())
        entries += new
        logger.info(f"[{i}/{len(units)}] {label}: " + (f"{new[0]['steps']} steps in "
                    f"{time.perf_counter() - t0:.1f}s, d_loss {new[0]['final_d_loss']:.3f}, "
                    f"g_loss {new[0]['final_g_loss']:.3f}" if new else "diverged, given up"))
    check_classes(run, dataset.classes, cfg)
    return entries


def record_trained(run: RunFolder, entries: list[dict]) -> list[dict]:
    """The driver's record of trained members: the complete ones into the manifest's members (one
    write), given-up ones under its "diverged" section; returns the complete ones."""
    ok = [e for e in entries if e.get("status") == "complete"]
    if ok:
        run.record_member(*ok)
    diverged = run.manifest().get("diverged", {})
    kept = {key: e for key, e in diverged.items() if key not in {f"{o['class']}/{o['member']}" for o in ok}}
    kept.update({f"{e['class']}/{e['member']}": e for e in entries if e.get("status") == "diverged"})
    if kept != diverged:
        run.update_manifest(diverged=kept)
    return ok


def check_classes(run: RunFolder, classes: list[str], cfg: Config) -> None:
    """After training: name every member given up; NoMemberError (exit 2) if a class has none left."""
    given_up = run.manifest().get("diverged", {})
    for key, e in sorted(given_up.items()):
        logger.warning(f"member {key} diverged in all {e.get('attempts', 1)} attempts (seeds {e.get('seeds_tried')}): "
                       "left out; synthesis renormalises its class's mixture weights without it")
    empty = [name for name in classes
             if not any(run.member_entry(name, t) for t in range(cfg.ensemble.members))]
    if empty and any(key.rsplit("/", 1)[0] in empty for key in given_up):
        raise NoMemberError(f"class(es) {empty} ended with no member: every one diverged in "
                            f"{cfg.train.divergence_retries + 1} attempts; lower gan.lr_d / gan.lr_g "
                            "or raise train.divergence_retries (with a new output.run)")
