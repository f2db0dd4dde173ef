"""`raygan bench pack`: P members one after another through `train_gan` against the same P members as
one vectorised pack through `train_pack` (raygan.gan.pack): the same data, seeds, steps and batch, in
one process on one device with the same torch threads, in alternating repeats; the median
member-steps per second of each arm and their ratio (pack / one after another).

The default member is configs/demo.yaml's, DCGAN-8 (width 32, z_dim 32) at batch 32, on scikit-learn's
digits: member i trains on class i mod 10, so the members' data sizes differ (122-128 images). Other
image sizes and families train on random stand-in data whose size differs from member to member.
``--sweep`` runs P = 1, 2, 4, ..., 64 while the next P is projected to fit in ``--budget`` seconds and
names the P where the ratio saturates (the first P within 10% of the best ratio).
"""
from __future__ import annotations

import contextlib
import logging
import statistics
import time
from dataclasses import dataclass
from datetime import date
from typing import Optional

import torch

from raygan.config import ConfigError, GANConfig, TrainConfig
from raygan.gan.models import CONDITIONAL, GAN_FAMILIES, UNPACKABLE
from raygan.gan.train import resolve_device, train_gan
from raygan.tools.bench_common import device_name

log = logging.getLogger(__name__)

SWEEP = (1, 2, 4, 8, 16, 32, 64)
SATURATION = 0.9                  # the ratio saturates at the first P within 10% of the best
DEFAULT_MEMBERS, DEFAULT_THREADS, DEFAULT_IMAGE_SIZE, DEFAULT_BUDGET_S = 30, 1, 8, 600.0
ARMS = ("one after another (`train_gan`)", "one pack (`train_pack`)")


@dataclass
class Member:
    """One member's inputs, shared by both arms (a PackMember for the pack arm)."""
    data: torch.Tensor
    seed: int
    labels: Optional[torch.Tensor] = None
    n_classes: Optional[int] = None


@dataclass(frozen=True)
class Setting:
    gan: GANConfig
    batch: int
    shape: tuple              # one sample's shape
    digits: bool              # members train on digits classes; else on random stand-in data
    n_data: int = 125         # samples of the first random member; later members have fewer

    def describe(self) -> str:
        g = self.gan
        if g.family == "mlp2d":
            what = f"mlp2d (the grid G/D, z_dim {g.z_dim})"
        else:
            what = f"{g.family}-{self.shape[-1]} (width {g.width}, z_dim {g.z_dim}" + \
                   (f", {g.g_norm} norm in G)" if g.family in ("dcgan", "ccgan") else ")")
        data = ("scikit-learn's digits (member i: class i mod 10; all 10 classes with labels for a "
                "conditional member)" if self.digits else
                f"random {self.shape} stand-in data ({self.n_data} samples for member 0, fewer for "
                "later ones)")
        return f"{what}, batch {self.batch}, on {data}"


def make_setting(family: str, image_size: int = DEFAULT_IMAGE_SIZE, *, width: int = 32,
                 z_dim: int = 32, batch: int = 32, channels: int = 1, n_data: int = 125,
                 g_norm: str = "batch") -> Setting:
    """The demo member by default; other families, sizes and widths on request."""
    if family not in GAN_FAMILIES:
        raise ConfigError(f"--family {family}: not a GAN family ({', '.join(GAN_FAMILIES)})")
    if family == "mlp2d":
        return Setting(GANConfig(family="mlp2d", z_dim=2), 100, (2,), False, max(n_data, 400))
    gan = GANConfig(family=family, width=width, z_dim=z_dim, g_norm=g_norm,
                    pg_start_size=min(4, image_size))
    digits = image_size == 8 and channels == 1
    return Setting(gan, batch, (channels, image_size, image_size), digits, n_data)


