"""Adversarial losses in a small registry; every function takes discriminator logits.

``d_loss(real_logits, fake_logits, real_label)`` and ``g_loss(fake_logits)``. With real_label < 1 the
real term is one-sided label smoothing (seed 002: targets of 0.9 for real images, 0 for fakes).
The hinge loss (biggan's) keeps that signature and ignores real_label: it has no targets to smooth, so
raygan.config refuses gan.real_label != 1 with it.
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


def d_loss_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0):
    """The hinge loss of Lim and Ye ("Geometric GAN") and Miyato et al. ("Spectral normalization for
    GANs"), as BigGAN trains: L_D = E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]. ``real_label`` is
    ignored (the loss registry's signature)."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def g_loss_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's side of the hinge loss: L_G = -E[D(G(z))]."""
    return -fake_logits.mean()


LOSSES = {
    "nonsaturating": (d_loss_bce, g_loss_nonsaturating),
    "minimax": (d_loss_bce, g_loss_minimax),
    "hinge": (d_loss_hinge, g_loss_hinge),
}
