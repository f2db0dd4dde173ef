"""Benchmarks (`raygan bench NAME`): each measures raygan against a reference in the same run.

train-step: steps per second of `train_gan` against a plain hand-written PyTorch loop with the same
G, D, batch size and Adam optimisers, in alternating repeats; the ratio should be >= 0.95.
"""
from __future__ import annotations

import platform
import statistics
import time
from datetime import date

import torch
import torch.nn.functional as F

from .config import GANConfig, TrainConfig
from .models import build_gan
from .train import resolve_device, train_gan


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


def bench_train_step(args) -> str:
    device = resolve_device(args.device)
    if args.family == "mlp2d":
        from .data.grid2d import sample_grid
        gan, batch = GANConfig(family="mlp2d", z_dim=2), 100
        data = sample_grid(100_000, 0.05, seed=0).to(device)
        setting = "grid G/D of Supplement A, batch 100"
    else:
        gan, batch = GANConfig(family="dcgan", z_dim=100, width=64), 64
        data = (torch.rand(5_000, 3, 32, 32) * 2 - 1).to(device)
        setting = "DCGAN-32 (width 64), batch 64, random stand-in images"
    warm = max(10, args.steps // 10)
    _plain_loop(data, gan, batch, warm, 0, device)
    _raygan_loop(data, gan, batch, warm, 0, device)
    plain, ours = [], []
    for r in range(args.repeats):
        # Alternate which loop goes first so drift in machine load hits both alike.
        order = [(_plain_loop, plain), (_raygan_loop, ours)]
        for fn, out in (order if r % 2 == 0 else order[::-1]):
            out.append(fn(data, gan, batch, args.steps, r, device))
    p, o = statistics.median(plain), statistics.median(ours)
    ratio = o / p
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"
    text = "\n".join([
        f"### train-step ({date.today().isoformat()}, {dev})",
        "",
        f"Command: `raygan bench train-step --family {args.family} --steps {args.steps} "
        f"--repeats {args.repeats} --device {args.device}`",
        f"Setting: {setting}; {args.repeats} alternating repeats of {args.steps} steps, medians.",
        "",
        "| loop | steps/s (median) | all repeats |",
        "|---|---|---|",
        f"| plain hand-written PyTorch loop | {p:.1f} | {', '.join(f'{x:.1f}' for x in plain)} |",
        f"| raygan `train_gan` | {o:.1f} | {', '.join(f'{x:.1f}' for x in ours)} |",
        "",
        f"Ratio raygan / plain: **{ratio:.3f}** (target >= 0.95).",
        "",
    ])
    return text


def bench_ray_scaling(args) -> str:
    from .cluster.bench_scaling import bench_ray_scaling as run  # Ray only for this one

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
              "ray-scaling": _with_output(bench_ray_scaling)}