def random_data(setting: Setting, i: int, device: torch.device) -> torch.Tensor:
    n = setting.n_data - (13 * i) % (setting.n_data // 4 + 1)  # sizes differ from member to member
    rng = torch.Generator().manual_seed(1000 + i)
    if setting.gan.family == "mlp2d":
        from raygan.data.grid2d import sample_grid
        return sample_grid(n, 0.05, seed=i).to(device)
    return (torch.rand((n, *setting.shape), generator=rng) * 2 - 1).to(device)


def make_members(setting: Setting, count: int, device: torch.device) -> list[Member]:
    """``count`` members with seeds 0..count-1, their data already on ``device``."""
    conditional = setting.gan.family in CONDITIONAL
    if setting.digits:
        from raygan.config import DataConfig
        from raygan.data import load_dataset

        real = load_dataset(DataConfig(name="digits"))
        if conditional:
            x, y = (t.to(device) for t in real.train_split())
            return [Member(x, i, y, len(real.classes)) for i in range(count)]
        per_class = [real.train[name].to(device) for name in real.classes]
        return [Member(per_class[i % len(per_class)], i) for i in range(count)]
    members = []
    for i in range(count):
        data = random_data(setting, i, device)
        labels = (torch.arange(len(data), device=device) % 2) if conditional else None
        members.append(Member(data, i, labels, 2 if conditional else None))
    return members


def train_config(steps: int, batch: int, **levers) -> TrainConfig:
    """The benchmark's training settings; ``levers``: train.precision / channels_last / compile /
    cuda_graphs (raygan.gan.levers)."""
    return TrainConfig(steps=steps, batch_size=batch, log_every=min(100, steps), checkpoint_every=steps,
                       **levers)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_sequential(members: list[Member], gan: GANConfig, train: TrainConfig, device: torch.device
                   ) -> tuple[float, list]:
    """Wall seconds (model building included) of every member through train_gan in turn, and the
    TrainResults."""
    _sync(device)
    t0 = time.perf_counter()
    results = [train_gan(m.data, gan=gan, train=train, seed=m.seed, device=device, labels=m.labels,
                         n_classes=m.n_classes) for m in members]
    _sync(device)
    return time.perf_counter() - t0, results


def run_pack(members: list[Member], gan: GANConfig, train: TrainConfig, device: torch.device
             ) -> tuple[float, list]:
    """Wall seconds (model building included) of all members as one pack, and train_pack's results."""
    from raygan.gan.pack import PackMember, train_pack

    packed = [PackMember(data=m.data, seed=m.seed, labels=m.labels, n_classes=m.n_classes)
              for m in members]
    _sync(device)
    t0 = time.perf_counter()
    results = train_pack(packed, gan=gan, train=train, device=device)
    _sync(device)
    seconds = time.perf_counter() - t0
    diverged = sum(isinstance(r, Exception) for r in results)
    if diverged:
        log.warning("bench pack: %d of %d packed members diverged", diverged, len(results))
    return seconds, results


def compare(members: list[Member], setting: Setting, steps: int, repeats: int,
            device: torch.device) -> tuple[list[float], list[float]]:
    """Member-steps/s of the two arms: one warm-up each, then alternating repeats."""
    warm = train_config(max(2, min(10, steps)), setting.batch)
    run_sequential(members[:1], setting.gan, warm, device)
    run_pack(members, setting.gan, warm, device)
    train, work = train_config(steps, setting.batch), len(members) * steps
    seq: list[float] = []
    pack: list[float] = []
    arms = [(run_sequential, seq), (run_pack, pack)]
    for r in range(repeats):
        # Alternate which arm goes first so drift in machine load hits both alike.
        for fn, out in (arms if r % 2 == 0 else arms[::-1]):
            out.append(work / fn(members, setting.gan, train, device)[0])
    return seq, pack


@contextlib.contextmanager
def torch_threads(threads: Optional[int]):
    """torch.set_num_threads for the block (None keeps torch's), restored after."""
    before = torch.get_num_threads()
    if threads is not None:
        if threads < 1:
            raise ConfigError(f"--threads {threads}: at least one thread")
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def measure(setting: Setting, members: int, steps: int, repeats: int, device: torch.device) -> tuple:
    """(P, one-after-another rates, pack rates, wall seconds of the measurement)."""
    t0 = time.perf_counter()
    seq, pack = compare(make_members(setting, members, device), setting, steps, repeats, device)
    return members, seq, pack, time.perf_counter() - t0


def sweep(setting: Setting, steps: int, repeats: int, device: torch.device, budget_s: float,
          sizes: tuple = SWEEP) -> tuple[list[tuple], Optional[str]]:
    """measure() for each P in turn while the next one is projected to fit in the budget (a P's time
    taken as linear in P, which the one-after-another arm is); the rows and why it stopped, if early."""
    rows: list[tuple] = []
    spent = 0.0
    for k, p in enumerate(sizes):
        if rows:
            projected = rows[-1][3] * p / rows[-1][0]
            if spent + projected > budget_s:
                return rows, (f"P = {', '.join(map(str, sizes[k:]))} not run: P = {p} was projected "
                              f"to take {projected:.0f} s with {spent:.0f} s of the {budget_s:.0f} s "
                              "budget spent")
        rows.append(measure(setting, p, steps, repeats, device))
        spent += rows[-1][3]
        log.info("bench pack: P = %d done (%.0f s)", p, rows[-1][3])
    return rows, None


def ratio(row: tuple) -> float:
    return statistics.median(row[2]) / statistics.median(row[1])


def _first_near_best(rows: list[tuple], key) -> tuple[tuple, tuple]:
    best = max(rows, key=key)
    return next(r for r in rows if key(r) >= SATURATION * key(best)), best


def saturation(rows: list[tuple]) -> str:
    """Where the ratio saturates, and where the pack arm's own member-steps/s does (the other arm is
    flat in P, so where the two differ, the difference is that arm's noise)."""
    first, best = _first_near_best(rows, ratio)
    text = (f"The ratio saturates at P = {first[0]} (the first P within {1 - SATURATION:.0%} of the "
            f"best ratio, {ratio(best):.2f} at P = {best[0]})")
    if first is rows[-1] and len(rows) > 1:
        text += f"; it was still rising at the largest P measured, {rows[-1][0]}"
    pack_first, pack_best = _first_near_best(rows, lambda r: statistics.median(r[2]))
    return text + (f". The pack's own member-steps/s saturates at P = {pack_first[0]} (best "
                   f"{statistics.median(pack_best[2]):.1f} at P = {pack_best[0]}).")


def _rates(xs: list[float]) -> str:
    return ", ".join(f"{x:.1f}" for x in xs)


def pack_table(rows: list[tuple]) -> list[str]:
    lines = [f"| members P | {ARMS[0]}: member-steps/s (median) | all repeats | {ARMS[1]}: "
             "member-steps/s (median) | all repeats | ratio pack / one after another |",
             "|---|---|---|---|---|---|"]
    for p, seq, pack, _ in rows:
        lines.append(f"| {p} | {statistics.median(seq):.1f} | {_rates(seq)} | "
                     f"{statistics.median(pack):.1f} | {_rates(pack)} | **{ratio((p, seq, pack)):.2f}** |")
    return lines


def bench_pack(args) -> str:
    device = resolve_device(args.device)
    family, size = args.family or "dcgan", args.image_size or DEFAULT_IMAGE_SIZE
    if family in UNPACKABLE:
        raise ConfigError(f"bench pack --family {family}: train_pack does not pack this family (its packs "
                          "hold one member, raygan.gan.models.UNPACKABLE); use dcgan, ccgan, fc or mlp2d")
    setting = make_setting(family, size)
    budget = args.budget or DEFAULT_BUDGET_S
    with torch_threads(args.threads or DEFAULT_THREADS) as threads:
        if args.sweep:
            rows, stopped = sweep(setting, args.steps, args.repeats, device, budget)
        else:
            rows, stopped = [measure(setting, args.members or DEFAULT_MEMBERS, args.steps,
                                     args.repeats, device)], None
        where = device_name(device)
    members = "--sweep" if args.sweep else f"--members {rows[0][0]}"
    notes = [saturation(rows)] if args.sweep else []
    if stopped:
        notes.append(f"Capped by --budget {budget:.0f}: {stopped}.")
    return "\n".join([
        f"### pack ({date.today().isoformat()}, {where})",
        "",
        f"Command: `raygan bench pack {members} --family {family} --image-size {size} "
        f"--steps {args.steps} --repeats {args.repeats} --threads {threads} --device {args.device}`",
        f"Setting: {setting.describe()}; {args.repeats} alternating repeats of {args.steps} steps per "
        "member, medians. Each arm's time is the wall time of its calls, model building included.",
        f"Threads and devices: both arms run one after the other in the same process on {device.type} "
        f"with the same {threads} torch thread{'s' if threads != 1 else ''} "
        "(torch.set_num_threads).",
        "",
        *pack_table(rows),
        "",
        *notes,
        "",
    ])
