"""Ensembles of GANs: one member per (class, member index), member seeds, and the mixture of generators.

Seed 000 Section 2: the ensemble of T GANs is the mixture G_T = sum_t p_t G_t, trained separately per
class k; a synthetic set of N_g samples holds p_t N_g samples from member t (N_g = N real by default).
"""
from __future__ import annotations

import csv
import io
import logging
import time
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

from raygan import seeds
from raygan.config import Config
from raygan.data import RealDataset
from raygan.gan.models import CONDITIONAL, PROGRESSIVE
from raygan.gan.pack import PackMember, train_pack
from raygan.gan.train import GANDivergedError, TrainResult, load_generator, resolve_device, save_generator, train_gan
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


def train_member(data: torch.Tensor, cfg: Config, run: RunFolder, *, class_name: str,
                 class_index: int, member: int, data_weights: Optional[torch.Tensor] = None,
                 device: Optional[torch.device] = None,
                 on_log: Optional[Callable[[int, float, float], None]] = None) -> dict:
    """Train (or resume) one member into members/<class>/<member>/ and return its manifest entry."""
    folder = run.member_dir(class_name, member)
    seed = seeds.member(cfg.train.seed, class_index, member)
    who = {"class": class_name, "class_index": class_index, "member": member}
    [entry] = _train_into(folder, data, cfg, run, seed=seed, heads=[(who, {})],
                          sample_grid=_class_grid(data, cfg, folder, seed, class_name, member),
                          data_weights=data_weights, device=device, on_log=on_log)
    return entry


def _unit(unit, name: str):
    """A field of a train_members unit: a dict or an object with attributes; data_weights optional."""
    if isinstance(unit, dict):
        return unit.get(name) if name == "data_weights" else unit[name]
    return getattr(unit, name, None) if name == "data_weights" else getattr(unit, name)


def _train_one_by_one(units: list, cfg: Config, run: RunFolder, device: torch.device) -> list[dict]:
    entries = []
    for u in units:
        who = {k: _unit(u, f) for k, f in (("class", "class_name"), ("class_index", "class_index"),
                                           ("member", "member"))}
        try:
            entry = train_member(_unit(u, "data"), cfg, run, class_name=who["class"],
                                 class_index=who["class_index"], member=who["member"],
                                 data_weights=_unit(u, "data_weights"), device=device)
        except GANDivergedError as err:
            entry = {**who, "seed": seeds.member(cfg.train.seed, who["class_index"], who["member"]),
                     "status": "diverged", "error": str(err), "device": str(device)}
        entries.append({**entry, "pack_size": 1})
    return entries


def train_members(units: list, cfg: Config, run: RunFolder, *,
                  device: Optional[torch.device] = None) -> list[dict]:
    """Train (or resume) per-class members as one pack (raygan.gan.pack) and write each member's
    folder as train_member does; returns their manifest entries, in the order of ``units``.

    A unit (a dict or an object) has class_name, class_index, member, data and optionally
    data_weights. Every entry also says ``pack_size``. A diverged member does not stop the others:
    its entry has status "diverged" and the error, and no generator. The progressive family (pggan)
    and recursive training (train.recursive_rounds > 0) cannot be packed: their units train one by
    one with train_member (pack_size 1).
    """
    device = _device(cfg, device)
    if cfg.gan.family in CONDITIONAL:
        raise ValueError(f"gan.family={cfg.gan.family} is class-conditional: its members cover every "
                         "class; train them with train_conditional_member")
    if cfg.gan.family in PROGRESSIVE or cfg.train.recursive_rounds > 0:
        return _train_one_by_one(units, cfg, run, device)
    heads, packed = [], []
    for u in units:
        name, k, t = _unit(u, "class_name"), _unit(u, "class_index"), _unit(u, "member")
        heads.append(({"class": name, "class_index": k, "member": t}, seeds.member(cfg.train.seed, k, t)))
        packed.append(PackMember(data=_unit(u, "data"), seed=heads[-1][1],
                                 checkpoint_path=run.member_dir(name, t) / "checkpoint.pt",
                                 data_weights=_unit(u, "data_weights")))
    results = train_pack(packed, gan=cfg.gan, train=cfg.train, device=device)
    entries = []
    for u, (who, seed), result in zip(units, heads, results):
        if isinstance(result, GANDivergedError):
            entry = {**who, "seed": seed, "status": "diverged", "error": str(result), "device": str(device)}
        else:
            data, folder = _unit(u, "data"), run.member_dir(who["class"], who["member"])
            [entry] = _write_member(folder, result, cfg, run, seed=seed, shape=tuple(data.shape[1:]),
                                    heads=[(who, {})], device=device,
                                    sample_grid=_class_grid(data, cfg, folder, seed, who["class"],
                                                            who["member"]))
        entries.append({**entry, "pack_size": len(units)})
    return entries


