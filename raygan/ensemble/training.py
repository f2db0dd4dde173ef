"""One way to train members: `train_units` trains (or resumes) a list of units into their member folders
and returns their manifest entries. Every trainer of an ensemble calls it: the local independent
ensemble (`train_independent`), the Ray task (raygan.cluster.tasks.train_units_task), the boosting loop
and the GAN search.

A :class:`Unit` is one model and the member folder it fills: a per-class member (`class_unit`:
members/<class>/<member>/, one manifest entry) or a class-conditional member (`conditional_unit`:
members/_conditional/<member>/, one entry per class with the class index as its ``condition``, so that
synthesis, curves and the audit treat it like K per-class members).

``pack=True``: the units are one pack task; a packable family trains them as one packed model
(raygan.gan.pack), the others (and recursive training) one by one; every entry says ``pack_size``.
``pack=False``: each unit trains alone on its own modules (train_gan), with recursive training when
train.recursive_rounds > 0. Divergence: see raygan.ensemble.members; collapse (ensemble.on_collapse):
raygan.ensemble.collapse, checked on every trained per-class member before its folder is written.

Privacy (privacy.epsilon set): each per-class unit carries its member's DP-SGD settings from the run's
plan (raygan.privacy.accountant.plan_privacy) and, under privacy.partition=disjoint, only its own part
of the class's records; it trains alone (DP members do not pack), and the local ensemble ends by
writing the run's privacy ledger (raygan.privacy.ledger).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch

from raygan import seeds
from raygan.config import Config
from raygan.data import RealDataset
from raygan.ensemble.collapse import MemberCollapsedError, apply_verdict, judge
from raygan.ensemble.members import (
    CONDITIONAL_DIR,
    SampleGrid,
    check_classes,
    class_grid,
    conditional_grid,
    conditional_heads,
    finished,
    member_grid,
    record_trained,
    with_retries,
    write_member,
)
from raygan.gan.models import CONDITIONAL, UNPACKABLE
from raygan.gan.pack import PackMember, train_pack
from raygan.gan.parallel import DataParallel
from raygan.gan.train import GANDivergedError, resolve_device, train_gan
from raygan.privacy.accountant import member_data, plan_privacy
from raygan.privacy.dpsgd import MemberPrivacy
from raygan.privacy.ledger import write_ledger
from raygan.progress import track
from raygan.runs import RunFolder
from raygan.synthesis.generate import generate

logger = logging.getLogger(__name__)


@dataclass
class Unit:
    """One model to train (or resume) into one member folder."""
    folder: Path
    data: torch.Tensor
    heads: list[tuple[dict, dict]]          # per manifest entry it makes: (who it is, what only it has)
    seed_of: Callable[[int], int]           # attempt (0 first) -> seed
    sample_grid: Callable[[int], SampleGrid]  # seed -> what writes its samples.png
    labels: Optional[torch.Tensor] = None   # conditional: (N,) class indices, and n_classes
    n_classes: Optional[int] = None
    data_weights: Optional[torch.Tensor] = None
    privacy: Optional[MemberPrivacy] = None  # privacy on: its DP-SGD settings (it trains alone)


def class_unit(cfg: Config, run: RunFolder, data: torch.Tensor, *, class_name: str, class_index: int,
               member: int, data_weights: Optional[torch.Tensor] = None,
               privacy: Optional[MemberPrivacy] = None) -> Unit:
    """Member ``member`` of class ``class_name``: members/<class>/<member>/; with ``privacy`` (its
    settings in the run's plan) on the records privacy.partition gives it."""
    folder = run.member_dir(class_name, member)
    if privacy is not None:
        data = member_data(cfg, data, class_index=class_index, member=member)
    return Unit(folder=folder, data=data, heads=[({"class": class_name, "class_index": class_index,
                                                   "member": member}, {})],
                seed_of=lambda a: seeds.member_retry(cfg.train.seed, class_index, member, a),
                sample_grid=lambda seed: class_grid(data, cfg, folder, seed, class_name, member),
                data_weights=data_weights, privacy=privacy)


def conditional_unit(cfg: Config, run: RunFolder, data: torch.Tensor, labels: torch.Tensor,
                     classes: list[str], *, member: int) -> Unit:
    """Conditional member ``member`` (seed 003's ccgan, or biggan): one model for every class."""
    folder = run.member_dir(CONDITIONAL_DIR, member)
    return Unit(folder=folder, data=data, heads=conditional_heads(classes, member),
                seed_of=lambda a: seeds.conditional_member_retry(cfg.train.seed, member, a),
                sample_grid=lambda seed: conditional_grid(folder, classes, cfg, member, seed),
                labels=labels, n_classes=len(classes))


LABELS = "_labels"  # the key of a conditional unit's labels among a task's named tensors


def head_unit(cfg: Config, run: RunFolder, head: list, tensors: dict, weights, classes: Optional[list[str]],
              privacy: Optional[dict] = None) -> Unit:
    """The unit a Ray task's ``head`` (class index, class name, member) names, on the task's named
    ``tensors`` (a class's data by its name; CONDITIONAL_DIR and LABELS: the training split and its
    labels, for a conditional member); ``privacy``: its MemberPrivacy as a dict."""
    k, name, t = head
    if name == CONDITIONAL_DIR:
        return conditional_unit(cfg, run, tensors[CONDITIONAL_DIR], tensors[LABELS], classes, member=t)
    return class_unit(cfg, run, tensors[name], class_name=name, class_index=k, member=t, data_weights=weights,
                      privacy=None if privacy is None else MemberPrivacy.from_dict(privacy))


def _device(cfg: Config, device: Optional[torch.device]) -> torch.device:
    """The training device (train.num_threads applied to this process's torch first)."""
    if cfg.train.num_threads is not None:
        torch.set_num_threads(cfg.train.num_threads)
    return device or resolve_device(cfg.train.device)


def _train_rounds(unit: Unit, cfg: Config, seed: int, *, device, on_log=None, group=None):
    """train_gan, or seed 002's recursive training when train.recursive_rounds > 0.

    Recursive training (seed 002, Experiment 3): round 0 trains on the real set s_0; after round i the
    round's generator draws recursive_fraction * s_i samples, which join the training set of round
    i + 1, and a GAN is trained anew on it. The member is the last round's GAN; every round keeps its
    own checkpoint (round<i>.pt) so a resumed member skips finished rounds.
    """
    rounds, data = cfg.train.recursive_rounds, unit.data
    sizes = [int(data.shape[0])]
    for r in range(rounds + 1):
        last = r == rounds
        ckpt = unit.folder / ("checkpoint.pt" if last else f"round{r}.pt")
        kwargs = {"labels": unit.labels, "n_classes": unit.n_classes} if unit.labels is not None else {}
        result = train_gan(data, gan=cfg.gan, train=cfg.train,
                           seed=seed if r == 0 else seeds.recursive_round(seed, r),
                           checkpoint_path=ckpt, data_weights=unit.data_weights if r == 0 else None,
                           device=device, on_log=on_log if last else None, privacy=unit.privacy, group=group,
                           **kwargs)
        if last:
            return result, sizes
        extra = max(1, int(round(cfg.train.recursive_fraction * data.shape[0])))
        synthetic = generate(result.generator, extra, seed=seeds.recursive_samples(seed, r), device=device)
        data = torch.cat([data.cpu(), synthetic.to(data.dtype)])
        sizes.append(int(data.shape[0]))
        logger.info(f"recursive round {r}: trained on {sizes[-2]}, +{extra} synthetic -> {sizes[-1]}")
    raise AssertionError("unreachable")


def _verdict(unit: Unit, generator, cfg: Config, seed: int, device) -> dict:
    """raygan.ensemble.collapse.judge on a unit's real images (a conditional member's class by class;
    one trained under privacy is not measured)."""
    real = None if unit.privacy is not None else unit.data
    who = unit.heads[0][0]
    return judge(generator, real, cfg, seed=seed, device=device, labels=unit.labels,
                 who=f"class {who['class']} member {who['member']}" if unit.labels is None
                 else f"conditional member {who['member']}")


def _alone(unit: Unit, cfg: Config, run: RunFolder, *, device: Optional[torch.device], on_log,
           group: Optional[DataParallel] = None) -> list[dict]:
    """One unit on its own modules, retried with its next seeds when it diverges (or, under
    ensemble.on_collapse=retrain, collapses); with ``group``, as one process of its data-parallel group."""
    def train(seed: int) -> list[dict]:
        on = _device(cfg, device)
        result, sizes = _train_rounds(unit, cfg, seed, device=on, on_log=on_log, group=group)
        verdict = _verdict(unit, result.generator, cfg, seed, on)
        made = write_member(unit.folder, result, cfg, run, seed=seed, shape=tuple(unit.data.shape[1:]),
                            heads=unit.heads, sample_grid=unit.sample_grid(seed), device=on, sizes=sizes)
        return apply_verdict(made, verdict)

    [(made, seed, failed)] = with_retries([unit.folder], cfg, train=lambda pairs: [train(pairs[0][1])],
                                          seed_of=lambda _, a: unit.seed_of(a))
    return finished(made, unit.heads, seed, failed, device or cfg.train.device)


def _packed(units: list[Unit], cfg: Config, run: RunFolder, device: torch.device) -> list[list[dict]]:
    """The units as one packed model (raygan.gan.pack); the diverged ones again, in a pack of their own,
    with their next seeds."""
    verdicts = {}

    def judged(i: int, seed: int, result):
        """A pack member's result, or MemberCollapsedError (on_collapse=retrain) for a collapsed one."""
        if isinstance(result, GANDivergedError):
            return result
        try:
            verdicts[i] = _verdict(units[i], result.generator, cfg, seed, device)
        except MemberCollapsedError as err:
            return err
        return result

    trained = with_retries(
        [u.folder for u in units], cfg, seed_of=lambda i, a: units[i].seed_of(a),
        train=lambda pairs: [judged(i, seed, r) for (i, seed), r in zip(pairs, train_pack([PackMember(
            data=units[i].data, seed=seed, checkpoint_path=units[i].folder / "checkpoint.pt",
            data_weights=units[i].data_weights, labels=units[i].labels, n_classes=units[i].n_classes)
            for i, seed in pairs], gan=cfg.gan, train=cfg.train, device=device))])
    out = []
    for i, (u, (result, seed, failed)) in enumerate(zip(units, trained)):
        made = None if result is None else apply_verdict(write_member(
            u.folder, result, cfg, run, seed=seed, shape=tuple(u.data.shape[1:]), heads=u.heads,
            sample_grid=u.sample_grid(seed), device=device), verdicts[i])
        out.append(finished(made, u.heads, seed, failed, device))
    return out


def train_units(units: list[Unit], cfg: Config, run: RunFolder, *, pack: bool,
                device: Optional[torch.device] = None,
                on_log: Optional[Callable[[int, float, float], None]] = None,
                group: Optional[DataParallel] = None) -> list[list[dict]]:
    """Train (or resume) ``units``; per unit, in order, the manifest entries it makes (status
    "diverged", with its attempts and no generator, when every attempt diverged). A diverged unit
    does not stop the others. ``on_log(step, d_loss, g_loss)`` follows a unit trained alone.
    ``group`` (pack=False): this process is one of each unit's data-parallel group
    (cluster.workers_per_member > 1; raygan.gan.parallel): every process of the group calls this alike."""
    if not pack:
        return [_alone(u, cfg, run, device=device, on_log=on_log, group=group) for u in units]
    device = _device(cfg, device)
    if cfg.gan.family in UNPACKABLE or cfg.train.recursive_rounds > 0 or any(u.privacy for u in units):
        made = [_alone(u, cfg, run, device=device, on_log=on_log) for u in units]
        return [[{**e, "pack_size": 1} for e in entries] for entries in made]
    return [[{**e, "pack_size": len(units)} for e in entries] for entries in _packed(units, cfg, run, device)]


def independent_units(cfg: Config, dataset: RealDataset, run: RunFolder) -> list[tuple[str, list[tuple[str, int]], Unit]]:
    """Every model of the K x T independent ensemble: (what to call it in the log, the manifest
    (class, member) keys it completes, its unit). A conditional member covers every class."""
    if cfg.gan.family in CONDITIONAL:
        data, labels = dataset.train_split()
        return [(f"conditional member {t}", [(name, t) for name in dataset.classes],
                 conditional_unit(cfg, run, data, labels, dataset.classes, member=t))
                for t in range(cfg.ensemble.members)]
    plan = plan_privacy(cfg, dataset.train_sizes(), dataset.groups)
    return [(f"class {name} member {t}", [(name, t)],
             class_unit(cfg, run, dataset.train[name], class_name=name, class_index=k, member=t,
                        privacy=plan and plan.member(name, t)))
            for k, name, t in member_grid(dataset, cfg.ensemble.members)]


def train_independent(cfg: Config, dataset: RealDataset, run: RunFolder) -> list[dict]:
    """Train the K x T independent ensemble in this process, one model at a time, skipping members
    already complete (the Ray layer runs the same units as tasks)."""
    entries = []
    units = independent_units(cfg, dataset, run)
    for i, (label, keys, unit) in enumerate(track(units, "members", unit="member"), start=1):
        done = [run.member_entry(name, t) for name, t in keys]
        if all(done):
            logger.info(f"[{i}/{len(units)}] {label}: complete, skipped")
            entries += done
            continue
        t0 = time.perf_counter()
        [made] = train_units([unit], cfg, run, pack=False)
        new = record_trained(run, made)
        entries += new
        logger.info(f"[{i}/{len(units)}] {label}: " + (f"{new[0]['steps']} steps in "
                    f"{time.perf_counter() - t0:.1f}s, d_loss {new[0]['final_d_loss']:.3f}, "
                    f"g_loss {new[0]['final_g_loss']:.3f}" if new else "diverged, given up"))
    if (plan := plan_privacy(cfg, dataset.train_sizes(), dataset.groups)) is not None:
        write_ledger(cfg, plan, run, dataset.classes)
    check_classes(run, dataset.classes, cfg)
    return entries
