"""Virtual batch normalisation (Salimans et al., 2016, "Improved techniques for training GANs", Sec. 3.4)
for the DCGAN/CCGAN generator: seed 003's (Ferianc & Manocha) ``gan.g_norm: vbn``.

Each sample is normalised with statistics of a fixed reference batch combined with the sample itself,
the sample weighted 1/(n+1) as if it had joined the n reference samples; the reference batch is
normalised with its own statistics. So a sample's output depends on the weights, the reference batch
and itself, never on the rest of its batch, in train and eval mode alike (there are no running
statistics). Per channel, over the batch and the positions of the map, as batch norm's.

The reference batch is a generator input, not an activation: ``reference_latents`` draws it once, when
the model is built (right after ``torch.manual_seed(member seed)``, so from the member's own stream), and
the generator keeps it as the buffer ``vbn_ref`` (saved in the checkpoint, so a rebuilt generator
samples deterministically). The generator runs the reference rows in front of its input through every
layer; each ``VirtualBatchNorm2d`` knows how many leading rows (``n_ref``) are the reference. Seed 003
itself re-drew half of every batch as the reference; the fixed batch is Salimans et al.'s definition.

``mix`` and ``normalise`` are shared with the packed layer (raygan.gan.pack_layers) so that a packed
member computes the same formula as the member alone.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

# Reference batch size n: DCGAN's minibatch (Radford et al.: 128) halved; each generator call pays a
# forward of these n rows besides its own batch.
VBN_REF_SIZE = 64


def reference_latents(n: int, z_dim: int, n_classes: Optional[int] = None) -> torch.Tensor:
    """The reference batch (n, z_dim [+ n_classes]): N(0, 1) latents from torch's default generator
    (the member's seeded stream); a conditional generator's rows also carry a one-hot class, the
    classes in turn (0, 1, ..., K-1, 0, ...), so every class is represented."""
    z = torch.randn(n, z_dim)
    if n_classes is None:
        return z
    return torch.cat([z, F.one_hot(torch.arange(n) % n_classes, n_classes).to(z.dtype)], dim=1)


def mix(ref: torch.Tensor, own: torch.Tensor, n: int) -> torch.Tensor:
    """Salimans et al.'s combined statistic: the reference batch's (n samples) and the sample's own,
    weighted n/(n+1) and 1/(n+1)."""
    return ref * (n / (n + 1)) + own * (1 / (n + 1))


def normalise(x: torch.Tensor, mean: torch.Tensor, mean_sq: torch.Tensor, eps: float) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps), var = E[x^2] - E[x]^2 (clamped at 0 against rounding)."""
    var = (mean_sq - mean * mean).clamp_min(0)
    return (x - mean) / torch.sqrt(var + eps)


class VirtualBatchNorm2d(nn.Module):
    """Virtual batch norm of (n_ref + B, C, H, W) maps whose first ``n_ref`` rows are the reference
    batch; a per-channel scale and shift as batch norm's (DCGAN's N(1, 0.02) / 0 initialisation)."""

    def __init__(self, channels: int, n_ref: int, eps: float = 1e-5):
        super().__init__()
        self.channels, self.n_ref, self.eps = channels, n_ref, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n = self.n_ref
        x = h.float()  # statistics in fp32 under bf16 autocast, as batch norm's
        ref, own = x[:n], x[n:]
        ref_mean = ref.mean(dim=(0, 2, 3), keepdim=True)
        ref_sq = ref.square().mean(dim=(0, 2, 3), keepdim=True)
        mean = mix(ref_mean, own.mean(dim=(2, 3), keepdim=True), n)
        mean_sq = mix(ref_sq, own.square().mean(dim=(2, 3), keepdim=True), n)
        y = torch.cat([normalise(ref, ref_mean, ref_sq, self.eps), normalise(own, mean, mean_sq, self.eps)])
        return (y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)).to(h.dtype)

    def extra_repr(self) -> str:
        return f"{self.channels}, n_ref={self.n_ref}, eps={self.eps}"
