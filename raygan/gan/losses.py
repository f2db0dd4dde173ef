"""Adversarial losses in a small registry; every function takes discriminator logits.

``d_loss(real_logits, fake_logits, real_label)`` and ``g_loss(fake_logits)``. With real_label < 1 the
real term is one-sided label smoothing (seed 002: targets of 0.9 for real images, 0 for fakes).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def d_loss_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0):
    """Supplement A: L_d = log(1 + e^-D(x_real)) + log(1 + e^D(x_fake)), with a smoothed real target."""
    real = F.softplus(-real_logits) if real_label == 1.0 else \
        F.binary_cross_entropy_with_logits(real_logits, torch.full_like(real_logits, real_label))
    return real.mean() + F.softplus(fake_logits).mean()


def g_loss_nonsaturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """Supplement A's generator term log(1 + e^-D(x_fake)), i.e. -log sigmoid(D(G(z)))."""
    return F.softplus(-fake_logits).mean()


def g_loss_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """Goodfellow et al.'s original objective: minimise log(1 - sigmoid(D(G(z)))) = -softplus(D)."""
    return -F.softplus(fake_logits).mean()


LOSSES = {
    "nonsaturating": (d_loss_bce, g_loss_nonsaturating),
    "minimax": (d_loss_bce, g_loss_minimax),
}
