"""What a discriminator may look at across samples, for mode coverage: PacGAN packing (gan.pacgan) and
the minibatch standard-deviation layer (gan.minibatch_std).

- PacGAN (Lin, Khetan, Fanti and Oh, "PacGAN: The power of two samples in generative adversarial
  networks", 2018, Section 3): D judges m samples at once, all real or all fake, concatenated along
  their channels (or features); its input layer is m times as wide and it returns one logit per pack,
  so a batch of B samples gives B / m logits. A generator that covers few modes makes packs whose
  samples look alike, which D learns to tell from real packs. (raygan also says "pack" for P members
  trained as one vectorised model, raygan.gan.pack; the two are unrelated: this one is always "PacGAN
  packing", gan.pacgan = m.) :func:`pac` groups consecutive samples: the minibatch is a random draw, so
  they are m independent samples.
- Minibatch standard deviation (Karras, Aila, Laine and Lehtinen, "Progressive growing of GANs",
  2018, Section 3; groups as in their later StyleGAN code): before D's last layer, the standard
  deviation of every feature over a group of ``group`` samples, averaged to one number per group, is
  appended to each of the group's samples as one more channel (or feature). A collapsed generator's
  groups have a small one, which D sees. raygan's groups are consecutive samples of D's batch (after
  PacGAN packing, of packs), so gan.minibatch_std must divide it.

Both are off by default (m = 1, group 0), and off builds the models raygan always built, layer for layer
and with the same seeded initialisation. The pack's forms (member-first, channels-last) are
raygan.gan.pack_layers', equal to these up to float rounding.
"""
from __future__ import annotations

import torch
import torch.nn as nn

STD_EPS = 1e-8  # inside the square root, as Karras et al.'s


def pac(x: torch.Tensor, m: int) -> torch.Tensor:
    """Samples ``x`` (B, C, ...) as B / m packs of m consecutive samples, (B / m, m * C, ...): each
    pack's channels (features) are its first sample's, then its second's, ..."""
    if m == 1:
        return x
    if x.shape[0] % m:
        raise ValueError(f"PacGAN packs of {m} need a batch divisible by {m}, got {x.shape[0]} samples")
    return x.reshape(x.shape[0] // m, m * x.shape[1], *x.shape[2:])


def group_std(x: torch.Tensor, group: int, start: int) -> torch.Tensor:
    """Karras et al.'s statistic of ``x`` (..., B, *features) with the samples at dimension ``start``:
    per group of ``group`` consecutive samples, the standard deviation of every feature over the group,
    averaged over the features; (..., B), each sample given its group's value."""
    lead, b = x.shape[:start], x.shape[start]
    if b % group:
        raise ValueError(f"minibatch standard deviation in groups of {group} needs a batch divisible by "
                         f"{group}, got {b}")
    y = x.float().reshape(*lead, b // group, group, -1)  # fp32 statistics whatever the autocast
    dev = y - y.mean(dim=-2, keepdim=True)
    std = torch.sqrt(dev.square().mean(dim=-2) + STD_EPS).mean(dim=-1)  # (..., B / group)
    return std.repeat_interleave(group, dim=-1).to(x.dtype)


class MinibatchStd(nn.Module):
    """Appends :func:`group_std` to every sample as one more channel (images (B, C, H, W): a constant
    map) or feature ((B, F)). No parameters."""

    def __init__(self, group: int):
        super().__init__()
        if group < 2:
            raise ValueError(f"a minibatch standard deviation needs groups of 2 or more, got {group}")
        self.group = group

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = group_std(x, self.group, 0)
        extra = s.view(-1, *([1] * (x.dim() - 1))).expand(x.shape[0], 1, *x.shape[2:])
        return torch.cat([x, extra], dim=1)

    def extra_repr(self) -> str:
        return f"group={self.group}"


def with_std(layers: list[nn.Module], group: int) -> list[nn.Module]:
    """A discriminator's layers with a MinibatchStd in front of its last one (group 0: as they are).
    The caller widens that last layer by one input channel."""
    return layers if not group else layers[:-1] + [MinibatchStd(group), layers[-1]]


__all__ = ["MinibatchStd", "STD_EPS", "group_std", "pac", "with_std"]