CONDITIONAL_DIR = "_conditional"


def train_conditional_member(data: torch.Tensor, labels: torch.Tensor, classes: list[str],
                             cfg: Config, run: RunFolder, *, member: int,
                             device: Optional[torch.device] = None,
                             on_log: Optional[Callable[[int, float, float], None]] = None
                             ) -> list[dict]:
    """Seed 003's class-conditional GAN: one model per member for every class.

    The task grid is then per member, not per (class, member). The model lives in
    members/_conditional/<member>/; the manifest gets one entry per class pointing at it with the class
    index as its ``condition``, so synthesis, curves and the audit treat it like K per-class members.
    """
    folder = run.member_dir(CONDITIONAL_DIR, member)
    seed = seeds.conditional_member(cfg.train.seed, member)
    per_class = max(1, cfg.output.sample_grid // len(classes))

    def sample_grid(_generator: nn.Module, device: torch.device) -> None:
        # Each class's row comes from the saved file fixed to that class, as synthesis loads it.
        grid = torch.cat([generate(load_generator(folder / "generator.pt", device=device, condition=k),
                                   per_class, seed=seeds.offset(seed, k), device=device)
                          for k in range(len(classes))])
        save_sample_grid(grid, folder / "samples.png", title=f"conditional member {member}: "
                         f"{per_class} per class, classes in order")

    heads = [({"class": name, "class_index": k, "member": member}, {"condition": k, "conditional": True})
             for k, name in enumerate(classes)]
    return _train_into(folder, data, cfg, run, seed=seed, heads=heads, sample_grid=sample_grid,
                       labels=labels, n_classes=len(classes), device=device, on_log=on_log)


def _write_losses(losses: np.ndarray, path) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["step", "d_loss", "g_loss"])
    for step, (d, g) in enumerate(losses, start=1):
        writer.writerow([step, f"{d:.6g}", f"{g:.6g}"])
    atomic_write_text(path, buf.getvalue())


def member_grid(dataset: RealDataset, members: int) -> list[tuple[int, str, int]]:
    """Every (class index, class name, member) of a K x T ensemble, member-major per class."""
    return [(k, name, t) for k, name in enumerate(dataset.classes) for t in range(members)]


def _training_units(cfg: Config, dataset: RealDataset, run: RunFolder
                    ) -> list[tuple[str, list[tuple[str, int]], Callable[[], list[dict]]]]:
    """What train_independent trains, one model at a time: (what to call it in the log, the manifest
    (class, member) keys it completes, a call that trains it and returns their entries)."""
    if cfg.gan.family == "ccgan":  # a conditional member covers every class
        data, labels = dataset.train_split()
        return [(f"conditional member {t}", [(name, t) for name in dataset.classes],
                 lambda t=t: train_conditional_member(data, labels, dataset.classes, cfg, run, member=t))
                for t in range(cfg.ensemble.members)]
    return [(f"class {name} member {t}", [(name, t)],
             lambda k=k, name=name, t=t: [train_member(dataset.train[name], cfg, run, class_name=name,
                                                       class_index=k, member=t)])
            for k, name, t in member_grid(dataset, cfg.ensemble.members)]


def train_independent(cfg: Config, dataset: RealDataset, run: RunFolder) -> list[dict]:
    """Train the K x T independent ensemble in this process, skipping members already complete.

    The Ray layer (raygan.cluster) runs the same `train_member` and `train_conditional_member` calls
    as tasks instead. A conditional family (gan.family=ccgan) trains T members, each covering every
    class.
    """
    entries = []
    units = _training_units(cfg, dataset, run)
    for i, (label, keys, train) in enumerate(units, start=1):
        done = [run.member_entry(name, t) for name, t in keys]
        if all(done):
            logger.info(f"[{i}/{len(units)}] {label}: complete, skipped")
            entries += done
            continue
        t0 = time.perf_counter()
        new = train()
        run.record_member(*new)
        entries += new
        logger.info(f"[{i}/{len(units)}] {label}: {new[0]['steps']} steps in "
                    f"{time.perf_counter() - t0:.1f}s, d_loss {new[0]['final_d_loss']:.3f}, "
                    f"g_loss {new[0]['final_g_loss']:.3f}")
    return entries
