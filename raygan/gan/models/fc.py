"""The fully connected GAN of seed 002 (Liu & Hu), widths scaled by alpha.

G: z -> 32a -> 64a -> 128a -> image (hidden h_i = 16 a 2^i), LeakyReLU(0.01) + dropout, tanh output.
D: image -> 128a -> 64a -> 32a -> 1 logit (hidden h_i = 256 a 2^-i), LeakyReLU(0.01) + dropout.
D's ``pacgan`` and ``minibatch_std``: raygan.gan.models.d_levers (m packed images in, one more feature
before the logit); 1 and 0 build seed 002's D.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from raygan.gan.models.d_levers import pac, with_std


def _stack(widths: list[int], dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(w_in, w_out), nn.LeakyReLU(0.01, inplace=True), nn.Dropout(dropout)]
    return layers


class FCGenerator(nn.Module):
    def __init__(self, z_dim: int, out_shape: tuple[int, ...], alpha: float = 4.0, dropout: float = 0.1):
        super().__init__()
        self.z_dim, self.out_shape = z_dim, tuple(out_shape)
        hidden = [max(1, round(16 * alpha * 2 ** i)) for i in (1, 2, 3)]
        self.net = nn.Sequential(*_stack([z_dim] + hidden, dropout),
                                 nn.Linear(hidden[-1], math.prod(out_shape)), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.out_shape)


class FCDiscriminator(nn.Module):
    def __init__(self, in_shape: tuple[int, ...], alpha: float = 4.0, dropout: float = 0.1, pacgan: int = 1,
                 minibatch_std: int = 0):
        super().__init__()
        self.pacgan = pacgan
        hidden = [max(1, round(256 * alpha * 2 ** -i)) for i in (1, 2, 3)]
        layers = _stack([math.prod(in_shape) * pacgan] + hidden, dropout)
        layers.append(nn.Linear(hidden[-1] + (1 if minibatch_std else 0), 1))
        self.net = nn.Sequential(*with_std(layers, minibatch_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pac(x.flatten(1), self.pacgan)).squeeze(1)
