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
"""
from __future__ import annotations

import torch
import torch.nn as nn

G_NORMS = ("batch", "layer")


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
    elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _g_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)  # per-sample statistics over (C, H, W): seed 004 eq. (4)-(5)
    raise ValueError(f"unknown generator norm {kind!r}; allowed: {', '.join(G_NORMS)}")


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, image_size: int, channels: int, width: int = 64,
                 norm: str = "batch"):
        super().__init__()
        self.z_dim = z_dim
        stages, s0 = _stages(image_size)
        ch = width * 2 ** (stages - 1)
        layers: list[nn.Module] = [nn.ConvTranspose2d(z_dim, ch, s0, 1, 0, bias=False),
                                   _g_norm(norm, ch), nn.ReLU(True)]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), _g_norm(norm, ch // 2),
                       nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    def __init__(self, image_size: int, channels: int, width: int = 64):
        super().__init__()
        stages, s0 = _stages(image_size)
        ch = width
        layers: list[nn.Module] = [nn.Conv2d(channels, ch, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        for _ in range(stages - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2),
                       nn.LeakyReLU(0.2, True)]
            ch *= 2
        layers.append(nn.Conv2d(ch, 1, s0, 1, 0))
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()
