"""GAN families (generator + discriminator pairs) in an explicit registry.

`build_gan(gan_cfg, sample_shape, n_classes=None)` returns (G, D). Every unconditional G maps (B, z_dim)
latents to (B, *sample_shape) and every D maps a batch of samples to (B,) logits ((B / m,) with
gan.pacgan = m: one per PacGAN pack, raygan.gan.models.d_levers). The conditional
families (``CONDITIONAL``: ccgan, biggan) take int64 class indices too, G(z, y) and D(x, y), and need
``n_classes``. The progressive family (pggan) also has ``set_progress(resolution, alpha)`` on G and D.
``UNPACKABLE`` families train one member per pack: pggan's graph grows as it trains; biggan's spectral
norm, conditional batch norm and self-attention have no grouped form in raygan.gan.pack_layers.

What a family is (conditional, progressive, packable, ...) is raygan.config.families' table, read by the
config's checks before any work; CONDITIONAL, PROGRESSIVE and UNPACKABLE here are its names, kept for
the stages that import them from the models.
"""
from __future__ import annotations

from typing import Optional

import torch.nn as nn

from raygan.config import ConfigError, GANConfig
from raygan.config.families import CONDITIONAL, PROGRESSIVE, UNPACKABLE
from raygan.gan.models.biggan import BigGANDiscriminator, BigGANGenerator
from raygan.gan.models.ccgan import CCGANDiscriminator, CCGANGenerator, ConditionedGenerator
from raygan.gan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from raygan.gan.models.fc import FCDiscriminator, FCGenerator
from raygan.gan.models.mlp2d import GridDiscriminator, GridGenerator
from raygan.gan.models.pggan import PGDiscriminator, PGGenerator, pg_resolutions, pg_schedule


def _square(cfg: GANConfig, shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(f"gan.family={cfg.family} needs square images (C, H, H), got {shape}")
    return shape[0], shape[1]


def _mlp2d(cfg: GANConfig, shape: tuple[int, ...], n_classes: Optional[int]):
    if shape != (2,):
        raise ConfigError(f"gan.family=mlp2d models 2D points, but the data has shape {shape}")
    return GridGenerator(z_dim=cfg.z_dim), GridDiscriminator(pacgan=cfg.pacgan, minibatch_std=cfg.minibatch_std)


def _dcgan(cfg: GANConfig, shape: tuple[int, ...], n_classes: Optional[int]):
    channels, size = _square(cfg, shape)
    return (DCGANGenerator(z_dim=cfg.z_dim, image_size=size, channels=channels, width=cfg.width,
                           norm=cfg.g_norm),
            DCGANDiscriminator(image_size=size, channels=channels, width=cfg.width, depth=cfg.d_depth,
                               pacgan=cfg.pacgan, minibatch_std=cfg.minibatch_std))


def _classes(cfg: GANConfig, n_classes: Optional[int]) -> int:
    if n_classes is None or int(n_classes) < 1:
        raise ConfigError(f"gan.family={cfg.family} is class-conditional and needs the number of classes: "
                          f"build_gan(cfg, shape, n_classes=K) (got n_classes={n_classes})")
    return int(n_classes)


def _ccgan(cfg: GANConfig, shape: tuple[int, ...], n_classes: Optional[int]):
    channels, size = _square(cfg, shape)
    k = _classes(cfg, n_classes)
    return (CCGANGenerator(z_dim=cfg.z_dim, n_classes=k, image_size=size, channels=channels,
                           width=cfg.width, norm=cfg.g_norm),
            CCGANDiscriminator(n_classes=k, image_size=size, channels=channels, width=cfg.width,
                               depth=cfg.d_depth, pacgan=cfg.pacgan, minibatch_std=cfg.minibatch_std))


def _biggan(cfg: GANConfig, shape: tuple[int, ...], n_classes: Optional[int]):
    channels, size = _square(cfg, shape)
    k = _classes(cfg, n_classes)
    kwargs = {"n_classes": k, "image_size": size, "channels": channels, "width": cfg.width,
              "attention_resolution": cfg.attention_resolution}
    try:
        return BigGANGenerator(z_dim=cfg.z_dim, **kwargs), BigGANDiscriminator(**kwargs)
    except ValueError as err:  # a size, latent or attention resolution this model cannot have
        raise ConfigError(str(err)) from err


def _pggan(cfg: GANConfig, shape: tuple[int, ...], n_classes: Optional[int]):
    channels, size = _square(cfg, shape)
    try:
        pg_resolutions(cfg.pg_start_size, size)
    except ValueError as err:
        raise ConfigError(str(err)) from err
    return (PGGenerator(z_dim=cfg.z_dim, image_size=size, channels=channels, width=cfg.width),
            PGDiscriminator(image_size=size, channels=channels, width=cfg.width, pacgan=cfg.pacgan))


def _fc(cfg: GANConfig, shape: tuple[int, ...], n_classes: Optional[int]):
    return (FCGenerator(z_dim=cfg.z_dim, out_shape=shape, alpha=cfg.alpha, dropout=cfg.dropout),
            FCDiscriminator(in_shape=shape, alpha=cfg.alpha, dropout=cfg.dropout, pacgan=cfg.pacgan,
                            minibatch_std=cfg.minibatch_std))


# One builder per gan.family of raygan.config.families.FAMILIES (tests/unit/test_families.py holds the two
# to the same names).
GAN_FAMILIES = {"mlp2d": _mlp2d, "dcgan": _dcgan, "ccgan": _ccgan, "pggan": _pggan, "fc": _fc,
                "biggan": _biggan}


def build_gan(cfg: GANConfig, sample_shape: tuple[int, ...],
              n_classes: Optional[int] = None) -> tuple[nn.Module, nn.Module]:
    """A fresh (G, D) of ``cfg.family`` for samples of ``sample_shape``; ``n_classes`` is required by
    the conditional families and ignored by the others."""
    return GAN_FAMILIES[cfg.family](cfg, tuple(sample_shape), n_classes)


__all__ = ["CONDITIONAL", "PROGRESSIVE", "UNPACKABLE", "GAN_FAMILIES", "build_gan", "ConditionedGenerator",
           "pg_resolutions", "pg_schedule"]
