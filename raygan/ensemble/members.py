"""Ensembles of GANs: one member per (class, member index), member seeds, and the mixture of generators.

Seed 000 Section 2: the ensemble of T GANs is the mixture G_T = sum_t p_t G_t, trained separately per
class k; a synthetic set of N_g samples holds p_t N_g samples from member t (N_g = N real by default).
"""
from __future__ import annotations

import logging
import csv
import io
import time
from typing import Callable, Optional
import numpy as np
import torch
from raygan.config import Config
from raygan.data import RealDataset
from raygan.runs import RunFolder, atomic_write_text, sha256_file
from raygan.synthesis.generate import generate
from raygan.synthesis.grids import save_sample_grid
from raygan.gan.train import load_generator, resolve_device, save_generator, train_gan

logger = logging.getLogger(__name__)


def member_seed(base_seed: int, class_index: int, member: int) -> int:
    """An independent, reproducible seed per (class, member)."""
    return int(np.random.SeedSequence([base_seed, class_index, member]).generate_state(1)[0])


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
                           seed=seed if r == 0 else member_seed(seed % (2 ** 31), 1_000 + r, 0),
                           checkpoint_path=ckpt, data_weights=data_weights if r == 0 else None,
                           device=device, on_log=on_log if last else None, **kwargs)
        if last:
            return result, sizes
        extra = max(1, int(round(cfg.train.recursive_fraction * data.shape[0])))
        synthetic = generate(result.generator, extra, seed=member_seed(seed % (2 ** 31), 2_000 + r, 0),
                             device=device)
        data = torch.cat([data.cpu(), synthetic.to(data.dtype)])
        sizes.append(int(data.shape[0]))
        logger.info(f"recursive round {r}: trained on {sizes[-2]}, +{extra} synthetic -> {sizes[-1]}")
    raise AssertionError("unreachable")


def train_member(data: torch.Tensor, cfg: Config, run: RunFolder, *, class_name: str,
                 class_index: int, member: int, data_weights: Optional[torch.Tensor] = None,
                 device: Optional[torch.device] = None,
                 on_log: Optional[Callable[[int, float, float], None]] = None) -> dict:
    """Train (or resume) one member into members/<class>/<member>/ and return its manifest entry."""
    if cfg.train.num_threads is not None:
        torch.set_num_threads(cfg.train.num_threads)
    device = device or resolve_device(cfg.train.device)
    folder = run.member_dir(class_name, member)
    seed = member_seed(cfg.train.seed, class_index, member)
    result, sizes = _train_rounds(data, cfg, folder, seed, data_weights=data_weights, device=device,
                                  on_log=on_log)
    sample_shape = tuple(data.shape[1:])
    save_generator(result.generator, cfg.gan, sample_shape, folder / "generator.pt")
    _write_losses(result.losses, folder / "losses.csv")
    n_show = cfg.output.sample_grid if data.dim() > 2 else 2000
    samples = generate(result.generator, n_show, seed=seed, device=device)
    real = data[:2000].cpu() if data.dim() == 2 else None
    save_sample_grid(samples, folder / "samples.png", real=real,
                     title=f"class {class_name}, member {member}")
    tail = result.losses[-max(1, cfg.train.log_every):].mean(0)
    entry = {"class": class_name, "class_index": class_index, "member": member, "seed": seed,
             "status": "complete", "steps": result.steps, "resumed_from": result.resumed_from,
             "seconds": round(result.seconds, 3), "final_d_loss": float(tail[0]),
             "final_g_loss": float(tail[1]),
             "generator": str((folder / "generator.pt").relative_to(run.path)),
             "generator_sha256": sha256_file(folder / "generator.pt"), "device": str(device)}
    if cfg.train.recursive_rounds:
        entry["recursive_train_sizes"] = sizes
    return entry


CONDITIONAL_DIR = "_conditional"


def conditional_data(dataset: RealDataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All classes' training images with their class indices: what one conditional member sees."""
    xs = [dataset.train[name] for name in dataset.classes]
    ys = [torch.full((len(x),), k, dtype=torch.int64) for k, x in enumerate(xs)]
    return torch.cat(xs), torch.cat(ys)


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
    if cfg.train.num_threads is not None:
        torch.set_num_threads(cfg.train.num_threads)
    device = device or resolve_device(cfg.train.device)
    folder = run.member_dir(CONDITIONAL_DIR, member)
    seed = member_seed(cfg.train.seed, 1_000_000, member)
    result, _ = _train_rounds(data, cfg, folder, seed, labels=labels, n_classes=len(classes),
                              device=device, on_log=on_log)
    sample_shape = tuple(data.shape[1:])
    save_generator(result.generator, cfg.gan, sample_shape, folder / "generator.pt")
    _write_losses(result.losses, folder / "losses.csv")
    per_class = max(1, cfg.output.sample_grid // len(classes))
    grid = torch.cat([generate(load_generator(folder / "generator.pt", device=device, condition=k),
                               per_class, seed=seed + k, device=device) for k in range(len(classes))])
    save_sample_grid(grid, folder / "samples.png", title=f"conditional member {member}: "
                     f"{per_class} per class, classes in order")
    tail = result.losses[-max(1, cfg.train.log_every):].mean(0)
    generator = str((folder / "generator.pt").relative_to(run.path))
    digest = sha256_file(folder / "generator.pt")
    return [{"class": name, "class_index": k, "member": member, "seed": seed, "status": "complete",
             "steps": result.steps, "resumed_from": result.resumed_from,
             "seconds": round(result.seconds, 3), "final_d_loss": float(tail[0]),
             "final_g_loss": float(tail[1]), "generator": generator, "generator_sha256": digest,
             "condition": k, "conditional": True, "device": str(device)}
            for k, name in enumerate(classes)]


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


def train_independent(cfg: Config, dataset: RealDataset, run: RunFolder) -> list[dict]:
    """Train the K x T independent ensemble in this process, skipping members already complete.

    The Ray layer (raygan.cluster) runs the same `train_member` calls as tasks instead. A conditional
    family (gan.family=ccgan) trains T members, each covering every class.
    """
    entries = []
    if cfg.gan.family == "ccgan":
        data, labels = conditional_data(dataset)
        for t in range(cfg.ensemble.members):
            done = [run.member_entry(name, t) for name in dataset.classes]
            if all(done):
                logger.info(f"[{t + 1}/{cfg.ensemble.members}] conditional member {t}: complete, skipped")
                entries += done
                continue
            t0 = time.perf_counter()
            new = train_conditional_member(data, labels, dataset.classes, cfg, run, member=t)
            run.record_member(*new)
            entries += new
            logger.info(f"[{t + 1}/{cfg.ensemble.members}] conditional member {t}: {new[0]['steps']} steps in "
                f"{time.perf_counter() - t0:.1f}s, d_loss {new[0]['final_d_loss']:.3f}")
        return entries
    grid = member_grid(dataset, cfg.ensemble.members)
    for i, (k, name, t) in enumerate(grid, start=1):
        done = run.member_entry(name, t)
        if done is not None:
            logger.info(f"[{i}/{len(grid)}] class {name} member {t}: complete, skipped")
            entries.append(done)
            continue
        t0 = time.perf_counter()
        entry = train_member(dataset.train[name], cfg, run, class_name=name, class_index=k, member=t)
        run.record_member(entry)
        entries.append(entry)
        logger.info(f"[{i}/{len(grid)}] class {name} member {t}: {entry['steps']} steps in "
            f"{time.perf_counter() - t0:.1f}s, d_loss {entry['final_d_loss']:.3f}, "
            f"g_loss {entry['final_g_loss']:.3f}")
    return entries

