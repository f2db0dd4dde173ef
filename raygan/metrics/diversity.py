"""Intra-class diversity as mean MS-SSIM over random pairs of same-class samples (seed 001 Table 2).

Seed 001 Section 4.3: "summing the similarity scores of 200 image pairs from each class and averaging
the result"; it reports MS-SSIM x 10^2 (CIFAR-10 real 40.5, BigGAN 42.2). Lower means more diverse; a
collapsed generator approaches 1. The MS-SSIM itself is torchmetrics'.

Small images. The standard MS-SSIM (5 scales, 11x11 Gaussian, sigma 1.5) needs images of at least
176 px per side in torchmetrics, so the scales and the window shrink with the image
(:func:`msssim_settings`): the largest number of scales S <= 5 for which a window of at least 5 px (3
px below 16 px) still fits the coarsest scale and torchmetrics' size checks, then the largest odd
window <= 11 that fits, with sigma = 1.5 * window / 11 (the standard ratio). The exponents are the
first S of Wang et al.'s five (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), renormalised to sum to 1,
so identical images still score exactly 1. This gives:
   8 x 8  -> 2 scales, 3 px window;   28 x 28 -> 3 scales, 7 px;   32 x 32 -> 3 scales, 7 px;
  64 x 64 -> 4 scales, 7 px;         128 x 128 -> 5 scales, 7 px;  >= 176 px -> the standard 5, 11 px.
Numbers at different image sizes are therefore not comparable with each other or with seed 001's.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

WANG_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
DEFAULT_PAIRS = 200  # seed 001: 200 pairs per class


@dataclass(frozen=True)
class MSSSIMSettings:
    scales: int
    kernel_size: int
    sigma: float
    betas: tuple[float, ...]

    def describe(self) -> str:
        return (f"MS-SSIM on pixels ({self.scales} scales, {self.kernel_size}x{self.kernel_size} "
                f"Gaussian window, sigma {self.sigma:.2f}, data range 2)")


def _fits(size: int, scales: int, kernel: int) -> bool:
    # torchmetrics' checks (size >= 2^S; size // max(1, S-1)^2 > kernel - 1) plus the window fitting
    # the coarsest scale, where reflect padding needs the image larger than half the window.
    return (size >= 2 ** scales and size // max(1, scales - 1) ** 2 > kernel - 1
            and size // 2 ** (scales - 1) >= kernel)


def msssim_settings(height: int, width: int) -> MSSSIMSettings:
    """Scales and window for images of this size (see the module docstring for the rule)."""
    size = min(height, width)
    min_kernel = 5 if size >= 16 else 3
    for scales in range(5, 0, -1):
        kernels = [k for k in range(11, min_kernel - 1, -2) if _fits(size, scales, k)]
        if kernels:
            betas = np.asarray(WANG_BETAS[:scales])
            return MSSSIMSettings(scales, kernels[0], 1.5 * kernels[0] / 11,
                                  tuple(float(b) for b in betas / betas.sum()))
    raise ValueError(f"images of {height}x{width} are too small for MS-SSIM (need >= 6 px per side)")


def pairwise_msssim(a: torch.Tensor, b: torch.Tensor, *, settings: MSSSIMSettings | None = None,
                    batch_size: int = 256) -> torch.Tensor:
    """MS-SSIM of each pair (a[i], b[i]) of [-1, 1] images (N, C, H, W) -> (N,)."""
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as msssim

    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"need two image batches of the same shape (N, C, H, W), got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    s = settings or msssim_settings(a.shape[2], a.shape[3])
    out = []
    for i in range(0, len(a), batch_size):
        out.append(msssim(a[i:i + batch_size].double(), b[i:i + batch_size].double(),
                          gaussian_kernel=True, kernel_size=s.kernel_size, sigma=s.sigma,
                          reduction="none", data_range=2.0, betas=s.betas, normalize="relu"))
    return torch.cat(out).float() if out else torch.empty(0)


def random_pairs(n: int, pairs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`pairs` index pairs (i, j), i != j, drawn uniformly (with replacement across pairs)."""
    if n < 2:
        raise ValueError("MS-SSIM diversity needs at least two samples")
    rng = np.random.default_rng(seed)
    i = rng.integers(0, n, size=pairs)
    j = (i + rng.integers(1, n, size=pairs)) % n  # uniform over the other n - 1 samples
    return i, j


def intra_class_msssim(images: torch.Tensor, *, pairs: int = DEFAULT_PAIRS, seed: int = 0) -> dict:
    """Seed 001's intra-class diversity of one class's samples: mean (and std) MS-SSIM over random
    pairs of distinct samples. Lower = more diverse."""
    i, j = random_pairs(len(images), pairs, seed)
    values = pairwise_msssim(images[torch.from_numpy(i)], images[torch.from_numpy(j)])
    return {"msssim": float(values.mean()), "msssim_std": float(values.std()) if pairs > 1 else 0.0,
            "pairs": int(pairs)}


__all__ = ["MSSSIMSettings", "msssim_settings", "pairwise_msssim", "random_pairs",
           "intra_class_msssim", "DEFAULT_PAIRS"]
