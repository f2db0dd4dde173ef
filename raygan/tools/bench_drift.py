"""`raygan bench drift`: how far a packed member drifts from its solo run, against how far the same solo
run drifts from itself under another valid float32 kernel (its modules in channels_last memory,
train.channels_last), step by step, at the sizes users run.

GAN training is chaotic: any change in float rounding (another convolution kernel, another summation
order) grows step by step until two runs of one seed part visibly. So "the pack equals its solo run"
can only mean: its forward and backward passes are the solo ones to rounding (tests/unit/
test_pack_sizes.py), and its drift is the drift any other valid kernel shows. This benchmark measures
the second part: per member and step, |pack - solo| and |channels_last solo - solo| in both losses,
maxima over the members, and the generators' largest weight gap after the last step.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from raygan.config import ConfigError, GANConfig, TrainConfig
from raygan.gan.pack import PackMember, train_pack
from raygan.gan.train import train_gan
from raygan.tools.bench_common import device_name

MEMBERS = 3


def smooth_images(n: int, channels: int, size: int, seed: int) -> torch.Tensor:
    """Seeded smooth images in [-1, 1] (bilinearly upsampled noise): closer to photographs than white
    noise, and made here, so the benchmark needs no dataset."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, max(2, size // 4), max(2, size // 4), generator=g)
    return torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear") * 2 - 1


def _weight_gap(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sb = b.state_dict()
    return max((t.double() - sb[k].double()).abs().max().item()
               for k, t in a.state_dict().items() if t.is_floating_point())


def _row(step: int, pack_gap: np.ndarray, cl_gap: np.ndarray) -> str:
    return f"| {step} | {pack_gap[step - 1]:.1e} | {cl_gap[step - 1]:.1e} |"


def bench_drift(args) -> str:
    size, steps = args.image_size or 32, args.steps
    if steps < 1:
        raise ConfigError(f"--steps {steps}: at least one step")
    gan = GANConfig(family="dcgan", width=16, z_dim=64)
    train = TrainConfig(steps=steps, batch_size=32, log_every=steps, checkpoint_every=steps, device="cpu")
    datas = [smooth_images(64 + 16 * i, 3, size, 20 + i) for i in range(MEMBERS)]
    packed = train_pack([PackMember(data=d, seed=30 + i) for i, d in enumerate(datas)], gan=gan, train=train)
    solo = [train_gan(d, gan=gan, train=train, seed=30 + i) for i, d in enumerate(datas)]
    other = [train_gan(d, gan=gan, train=dataclasses.replace(train, channels_last=True), seed=30 + i)
             for i, d in enumerate(datas)]
    pack_gap = np.max([np.abs(p.losses - s.losses).max(1) for p, s in zip(packed, solo)], axis=0)
    cl_gap = np.max([np.abs(o.losses - s.losses).max(1) for o, s in zip(other, solo)], axis=0)
    marks = sorted({m for m in (1, 2, 5, 10, 20, 40, 80, 160, steps) if m <= steps})
    w_pack = max(_weight_gap(p.generator, s.generator) for p, s in zip(packed, solo))
    w_cl = max(_weight_gap(o.generator, s.generator) for o, s in zip(other, solo))
    return "\n".join([
        "## drift",
        "",
        f"Command: `raygan bench drift --image-size {size} --steps {steps}`",
        f"Setting: {MEMBERS} DCGAN-{size} members (width 16, z_dim 64, batch 32) on seeded smooth RGB "
        f"images, on the {device_name(torch.device('cpu'))} with the same torch threads for every arm, "
        "one after the other in one process.",
        "",
        "| step | max \\|pack - solo\\| in d_loss, g_loss | max \\|solo channels_last - solo\\| |",
        "|---|---|---|",
        *[_row(m, pack_gap, cl_gap) for m in marks],
        "",
        f"Generator weights after step {steps}: largest gap pack - solo {w_pack:.1e}, channels_last solo - "
        f"solo {w_cl:.1e}.",
        "",
    ])
