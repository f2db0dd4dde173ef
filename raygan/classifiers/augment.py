"""Batch augmentations for downstream classifier training, in an explicit registry.

Owns the per-batch transforms applied to (synthetic or real) training batches: float tensors in
[-1, 1] of shape (B, C, H, W), every random draw taken from the ``torch.Generator`` passed in (never
the global RNG), one independent draw per sample, output of the input's shape and still in [-1, 1].

- ``flip_crop``: seed 001 (Slim), Section 3.1 "Data transformations": horizontal flip and
  random crop on the generated batches.
- ``crop``: the random crop of ``flip_crop`` without the flip, for images that are not mirror
  symmetric (digits, characters: a mirrored 2 or 7 is no longer one).
- ``pathology_jitter``: seed 000 (Eilertsen et al.), Supplement B, "Boosting on CAMELYON17": random
  vertical and horizontal flips and random changes in brightness, contrast, hue and saturation.

Random numbers are drawn on the generator's device and moved to the batch's, so a CPU generator
drives a GPU batch and the draws do not depend on where the batch lives.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale uses.
_LUMA = (0.299, 0.587, 0.114)


def _check(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"augmentations take image batches (B, C, H, W), got shape {tuple(x.shape)}")


def _uniform(generator: torch.Generator, n: int, low: float, high: float, like: torch.Tensor
             ) -> torch.Tensor:
    u = torch.rand(n, generator=generator, device=generator.device)
    return (low + (high - low) * u).to(device=like.device, dtype=like.dtype)


def _coin(generator: torch.Generator, n: int, like: torch.Tensor) -> torch.Tensor:
    """(n, 1, 1, 1) booleans, each True with probability 1/2."""
    u = torch.rand(n, generator=generator, device=generator.device)
    return (u < 0.5).to(like.device).view(n, 1, 1, 1)


def default_pad(height: int, width: int) -> int:
    """Crop padding: 1/8 of the shorter side, at least 1 px (1 at 8x8, 3 at 28x28, 4 at 32x32, the
    usual CIFAR recipe)."""
    return max(1, min(height, width) // 8)


def flip_crop(x: torch.Tensor, generator: torch.Generator, *, pad: int | None = None,
              padding_mode: str = "reflect", flip: bool = True) -> torch.Tensor:
    """Seed 001, Section 3.1, "Data transformations": each sample is flipped left-right with
    probability 1/2, then padded by ``pad`` pixels on every side and cropped back to H x W at a
    uniform random offset.

    ``pad`` defaults to :func:`default_pad`. ``padding_mode`` is "reflect" (default: no artificial
    border; needs pad < H, W), "replicate", or "constant" (fills with -1, black in [-1, 1]).
    ``flip=False`` crops only (and draws no coin).
    """
    _check(x)
    b, _, h, w = x.shape
    pad = default_pad(h, w) if pad is None else int(pad)
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if flip:
        x = torch.where(_coin(generator, b, x), x.flip(-1), x)
    if pad == 0 or b == 0:
        return x
    if padding_mode == "constant":
        padded = F.pad(x, (pad, pad, pad, pad), mode="constant", value=-1.0)
    elif padding_mode in ("reflect", "replicate"):
        padded = F.pad(x, (pad, pad, pad, pad), mode=padding_mode)
    else:
        raise ValueError(f"padding_mode must be 'reflect', 'replicate' or 'constant', got {padding_mode!r}")
    offsets = torch.randint(0, 2 * pad + 1, (2, b), generator=generator, device=generator.device)
    offsets = offsets.to(x.device)
    rows = offsets[0][:, None] + torch.arange(h, device=x.device)   # (B, H)
    cols = offsets[1][:, None] + torch.arange(w, device=x.device)   # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    # Advanced indices around a slice: the result is (B, H, W, C).
    crops = padded[batch, :, rows[:, :, None], cols[:, None, :]]
    return crops.permute(0, 3, 1, 2).contiguous()


def _grey(u: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) luma of images in [0, 1]."""
    if u.shape[1] != 3:
        return u.mean(dim=1, keepdim=True)
    weights = torch.tensor(_LUMA, device=u.device, dtype=u.dtype).view(1, 3, 1, 1)
    return (u * weights).sum(dim=1, keepdim=True)


