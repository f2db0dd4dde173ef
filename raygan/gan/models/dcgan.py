"""DCGAN (Radford et al., 2015) parametrised by image size and channels: 8x8 digits up to 128 px.

The generator starts from a s0 x s0 map (s0 = image_size halved until odd or 4: 4 for 8/32/64/128,
7 for 28) and doubles it with stride-2 transposed convolutions; the discriminator mirrors it.

``norm="layer"`` is seed 004's (Leung et al.) generator, Section 4.2.5: every batch norm of G becomes
a per-sample layer norm, statistics over (C, H, W) as in its equations (4)-(7). It is written
``nn.GroupNorm(1, C)``: the same mean and variance as ``nn.LayerNorm((C, H, W))``, but with one scale
and shift per channel (as batch norm has) instead of one per pixel, so the parameters do not depend on
the map's size and stay shared over positions like the convolutions'. Only the normalisation changes
(ReLU stays; seed 004 also uses LeakyReLU(0.2) and lr_g=1e-3, lr_d=2e-4, which are gan.lr_* settings).
The discriminator keeps batch norm; seed 004 has no normalisation in D, DCGAN has.

``norm="vbn"`` is seed 003's virtual batch norm (raygan.gan.models.vbn): the generator holds a fixed
reference batch of inputs (buffer ``vbn_ref``) and runs it in front of every call's batch, so that each
``VirtualBatchNorm2d`` can normalise a sample with the reference's statistics and its own.

``depth`` is seed 003's discriminator depth D (Ferianc & Manocha, Section 2.1.2: "empowering the
discriminator by including more convolutions", D = 1, 2, 3): every downsampling stage (each stride-2
conv, the first included) is followed by D - 1 stride-1 3x3 convolutions with batch norm and
LeakyReLU(0.2), which refine its features at its resolution and keep the map's size and channels.
D = 1 builds DCGAN's discriminator exactly (the same layers, names and seeded initialisation).

``pacgan`` (m) and ``minibatch_std`` (a group size) are the discriminator's mode-coverage levers
(raygan.gan.models.d_levers): the first convolution takes m packed samples' channels, and a minibatch
standard-deviation channel joins the last convolution's input; 1 and 0 build the plain DCGAN D.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn

from raygan.gan.models.d_levers import pac, with_std
from raygan.gan.models.vbn import VBN_REF_SIZE, VirtualBatchNorm2d, reference_latents

G_NORMS = ("batch", "layer", "vbn")


def _stages(image_size: int) -> tuple[int, int]:
    """(number of stride-2 stages, starting size)."""
    stages, size = 0, image_size
    while size % 2 == 0 and size > 4:
        size //= 2
        stages += 1
    if stages == 0:
        raise ValueError(f"DCGAN needs an image size of 8 or more that halves to 4..7, got {image_size}")
    return stages, size


def _init_weights(module: nn.Module) -> None:
    # DCGAN's N(0, 0.02) initialisation for conv and N(1, 0.02) for the normalisation scale.
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm, VirtualBatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _g_norm(kind: str, channels: int, n_ref: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # per-sample statistics over (C, H, W): seed 004 eq. (4)-(5)
    if kind == "vbn":
        return VirtualBatchNorm2d(channels, n_ref=n_ref)
    raise ValueError(f"unknown generator norm {kind!r}; allowed: {', '.join(G_NORMS)}")


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, image_size: int, channels: int, width: int = 64,
                 norm: str = "batch", vbn_ref: Optional[torch.Tensor] = None):
        """``vbn_ref`` (norm="vbn"): the reference batch of inputs (n, z_dim); None draws
        VBN_REF_SIZE latents (raygan.gan.models.vbn.reference_latents) after the initialisation."""
        super().__init__()
        self.z_dim, self.vbn = z_dim, norm == "vbn"
        stages, s0 = _stages(image_size)
        ch = width * 2 ** (stages - 1)
        n_ref = VBN_REF_SIZE if vbn_ref is None else vbn_ref.shape[0]
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, ch, s0, 1, 0, bias=False),
                                   _g_norm(norm, ch, n_ref), nn.ReLU(True)]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), _g_norm(norm, ch // 2, n_ref),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)
        if self.vbn:
            if vbn_ref is None:
                vbn_ref = reference_latents(n_ref, z_dim)
            if tuple(vbn_ref.shape) != (n_ref, z_dim):
                raise ValueError(f"vbn_ref must be (n, z_dim={z_dim}), got {tuple(vbn_ref.shape)}")
            self.register_buffer("vbn_ref", vbn_ref.clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = z.view(z.shape[0], -1, 1, 1)
        if not self.vbn:
            return self.net(z)
        n = self.vbn_ref.shape[0]  # the reference rows go first through every layer, then are dropped
        ref = self.vbn_ref.to(z.dtype).view(n, -1, 1, 1)
        return self.net(torch.cat([ref, z]))[n:]


def _refinements(channels: int, depth: int) -> list[nn.Module]:
    """Seed 003's D - 1 extra convolutions of one stage: stride-1 3x3 conv + batch norm + LeakyReLU."""
    layers: list[nn.Module] = []
    for _ in range(depth - 1):
        layers += [nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels),
                   nn.LeakyReLU(0.2, True)]
    return layers


class DCGANDiscriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, width: int = 64, depth: int = 1, pacgan: int = 1,
                 minibatch_std: int = 0):
        super().__init__()
        if depth < 1:
            raise ValueError(f"discriminator depth must be >= 1, got {depth}")
        stages, s0 = _stages(image_size)
        ch, self.pacgan = width, pacgan
        layers: list[nn.Module] = [nn.Conv2d(channels * pacgan, ch, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        layers += _refinements(ch, depth)
        for _ in range(stages - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2),
                       nn.LeakyReLU(0.2, True)]
            ch *= 2
            layers += _refinements(ch, depth)
        layers.append(nn.Conv2d(ch + (1 if minibatch_std else 0), 1, s0, 1, 0))
        self.net = nn.Sequential(*with_std(layers, minibatch_std))
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B / pacgan,): one per PacGAN pack (per sample when pacgan is 1)."""
        return self.net(pac(x, self.pacgan)).flatten()
