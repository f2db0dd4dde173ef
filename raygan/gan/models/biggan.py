"""BigGAN (Brock, Donahue and Simonyan, "Large Scale GAN Training for High Fidelity Natural Image
Synthesis", 2019) in its CIFAR form, scaled by image size and ``gan.width``: one class-conditional
model for every class, like ccgan.

Generator G(z, y): z is split into blocks + 1 chunks (the hierarchical latent, BigGAN Section 3); the
first goes through a linear layer to a 4 x 4 map of ``ch`` channels, then log2(size / 4) residual
up-blocks (8 px: 1, 32 px: 3) double it, each block's two conditional batch norms fed with
[shared_embedding(y), its z chunk]; then batch norm, ReLU, a 3x3 conv to the image channels and tanh.
The shared class embedding has z_dim dimensions (BigGAN-PyTorch's choice when no shared size is given;
BigGAN's 128 at z_dim 128).

Discriminator D(x, y): residual down-blocks from the image size to 4 x 4 plus one block that keeps the
size, ReLU, a sum over positions, then the projection discriminator's output (Miyato and Koyama,
"cGANs with projection discriminator"): linear(h) + <embed(y), h>.

Channels: ``ch = 4 * gan.width`` in every block (BigGAN's CIFAR network has 4 * 64 = 256 channels, so
gan.width=64 builds it). Every conv, linear and embedding is orthogonally initialised; all but G's
shared embedding are spectrally normalised (raygan.gan.models.biggan_layers). ``attention_resolution``
places SAGAN's self-attention after the stage of G and of D whose maps have that resolution: a power
of two from 4 (G: the linear layer's map; D: its last down-block's) up to half the image size.

Why it is never packed (raygan.config.families, UNPACKABLE): raygan.gan.pack's grouped layers (one
convolution holding P members' kernels) have no form of spectral norm's power iteration (one u and v
per member's weight), of conditional batch norm (gains and biases computed from each sample's class)
or of self-attention, so a pack could not compute this model; its members train one per task with
train_gan's own loop.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

# biggan's size rule is the config's, so that the config check refuses exactly what this model cannot build
from raygan.config.families import BIGGAN_BOTTOM as BOTTOM
from raygan.config.families import biggan_attention_stage as _attention_stage
from raygan.config.families import biggan_up_blocks as up_blocks
from raygan.gan.models.biggan_layers import (
    DBlock,
    GBlock,
    SelfAttention,
    embedding,
    sn_conv,
    sn_embedding,
    sn_linear,
)


def latent_chunks(z_dim: int, blocks: int) -> list[int]:
    """The hierarchical latent's split: blocks + 1 equal chunks, the remainder to the first (the
    linear layer's)."""
    n = blocks + 1
    if z_dim < n:
        raise ValueError(f"gan.family=biggan splits z into {n} chunks (one for the linear layer, one per "
                         f"up-block) and needs gan.z_dim >= {n}, got {z_dim}")
    return [z_dim // n + z_dim % n] + [z_dim // n] * blocks


class BigGANGenerator(nn.Module):
    def __init__(self, z_dim: int, n_classes: int, image_size: int, channels: int, width: int = 64,
                 attention_resolution: Optional[int] = None):
        super().__init__()
        self.z_dim, self.n_classes = z_dim, n_classes
        blocks, ch = up_blocks(image_size), 4 * width
        self.chunks = latent_chunks(z_dim, blocks)
        self.attention_at = _attention_stage(attention_resolution, image_size)
        self.ch = ch
        self.shared = embedding(n_classes, z_dim)
        self.linear = sn_linear(self.chunks[0], ch * BOTTOM * BOTTOM)
        self.blocks = nn.ModuleList(GBlock(ch, ch, cond_dim=z_dim + c) for c in self.chunks[1:])
        self.attention = SelfAttention(ch) if self.attention_at is not None else None
        self.out_bn = nn.BatchNorm2d(ch)
        self.out_conv = sn_conv(ch, channels, 3)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        zs = torch.split(z, self.chunks, dim=1)
        shared = self.shared(y).to(z.dtype)
        h = self.linear(zs[0]).view(z.shape[0], self.ch, BOTTOM, BOTTOM)
        for stage, (block, z_i) in enumerate(zip([None, *self.blocks], [None, *zs[1:]])):
            if block is not None:
                h = block(h, torch.cat([shared, z_i], dim=1))
            if stage == self.attention_at:
                h = self.attention(h)
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class BigGANDiscriminator(nn.Module):
    def __init__(self, n_classes: int, image_size: int, channels: int, width: int = 64,
                 attention_resolution: Optional[int] = None):
        super().__init__()
        self.n_classes = n_classes
        downs, ch = up_blocks(image_size), 4 * width
        attention_at = _attention_stage(attention_resolution, image_size)
        # stage i of G's maps (resolution 4 * 2^i) is D's output of down-block downs - 1 - i
        self.attention_after = None if attention_at is None else downs - 1 - attention_at
        self.blocks = nn.ModuleList(
            [DBlock(channels if i == 0 else ch, ch, down=True, preactivation=i > 0) for i in range(downs)]
            + [DBlock(ch, ch, down=False, preactivation=True)])
        self.attention = SelfAttention(ch) if attention_at is not None else None
        self.linear = sn_linear(ch, 1)
        self.embed = sn_embedding(n_classes, ch)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = x
        for i, block in enumerate(self.blocks):
            h = block(h)
            if i == self.attention_after:
                h = self.attention(h)
        h = F.relu(h).sum(dim=(2, 3))
        return self.linear(h).flatten() + (self.embed(y).to(h.dtype) * h).sum(dim=1)
