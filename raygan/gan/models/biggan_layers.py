"""BigGAN's building blocks (Brock, Donahue and Simonyan, "Large Scale GAN Training for High Fidelity
Natural Image Synthesis", 2019): spectrally normalised layers with orthogonal initialisation,
class-conditional batch norm, the residual up (G) and down (D) blocks, and SAGAN's self-attention.

Every convolution and linear layer is orthogonally initialised (BigGAN Section 4: "Orthogonal
Initialization", Saxe et al.) and then wrapped in ``torch.nn.utils.parametrizations.spectral_norm``
(Miyato et al., "Spectral normalization for GANs"), which runs one power iteration per forward pass
in training mode, as BigGAN does in G and D. The initialisation comes first because the
parametrisation keeps the weight it finds as its ``original``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm


def _orthogonal(module: nn.Module) -> nn.Module:
    nn.init.orthogonal_(module.weight)
    return module


def sn_conv(in_ch: int, out_ch: int, kernel: int, *, bias: bool = True) -> nn.Module:
    """A kernel x kernel convolution keeping the map's size, orthogonal init, spectral norm."""
    return spectral_norm(_orthogonal(nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=bias)))


def sn_linear(in_features: int, out_features: int, *, bias: bool = True) -> nn.Module:
    return spectral_norm(_orthogonal(nn.Linear(in_features, out_features, bias=bias)))


def sn_embedding(n_classes: int, dim: int) -> nn.Module:
    """The projection discriminator's class embedding (spectrally normalised, as BigGAN's D)."""
    return spectral_norm(_orthogonal(nn.Embedding(n_classes, dim)))


def embedding(n_classes: int, dim: int) -> nn.Module:
    """G's shared class embedding: orthogonal init, no spectral norm (BigGAN's shared embedding is a
    plain table; only the layers it feeds are normalised)."""
    return _orthogonal(nn.Embedding(n_classes, dim))


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose gain and bias are linear in the conditioning vector c (BigGAN Section 3:
    "class-conditional BatchNorm", de Vries et al. / Dumoulin et al.): y = bn(x) * (1 + W_g c) + W_b c.
    The gain is centred on 1 so that a fresh layer starts close to a plain batch norm."""

    def __init__(self, channels: int, cond_dim: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = sn_linear(cond_dim, channels)
        self.bias = sn_linear(cond_dim, channels)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        gain = (1.0 + self.gain(c)).view(c.shape[0], -1, 1, 1)
        return self.bn(x) * gain + self.bias(c).view(c.shape[0], -1, 1, 1)


class GBlock(nn.Module):
    """BigGAN's residual up-block ("ResBlock up", its Appendix B): cBN, ReLU, 2x nearest upsampling,
    3x3 conv, cBN, ReLU, 3x3 conv, plus an upsampled 1x1-conv shortcut."""

    def __init__(self, in_ch: int, out_ch: int, cond_dim: int):
        super().__init__()
        self.bn1 = ConditionalBatchNorm2d(in_ch, cond_dim)
        self.conv1 = sn_conv(in_ch, out_ch, 3)
        self.bn2 = ConditionalBatchNorm2d(out_ch, cond_dim)
        self.conv2 = sn_conv(out_ch, out_ch, 3)
        self.shortcut = sn_conv(in_ch, out_ch, 1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(F.relu(self.bn1(x, c)), scale_factor=2.0)
        h = self.conv2(F.relu(self.bn2(self.conv1(h), c)))
        return h + self.shortcut(F.interpolate(x, scale_factor=2.0))


class DBlock(nn.Module):
    """BigGAN's residual down-block ("ResBlock down", its Appendix B): [ReLU], 3x3 conv, ReLU, 3x3
    conv, [2x2 average pool], plus a shortcut (1x1 conv when the block changes channels or size,
    else identity). The first block of D sees the image and skips the leading ReLU
    (``preactivation=False``); its shortcut pools before the 1x1 conv, the others' after it, as
    BigGAN's."""

    def __init__(self, in_ch: int, out_ch: int, *, down: bool, preactivation: bool):
        super().__init__()
        self.down, self.preactivation = down, preactivation
        self.conv1 = sn_conv(in_ch, out_ch, 3)
        self.conv2 = sn_conv(out_ch, out_ch, 3)
        self.shortcut = sn_conv(in_ch, out_ch, 1) if (in_ch != out_ch or down) else None

    def _skip(self, x: torch.Tensor) -> torch.Tensor:
        if not self.preactivation and self.down:
            x = F.avg_pool2d(x, 2)
        if self.shortcut is not None:
            x = self.shortcut(x)
        if self.preactivation and self.down:
            x = F.avg_pool2d(x, 2)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self.conv2(F.relu(self.conv1(h)))
        if self.down:
            h = F.avg_pool2d(h, 2)
        return h + self._skip(x)


class SelfAttention(nn.Module):
    """SAGAN's self-attention block (Zhang, Goodfellow, Metaxas and Odena, "Self-Attention Generative
    Adversarial Networks"), in BigGAN's form: query C/8, key C/8 and value C/2 channels, keys and values
    max-pooled 2x2, the output added through a gain gamma that starts at 0 (so the block starts as
    the identity)."""

    def __init__(self, channels: int):
        super().__init__()
        key, value = max(1, channels // 8), max(1, channels // 2)
        self.theta = sn_conv(channels, key, 1, bias=False)
        self.phi = sn_conv(channels, key, 1, bias=False)
        self.g = sn_conv(channels, value, 1, bias=False)
        self.o = sn_conv(value, channels, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        theta = self.theta(x).flatten(2)                                # (B, C/8, HW)
        phi = F.max_pool2d(self.phi(x), 2).flatten(2)                   # (B, C/8, HW/4)
        g = F.max_pool2d(self.g(x), 2).flatten(2)                       # (B, C/2, HW/4)
        beta = F.softmax(torch.bmm(theta.transpose(1, 2), phi), dim=-1)  # (B, HW, HW/4)
        o = torch.bmm(g, beta.transpose(1, 2)).view(b, -1, h, w)
        return x + self.gamma * self.o(o)
