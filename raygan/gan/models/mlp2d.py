"""The 2D-grid G and D of seed 000 Supplement A (after Lin et al., 2018, PacGAN).

G: 4 hidden layers of 400 units, batch norm + ReLU, linear 2D output.
D: 3 hidden layers of 200 units, linear maxout with pool size 5, no batch norm, one logit.
D's ``pacgan`` (m) is PacGAN's own grid setting (Lin et al. 2018, Section 5: the same D with m points
in, 2m coordinates); ``minibatch_std`` adds one feature before the logit (raygan.gan.models.d_levers).
Both work in coordinates centred on ``center`` (the grid's middle, (8, 8)): a fixed shift with no
parameters, so that G's output layer does not spend thousands of Adam steps walking its bias from 0
to 8 before it can learn the modes.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from raygan.gan.models.d_levers import pac, with_std


class Maxout(nn.Module):
    """Linear maxout: pool_size linear pieces per output unit, the max taken."""

    def __init__(self, in_features: int, out_features: int, pool_size: int):
        super().__init__()
        self.out_features, self.pool_size = out_features, pool_size
        self.linear = nn.Linear(in_features, out_features * pool_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x).view(x.shape[0], self.out_features, self.pool_size)
        return y.max(dim=2).values


class GridGenerator(nn.Module):
    def __init__(self, z_dim: int = 2, hidden: int = 400, layers: int = 4, out_dim: int = 2,
                 center: float = 8.0):
        super().__init__()
        self.register_buffer("center", torch.full((out_dim,), float(center)))
        self.z_dim = z_dim
        blocks, width = [], z_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True)]
            width = hidden
        blocks.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z) + self.center


class GridDiscriminator(nn.Module):
    def __init__(self, in_dim: int = 2, hidden: int = 200, layers: int = 3, pool_size: int = 5,
                 center: float = 8.0, pacgan: int = 1, minibatch_std: int = 0):
        super().__init__()
        self.register_buffer("center", torch.full((in_dim,), float(center)))
        self.pacgan = pacgan
        blocks: list[nn.Module] = []
        width = in_dim * pacgan
        for _ in range(layers):
            blocks.append(Maxout(width, hidden, pool_size))
            width = hidden
        blocks.append(nn.Linear(width + (1 if minibatch_std else 0), 1))
        self.net = nn.Sequential(*with_std(blocks, minibatch_std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pac(x - self.center, self.pacgan)).squeeze(1)
