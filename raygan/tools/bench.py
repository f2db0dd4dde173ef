"""Benchmarks (`raygan bench NAME`): each measures raygan against a reference in the same run.

train-step: steps per second of `train_gan` against a plain hand-written PyTorch loop with the same
G, D, batch size and Adam optimisers, in alternating repeats; the ratio should be >= 0.95.
dcgan: the same comparison for one DCGAN-32 member at batch 64, with the time that seed 000's 50K
steps would take at the measured rate beside its "around 70-75 min" per class (Supplement B).
pack: P members one after another against the same P as one vectorised pack (raygan.tools.bench_pack).
gpu: every GPU check in one command and one table, without Ray or MLflow (raygan.tools.bench_gpu).
drift: a packed member's drift from its solo run against the solo run's own drift under another valid
float32 kernel (raygan.tools.bench_drift).
eval: an evaluation's downstream classifiers one after another against one pack (raygan.tools.bench_eval).
privacy: the demo member solo, solo under DP-SGD (d_steps 1 and k) and packed (raygan.tools.bench_privacy).
"""
from __future__ import annotations

import statistics
import time
from datetime import date

import torch
import torch.nn.functional as F

from raygan.config import ConfigError, GANConfig, TrainConfig
from raygan.gan.models import build_gan
from raygan.gan.train import resolve_device, train_gan
from raygan.tools.bench_common import PAPER_DCGAN_MINUTES, PAPER_DCGAN_STEPS, device_name


def _plain_loop(data: torch.Tensor, gan: GANConfig, batch: int, steps: int, seed: int,
                device: torch.device) -> float:
    """The reference: the shortest correct GAN loop (pytorch/examples dcgan style); returns steps/s."""
    torch.manual_seed(seed)
    G, D = build_gan(gan, tuple(data.shape[1:]))
    G, D = G.to(device), D.to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=gan.lr_g, betas=(gan.beta1, gan.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=gan.lr_d, betas=(gan.beta1, gan.beta2))
    n = data.shape[0]
    perm, pos = torch.randperm(n, device=device), 0
    t0 = time.perf_counter()
    for _ in range(steps):
        if pos + batch > n:
            perm, pos = torch.randperm(n, device=device), 0
        real = data[perm[pos:pos + batch]]
        pos += batch
        fake = G(torch.randn(batch, G.z_dim, device=device))
        d_loss = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-D(fake)).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps / (time.perf_counter() - t0)


def _raygan_loop(data, gan, batch, steps, seed, device) -> float:
    train = TrainConfig(steps=steps, batch_size=batch, log_every=100, checkpoint_every=steps)
    result = train_gan(data, gan=gan, train=train, seed=seed, device=device)
    return steps / result.seconds


