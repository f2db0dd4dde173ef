"""What differential privacy costs per step (issue 26 item 6): member-steps per second of the demo member
(configs/demo.yaml's DCGAN-8, width 32, z_dim 32, batch 32, on a digits class) in three arms, in one
process with the same torch threads, in alternating repeats:

- solo, without privacy (``train_gan``);
- solo, with DP-SGD on D (``train_gan`` with a MemberPrivacy: Poisson batches of expected size 32,
  per-record gradients by torch.func, clipping and noise; raygan.privacy.dpsgd), at privacy.d_steps
  1 and, with ``--d-steps k``, at k;
- P members as one pack without privacy (``train_pack``), per member-step: what DP members give up
  by training solo (why_not_packable).

    raygan bench privacy [--steps 100] [--repeats 3] [--members 8] [--d-steps 3] [--threads 1]

Returns a markdown table (median member-steps/s and each arm's slowdown against solo without privacy).
"""
from __future__ import annotations

import statistics
import time

import torch

from raygan.config import DataConfig, GANConfig
from raygan.data import load_dataset
from raygan.gan.train import train_gan
from raygan.privacy.dpsgd import MemberPrivacy
from raygan.tools.bench_pack import Member, run_pack, train_config

GAN = GANConfig(family="dcgan", width=32, z_dim=32)
BATCH = 32


def _solo(data: torch.Tensor, steps: int, privacy: MemberPrivacy | None) -> float:
    t0 = time.perf_counter()
    train_gan(data, gan=GAN, train=train_config(steps, BATCH), seed=0, device=torch.device("cpu"), privacy=privacy)
    return steps / (time.perf_counter() - t0)


def _pack(members: list[Member], steps: int) -> float:
    seconds, _ = run_pack(members, GAN, train_config(steps, BATCH), torch.device("cpu"))
    return len(members) * steps / seconds


def measure(steps: int, repeats: int, pack: int, d_steps: int) -> dict[str, list[float]]:
    real = load_dataset(DataConfig(name="digits"))
    per_class = [real.train[name] for name in real.classes]
    data = per_class[0]

    def dp(k: int) -> MemberPrivacy:  # noise 1.0: its value does not change the work
        return MemberPrivacy(noise_multiplier=1.0, max_grad_norm=1.0, sample_rate=BATCH / len(data),
                             records=len(data), d_steps=k)

    arms = {"solo, no privacy": lambda: _solo(data, steps, None),
            "solo, DP-SGD (d_steps 1)": lambda: _solo(data, steps, dp(1))}
    if d_steps > 1:
        arms[f"solo, DP-SGD (d_steps {d_steps})"] = lambda: _solo(data, steps, dp(d_steps))
    members = [Member(per_class[i % len(per_class)], i) for i in range(pack)]
    arms[f"pack of {pack}, no privacy"] = lambda: _pack(members, steps)
    for arm in arms.values():  # warm-up
        arm()
    rates: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(repeats):
        for name, arm in arms.items():
            rates[name].append(arm())
    return rates


def table(rates: dict[str, list[float]]) -> str:
    base = statistics.median(rates["solo, no privacy"])
    lines = ["| arm | member-steps/s (median) | runs | time per member-step vs solo without privacy |",
             "|---|---|---|---|"]
    for name, xs in rates.items():
        med = statistics.median(xs)
        lines.append(f"| {name} | {med:.1f} | {', '.join(f'{x:.1f}' for x in xs)} | {base / med:.2f} x |")
    return "\n".join(lines)


def bench_privacy(args) -> str:
    """`raygan bench privacy`: the table, headed by what was run (--steps, --repeats, --members as the
    pack's P, default 8, --d-steps, --threads, default 1)."""
    threads = 1 if args.threads is None else args.threads
    pack = 8 if args.members is None else args.members
    if args.device == "cuda":
        from raygan.config import ConfigError
        raise ConfigError("bench privacy: CPU only (the docs' numbers); leave out --device")
    torch.set_num_threads(threads)
    rates = measure(args.steps, args.repeats, pack, args.d_steps)
    return (f"DCGAN-8 (width 32, z_dim 32), batch {BATCH}, digits class 0, {args.steps} steps, "
            f"{args.repeats} repeats, {threads} torch thread(s), CPU\n" + table(rates))
