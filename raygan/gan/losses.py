"""Adversarial losses in a small registry; every function takes discriminator logits.

``d_loss(real_logits, fake_logits, real_label)`` and ``g_loss(fake_logits)``. With real_label < 1 the
real term is one-sided label smoothing (seed 002: targets of 0.9 for real images, 0 for fakes).
The hinge loss (biggan's) keeps that signature and ignores real_label: it has no targets to smooth, so
raygan.config refuses gan.real_label != 1 with it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def d_real_bce(real_logits: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """The real half of Supplement A's L_d, per sample: log(1 + e^-D(x_real)), or the binary cross
    entropy with a smoothed target."""
    return F.softplus(-real_logits) if real_label == 1.0 else F.binary_cross_entropy_with_logits(
        real_logits, torch.full_like(real_logits, real_label), reduction="none")


def d_fake_bce(fake_logits: torch.Tensor) -> torch.Tensor:
    """The fake half of Supplement A's L_d, per sample: log(1 + e^D(x_fake))."""
    return F.softplus(fake_logits)


def d_loss_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor, real_label: float = 1.0):
    """Supplement A: L_d = log(1 + e^-D(x_real)) + log(1 + e^D(x_fake)), with a smoothed real target."""
    return d_real_bce(real_logits, real_label).mean() + d_fake_bce(fake_logits).mean()


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
    return d_real_hinge(real_logits).mean() + d_fake_hinge(fake_logits).mean()


def d_real_hinge(real_logits: torch.Tensor, real_label: float = 1.0) -> torch.Tensor:
    """The real half of the hinge loss, per sample: max(0, 1 - D(x)) (``real_label`` ignored)."""
    return F.relu(1.0 - real_logits)


def d_fake_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """The fake half of the hinge loss, per sample: max(0, 1 + D(G(z)))."""
    return F.relu(1.0 + fake_logits)


def g_loss_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's side of the hinge loss: L_G = -E[D(G(z))]."""
    return -fake_logits.mean()


# The discriminator loss of each gan.loss as its real and fake halves per sample, (real(logits,
# real_label), fake(logits)): DP-SGD clips the real half record by record (raygan.privacy.dpsgd).
D_TERMS = {
    "nonsaturating": (d_real_bce, d_fake_bce),
    "minimax": (d_real_bce, d_fake_bce),
    "hinge": (d_real_hinge, d_fake_hinge),
}

LOSSES = {
    "nonsaturating": (d_loss_bce, g_loss_nonsaturating),
    "minimax": (d_loss_bce, g_loss_minimax),
    "hinge": (d_loss_hinge, g_loss_hinge),
}