def _compare(data: torch.Tensor, gan: GANConfig, batch: int, steps: int, repeats: int,
             device: torch.device) -> tuple[list[float], list[float]]:
    """steps/s of the plain loop and of train_gan, one warm-up each, then alternating repeats."""
    warm = max(10, steps // 10)
    _plain_loop(data, gan, batch, warm, 0, device)
    _raygan_loop(data, gan, batch, warm, 0, device)
    plain, ours = [], []
    for r in range(repeats):
        # Alternate which loop goes first so drift in machine load hits both alike.
        order = [(_plain_loop, plain), (_raygan_loop, ours)]
        for fn, out in (order if r % 2 == 0 else order[::-1]):
            out.append(fn(data, gan, batch, steps, r, device))
    return plain, ours


def _table(plain: list[float], ours: list[float]) -> list[str]:
    return ["| loop | steps/s (median) | all repeats |",
            "|---|---|---|",
            f"| plain hand-written PyTorch loop | {statistics.median(plain):.1f} | "
            f"{', '.join(f'{x:.1f}' for x in plain)} |",
            f"| raygan `train_gan` | {statistics.median(ours):.1f} | "
            f"{', '.join(f'{x:.1f}' for x in ours)} |"]


DCGAN32 = GANConfig(family="dcgan", z_dim=100, width=64)
DCGAN32_SETTING = "DCGAN-32 (width 64), batch 64, random stand-in images"


def _dcgan32_data(device: torch.device) -> torch.Tensor:
    return (torch.rand(5_000, 3, 32, 32) * 2 - 1).to(device)


def bench_train_step(args) -> str:
    device = resolve_device(args.device)
    family = args.family or "mlp2d"
    if family not in ("mlp2d", "dcgan"):
        raise ConfigError(f"bench train-step --family {family}: mlp2d or dcgan")
    if family == "mlp2d":
        from raygan.data.grid2d import sample_grid
        gan, batch = GANConfig(family="mlp2d", z_dim=2), 100
        data = sample_grid(100_000, 0.05, seed=0).to(device)
        setting = "grid G/D of Supplement A, batch 100"
    else:
        gan, batch, data, setting = DCGAN32, 64, _dcgan32_data(device), DCGAN32_SETTING
    plain, ours = _compare(data, gan, batch, args.steps, args.repeats, device)
    ratio = statistics.median(ours) / statistics.median(plain)
    text = "\n".join([
        f"### train-step ({date.today().isoformat()}, {device_name(device)})",
        "",
        f"Command: `raygan bench train-step --family {family} --steps {args.steps} "
        f"--repeats {args.repeats} --device {args.device}`",
        f"Setting: {setting}; {args.repeats} alternating repeats of {args.steps} steps, medians.",
        "",
        *_table(plain, ours),
        "",
        f"Ratio raygan / plain: **{ratio:.3f}** (target >= 0.95).",
        "",
    ])
    return text


def bench_dcgan(args) -> str:
    """One DCGAN-32 member (batch 64) through train_gan against the plain loop, and seed 000's 50K
    steps projected at the measured rates."""
    device = resolve_device(args.device)
    plain, ours = _compare(_dcgan32_data(device), DCGAN32, 64, args.steps, args.repeats, device)
    p, o = statistics.median(plain), statistics.median(ours)
    lo, hi = PAPER_DCGAN_MINUTES
    return "\n".join([
        f"### dcgan ({date.today().isoformat()}, {device_name(device)})",
        "",
        f"Command: `raygan bench dcgan --steps {args.steps} --repeats {args.repeats} "
        f"--device {args.device}`",
        f"Setting: {DCGAN32_SETTING}, one member; {args.repeats} alternating repeats of {args.steps} "
        "steps, medians.",
        "",
        *_table(plain, ours),
        "",
        f"Ratio raygan / plain: **{o / p:.3f}** (target >= 0.95).",
        "",
        f"| seed 000's {PAPER_DCGAN_STEPS // 1000}K DCGAN steps per class | minutes |",
        "|---|---|",
        f"| raygan `train_gan` at {o:.1f} steps/s | {PAPER_DCGAN_STEPS / o / 60:.1f} |",
        f"| plain loop at {p:.1f} steps/s | {PAPER_DCGAN_STEPS / p / 60:.1f} |",
        f"| seed 000, Supplement B (Titan X / Xp / 1080 Ti, TensorFlow) | {lo}-{hi} |",
        "",
    ])


def bench_ray_scaling(args) -> str:
    from raygan.cluster.bench_scaling import bench_ray_scaling as run

    if args.members is None:
        args.members = 4
    return run(args)


def bench_pack(args) -> str:
    from raygan.tools.bench_pack import bench_pack as run

    return run(args)


def bench_gpu(args) -> str:
    from raygan.tools.bench_gpu import bench_gpu as run

    return run(args)


def bench_drift(args) -> str:
    from raygan.tools.bench_drift import bench_drift as run

    return run(args)


def bench_eval(args) -> str:
    from raygan.tools.bench_eval import bench_eval as run

    return run(args)


def bench_privacy(args) -> str:
    from raygan.tools.bench_privacy import bench_privacy as run

    return run(args)


def _with_output(fn):
    def wrapped(args) -> str:
        text = fn(args)
        if args.output:
            from pathlib import Path
            Path(args.output).parent.mkdir(parents=True, exist_ok=True)
            with open(args.output, "a") as f:
                f.write(text + "\n")
        return text
    return wrapped


BENCHMARKS = {"train-step": _with_output(bench_train_step),
              "dcgan": _with_output(bench_dcgan),
              "ray-scaling": _with_output(bench_ray_scaling),
              "pack": _with_output(bench_pack),
              "gpu": _with_output(bench_gpu),
              "drift": _with_output(bench_drift),
              "eval": _with_output(bench_eval),
              "privacy": _with_output(bench_privacy)}
