"""DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient GAN Training"): the same
differentiable transforms on the real and the fake images every time D sees them (gan.diffaugment).

The transforms are those of the authors' DiffAugment_pytorch.py: color (brightness + U(-0.5, 0.5),
saturation x U(0, 2), contrast x U(0.5, 1.5)), translation (integer shifts up to 1/8 of the image, zero
filled) and cutout (a zero square of half the image side at a random place). Their randomness is not
drawn inside the step: :func:`draw` takes it from a member's own generator (after the step's indices
and latents) for every D call of the step (real, fake, then one per generator update), so a packed
member draws exactly what it draws alone and equals its solo run.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from raygan.config.families import DIFFAUGMENT_POLICIES as POLICIES  # the config knows the names

TRANSLATION_RATIO, CUTOUT_RATIO = 0.125, 0.5


def parse(policy: str) -> tuple[str, ...]:
    """gan.diffaugment's comma-separated transforms, in the order they apply ("" = none)."""
    return tuple(p.strip() for p in policy.split(",") if p.strip())


def draw(policy: str, rng: torch.Generator, *, calls: int, batch: int, size: tuple[int, int],
         device) -> Optional[dict[str, torch.Tensor]]:
    """The random parameters of ``calls`` augmentations of ``batch`` images of ``size`` (H, W), each
    (calls, batch, ...), drawn from ``rng`` in a fixed order; None when the policy is empty."""
    names = parse(policy)
    if not names:
        return None
    h, w = size
    out = {}

    def uniform(*shape):
        return torch.rand(calls, batch, *shape, generator=rng, device=device)

    def integers(low, high):
        return torch.randint(low, high, (calls, batch), generator=rng, device=device)

    for name in names:
        if name == "color":
            out["brightness"], out["saturation"], out["contrast"] = uniform(), uniform(), uniform()
        elif name == "translation":
            sh, sw = int(h * TRANSLATION_RATIO + 0.5), int(w * TRANSLATION_RATIO + 0.5)
            out["shift_h"], out["shift_w"] = integers(-sh, sh + 1), integers(-sw, sw + 1)
        elif name == "cutout":
            ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
            out["cut_h"], out["cut_w"] = integers(0, h + (1 - ch % 2)), integers(0, w + (1 - cw % 2))
    return out


def _grids(n: int, h: int, w: int, device):
    return torch.meshgrid(torch.arange(n, device=device), torch.arange(h, device=device),
                          torch.arange(w, device=device), indexing="ij")


def augment(x: torch.Tensor, params: dict[str, torch.Tensor], policy: str) -> torch.Tensor:
    """``x`` (..., C, H, W) transformed by one call's ``params`` (each (...) over the leading dims)."""
    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    x = x.reshape(-1, c, h, w)
    p = {k: v.reshape(-1) for k, v in params.items()}
    n = len(x)
    for name in parse(policy):
        if name == "color":
            x = x + (p["brightness"].to(x.dtype) - 0.5).view(n, 1, 1, 1)
            mean = x.mean(dim=1, keepdim=True)
            x = (x - mean) * (p["saturation"].to(x.dtype) * 2).view(n, 1, 1, 1) + mean
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            x = (x - mean) * (p["contrast"].to(x.dtype) + 0.5).view(n, 1, 1, 1) + mean
        elif name == "translation":
            b, gh, gw = _grids(n, h, w, x.device)
            gh = torch.clamp(gh + p["shift_h"].view(n, 1, 1) + 1, 0, h + 1)
            gw = torch.clamp(gw + p["shift_w"].view(n, 1, 1) + 1, 0, w + 1)
            padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
            x = padded[b, gh, gw].permute(0, 3, 1, 2)
        elif name == "cutout":
            ch, cw = int(h * CUTOUT_RATIO + 0.5), int(w * CUTOUT_RATIO + 0.5)
            b, gh, gw = _grids(n, ch, cw, x.device)
            gh = torch.clamp(gh + p["cut_h"].view(n, 1, 1) - ch // 2, 0, h - 1)
            gw = torch.clamp(gw + p["cut_w"].view(n, 1, 1) - cw // 2, 0, w - 1)
            mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
            mask[b, gh, gw] = 0
            x = x * mask.unsqueeze(1)
    return x.reshape(*lead, c, h, w)


__all__ = ["POLICIES", "augment", "draw", "parse"]
