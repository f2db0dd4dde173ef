"""GAN families (generator + discriminator pairs) in an explicit registry.

`build_gan(gan_cfg, sample_shape)` returns (G, D); every G maps (B, z_dim) latents to (B, *sample_shape)
and every D maps a batch of samples to (B,) logits.
"""
from __future__ import annotations

import torch.nn as nn

from ..config import ConfigError, GANConfig
from .dcgan import DCGANDiscriminator, DCGANGenerator
from .fc import FCDiscriminator, FCGenerator
from .mlp2d import GridDiscriminator, GridGenerator


def _mlp2d(cfg: GANConfig, shape: tuple[int, ...]):
    if shape != (2,):
        raise ConfigError(f"gan.family=mlp2d models 2D points, but the data has shape {shape}")
    return GridGenerator(z_dim=cfg.z_dim), GridDiscriminator()


def _dcgan(cfg: GANConfig, shape: tuple[int, ...]):
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"gan.family=dcgan needs square images (C, H, H), got {shape}")
    channels, size = shape[0], shape[1]
    return (DCGANGenerator(z_dim=cfg.z_dim, image_size=size, channels=channels, width=cfg.width),
            DCGANDiscriminator(image_size=size, channels=channels, width=cfg.width))


def _fc(cfg: GANConfig, shape: tuple[int, ...]):
    return (FCGenerator(z_dim=cfg.z_dim, out_shape=shape, alpha=cfg.alpha, dropout=cfg.dropout),
            FCDiscriminator(in_shape=shape, alpha=cfg.alpha, dropout=cfg.dropout))


GAN_FAMILIES = {"mlp2d": _mlp2d, "dcgan": _dcgan, "fc": _fc}


def build_gan(cfg: GANConfig, sample_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    return GAN_FAMILIES[cfg.family](cfg, tuple(sample_shape))
