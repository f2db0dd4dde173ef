"""Seed 003's class-conditional DCGAN ("CCGAN", after Mirza & Osindero, 2014): one model, every class.

Section 3.1 of seed 003, kept as written:
- G(z, y): the one-hot label is "concatenated into the Dense layer in the generator", i.e. joined to the
  latent; here the input of the DCGAN generator is [z, one_hot(y)] (z_dim + n_classes channels of 1x1).
- D(x, y): "the labels are processed first by a Dense layer with 784 nodes and then reshaped into the
  image dimensions and concatenated to the original input": a dense layer of a one-hot label is a
  learned H x W map per class (the layer's bias adds nothing a per-class map cannot hold), written as
  ``nn.Embedding(n_classes, H * W)``; the map joins the image as one extra input channel of the DCGAN
  discriminator. It keeps nn.Embedding's N(0, 1) initialisation, the scale of the image channels: with
  DCGAN's N(0, 0.02) the label channel starts almost invisible and D learned to use it far later (a
  two-class toy then trained both classes to the same images for hundreds of steps).

gan.g_norm=vbn: the reference batch of the body is [z, one_hot(y)] with the classes in turn
(raygan.gan.models.vbn.reference_latents). gan.d_depth deepens the body of D as DCGAN's, and its
gan.pacgan and gan.minibatch_std are the body's: a PacGAN pack holds m samples each with its label map.

y holds int64 class indices in [0, n_classes). ``ConditionedGenerator`` fixes the class, so that code
written for unconditional generators (``G(z)``, ``synth.generate``) samples one class unchanged.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from raygan.gan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from raygan.gan.models.vbn import VBN_REF_SIZE, reference_latents


class CCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, n_classes: int, image_size: int, channels: int, width: int = 64,
                 norm: str = "batch"):
        super().__init__()
        self.z_dim, self.n_classes = z_dim, n_classes
        ref = reference_latents(VBN_REF_SIZE, z_dim, n_classes) if norm == "vbn" else None
        self.body = DCGANGenerator(z_dim=z_dim + n_classes, image_size=image_size, channels=channels,
                                   width=width, norm=norm, vbn_ref=ref)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        onehot = F.one_hot(y, self.n_classes).to(z.dtype)
        return self.body(torch.cat([z, onehot], dim=1))


class CCGANDiscriminator(nn.Module):
    def __init__(self, n_classes: int, image_size: int, channels: int, width: int = 64, depth: int = 1,
                 pacgan: int = 1, minibatch_std: int = 0):
        super().__init__()
        self.n_classes, self.image_size = n_classes, image_size
        self.label_map = nn.Embedding(n_classes, image_size * image_size)
        self.body = DCGANDiscriminator(image_size=image_size, channels=channels + 1, width=width, depth=depth,
                                       pacgan=pacgan, minibatch_std=minibatch_std)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        maps = self.label_map(y).to(x.dtype).view(x.shape[0], 1, self.image_size, self.image_size)
        return self.body(torch.cat([x, maps], dim=1))


class ConditionedGenerator(nn.Module):
    """A conditional generator with its class fixed to ``condition``: forward(z) = G(z, [condition]*B)."""

    def __init__(self, generator: nn.Module, condition: int):
        super().__init__()
        n_classes = generator.n_classes
        if not 0 <= int(condition) < n_classes:
            raise ValueError(f"condition {condition} is not a class of this generator; it has "
                             f"{n_classes} classes (0..{n_classes - 1})")
        self.generator, self.condition = generator, int(condition)
        self.z_dim, self.n_classes = generator.z_dim, n_classes

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        y = torch.full((z.shape[0],), self.condition, dtype=torch.int64, device=z.device)
        return self.generator(z, y)