def _shift_hue(u: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """RGB images in [0, 1] with each sample's HSV hue moved by ``turns`` (B,) of a full turn; value
    and saturation are kept (what torchvision's adjust_hue does, with a factor per sample)."""
    r, g, b = u.unbind(dim=1)
    value, argmax = u.max(dim=1)
    delta = value - u.min(dim=1).values
    saturation = torch.where(value > 0, delta / value.clamp_min(1e-12), torch.zeros_like(value))
    safe = delta.clamp_min(1e-12)
    hue6 = torch.where(argmax == 0, ((g - b) / safe) % 6,
                       torch.where(argmax == 1, (b - r) / safe + 2, (r - g) / safe + 4))
    hue6 = torch.where(delta > 0, hue6, torch.zeros_like(hue6))
    hue6 = (hue6 + 6 * turns.view(-1, 1, 1)) % 6
    # HSV -> RGB without branches: channel n (5, 3, 1 for R, G, B) is v - v s clip(min(k, 4 - k), 0, 1)
    # with k = (n + 6 h) mod 6.
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = (n + hue6) % 6
        channels.append(value - value * saturation * torch.minimum(k, 4 - k).clamp(0, 1))
    return torch.stack(channels, dim=1)


def pathology_jitter(x: torch.Tensor, generator: torch.Generator, *, brightness: float = 0.2,
                     contrast: float = 0.2, saturation: float = 0.2, hue: float = 0.05) -> torch.Tensor:
    """Seed 000, Supplement B (CAMELYON17): random vertical and horizontal flips (each p = 1/2), then
    brightness, contrast, saturation and hue jitter, in that fixed order, per sample.

    The supplement gives no magnitudes; ours follow torchvision's ColorJitter conventions on the
    [0, 1] image: brightness multiplies by a factor in [1 - b, 1 + b]; contrast blends with the
    image's mean luma by a factor in [1 - c, 1 + c]; saturation blends with the pixel's luma by a
    factor in [1 - s, 1 + s]; hue moves the HSV hue by a fraction in [-hue, hue] of a full turn.
    Each step clips to [0, 1]. Saturation and hue are no-ops for images that are not 3-channel.
    """
    _check(x)
    b, c = x.shape[:2]
    x = torch.where(_coin(generator, b, x), x.flip(-2), x)
    x = torch.where(_coin(generator, b, x), x.flip(-1), x)
    u = (x + 1.0) / 2.0
    per = (b, 1, 1, 1)
    f_brightness = _uniform(generator, b, 1 - brightness, 1 + brightness, u).view(per)
    f_contrast = _uniform(generator, b, 1 - contrast, 1 + contrast, u).view(per)
    # Drawn whatever the channel count, so a batch's later draws do not depend on it.
    f_saturation = _uniform(generator, b, 1 - saturation, 1 + saturation, u).view(per)
    turns = _uniform(generator, b, -hue, hue, u)
    u = (u * f_brightness).clamp(0, 1)
    mean = _grey(u).mean(dim=(2, 3), keepdim=True)
    u = (f_contrast * u + (1 - f_contrast) * mean).clamp(0, 1)
    if c == 3:
        u = (f_saturation * u + (1 - f_saturation) * _grey(u)).clamp(0, 1)
        u = _shift_hue(u, turns).clamp(0, 1)
    return u * 2.0 - 1.0


def crop(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The random crop of seed 001's transformations without its flip (digits are not mirror
    symmetric): pad by :func:`default_pad` (reflect) and crop back at a uniform random offset."""
    return flip_crop(x, generator, flip=False)


def no_augmentation(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """The identity: train on the batch as it is."""
    return x


AUGMENTATIONS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "none": no_augmentation, "flip_crop": flip_crop, "crop": crop, "pathology": pathology_jitter}


def augment(name: str, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Apply the augmentation registered as ``name`` to a batch in [-1, 1]."""
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; allowed: {sorted(AUGMENTATIONS)}")
    return AUGMENTATIONS[name](x, generator)
