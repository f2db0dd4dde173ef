"""Progressive growing of GANs (Karras et al., 2018), seed 000's PG-GAN, for square images up to 128 px.

What is kept from Karras et al. (their Section 2-4 and Table 2):
- per-resolution blocks 4, 8, ..., S; G's 4x4 block is latent -> dense -> 4x4 -> 3x3 conv, every further
  block is nearest 2x upsampling + two 3x3 convs; D mirrors it (two 3x3 convs + 2x2 average pooling);
  toRGB / fromRGB are 1x1 convs per resolution; LeakyReLU(0.2) everywhere;
- fade-in: while a new resolution r fades in, G's output is lerp(upsample(toRGB_{r/2}), toRGB_r, alpha),
  D's features are lerp(fromRGB_{r/2}(pool(x)), block_r(fromRGB_r(x)), alpha), and D's input image is
  blended between its r/2 and r versions with the same alpha (their "process_reals");
- pixel norm on the latent and after every conv of G (Section 4.2);
- minibatch standard deviation as one extra feature map before D's last block, in the paper's form
  (std over the whole minibatch per feature and pixel, averaged to one number; Section 3);
- equalized learning rate (Section 4.1): weights drawn N(0, 1) and scaled at run time by
  gain / sqrt(fan_in) (gain sqrt 2, 1 for toRGB and D's output).
Channel counts: width * min(8, S / r) at resolution r, i.e. Karras's 512-capped halving for width 64.

gan.pacgan (m, raygan.gan.models.d_levers): D's fromRGB layers take m packed images' channels; the
pooling and fade-in act per channel, so packing the input first is PacGAN's D. (Its minibatch standard
deviation is always on, as Karras et al.'s; gan.minibatch_std is for the families without one.)

Changes for raygan: the loss is raygan.gan.losses' (WGAN-GP is not used); G's image goes through tanh so it
has the [-1, 1] range of every other family; Adam's state is not reset when a resolution is added; one
batch size throughout. The current resolution and alpha are plain attributes set by ``set_progress``
(not weights: a rebuilt model starts at the full size with alpha 1). G always returns (C, S, S) images,
nearest-upsampled from the current resolution, and D average-pools whatever it is given down to the
current resolution, so the training loop and sampling never see the growing.

``pg_schedule`` is the growing schedule as a pure function of the step (exact resume): train.steps
split evenly over the resolutions; in every share but the first, the first pg_fade_fraction fades in.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from raygan.gan.models.d_levers import pac


def _is_power_of_two(n: int) -> bool:
    return n >= 1 and n & (n - 1) == 0


def pg_resolutions(start_size: int, image_size: int) -> list[int]:
    """The resolutions training visits: start_size, 2 start_size, ..., image_size."""
    if not _is_power_of_two(image_size) or image_size < 8:
        raise ValueError(f"PG-GAN needs a square image size that is a power of two >= 8, got "
                         f"{image_size}; resize with data.image_size (e.g. 32 for 28 px MNIST)")
    if not _is_power_of_two(start_size) or not 4 <= start_size <= image_size:
        raise ValueError(f"gan.pg_start_size must be a power of two between 4 and the image size "
                         f"{image_size}, got {start_size}")
    out = [start_size]
    while out[-1] < image_size:
        out.append(out[-1] * 2)
    return out


def pg_schedule(step: int, steps: int, resolutions: list[int], fade_fraction: float) -> tuple[int, float]:
    """(resolution, alpha) at 0-based ``step`` of a ``steps``-step run.

    Resolution i trains for steps [i steps / n, (i + 1) steps / n) (integer division, n resolutions);
    in every share but the first the first round(fade_fraction * share) steps fade the new block in,
    alpha = position / fade_steps from 0 towards 1, and the rest stabilises at alpha = 1.
    """
    n = len(resolutions)
    bounds = [i * steps // n for i in range(n + 1)]
    phase = max(i for i in range(n) if bounds[i] <= step)
    if phase == 0:
        return resolutions[0], 1.0
    fade = round(fade_fraction * (bounds[phase + 1] - bounds[phase]))
    pos = step - bounds[phase]
    return resolutions[phase], (pos / fade if pos < fade else 1.0)


class PixelNorm(nn.Module):
    """Karras et al. Section 4.2: each pixel's feature vector scaled to unit mean square."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class EqualizedConv2d(nn.Module):
    """Conv2d with the equalized learning rate: N(0, 1) weights, scaled by gain / sqrt(fan_in) per call."""

    def __init__(self, c_in: int, c_out: int, kernel: int, padding: int = 0, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.scale, self.padding = gain / math.sqrt(c_in * kernel * kernel), padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, padding=self.padding)


class EqualizedLinear(nn.Module):
    def __init__(self, n_in: int, n_out: int, gain: float = math.sqrt(2)):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.scale = gain / math.sqrt(n_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


def _lrelu() -> nn.Module:
    return nn.LeakyReLU(0.2)


def _channels(resolution: int, image_size: int, width: int) -> int:
    return width * min(8, image_size // resolution)


class _Progress:
    """The growing state shared by G and D: current resolution and fade-in alpha."""

    image_size: int

    def set_progress(self, resolution: int, alpha: float) -> None:
        if resolution not in self.sizes:
            raise ValueError(f"resolution {resolution} is not one of this model's {self.sizes}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        # At 4 px there is no smaller output to fade from.
        self.resolution, self.alpha = int(resolution), (1.0 if resolution == 4 else float(alpha))


class PGGenerator(_Progress, nn.Module):
    def __init__(self, z_dim: int, image_size: int, channels: int, width: int = 64):
        super().__init__()
        self.z_dim, self.image_size = z_dim, image_size
        self.sizes = pg_resolutions(4, image_size)
        ch = {r: _channels(r, image_size, width) for r in self.sizes}
        self.ch4 = ch[4]
        self.latent = nn.Sequential(PixelNorm(), EqualizedLinear(z_dim, ch[4] * 16, gain=math.sqrt(2) / 4))
        self.base = nn.Sequential(_lrelu(), PixelNorm(), EqualizedConv2d(ch[4], ch[4], 3, 1), _lrelu(),
                                  PixelNorm())
        self.blocks = nn.ModuleDict({str(r): nn.Sequential(
            nn.Upsample(scale_factor=2, mode="nearest"),
            EqualizedConv2d(ch[r // 2], ch[r], 3, 1), _lrelu(), PixelNorm(),
            EqualizedConv2d(ch[r], ch[r], 3, 1), _lrelu(), PixelNorm()) for r in self.sizes[1:]})
        self.to_rgb = nn.ModuleDict({str(r): EqualizedConv2d(ch[r], channels, 1, gain=1.0)
                                     for r in self.sizes})
        self.resolution, self.alpha = image_size, 1.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        res, alpha = self.resolution, self.alpha
        h = self.base(self.latent(z.flatten(1)).view(z.shape[0], self.ch4, 4, 4))
        low = None
        for r in self.sizes[1:]:
            if r > res:
                break
            if r == res and alpha < 1.0:
                low = self.to_rgb[str(r // 2)](h)
            h = self.blocks[str(r)](h)
        rgb = self.to_rgb[str(res)](h)
        if low is not None:
            rgb = torch.lerp(F.interpolate(low, scale_factor=2, mode="nearest"), rgb, alpha)
        rgb = torch.tanh(rgb)
        if res < self.image_size:
            rgb = F.interpolate(rgb, scale_factor=self.image_size // res, mode="nearest")
        return rgb


def minibatch_stddev(x: torch.Tensor) -> torch.Tensor:
    """Karras et al. Section 3: append the minibatch std (one number, averaged) as a feature map."""
    std = torch.sqrt(x.var(dim=0, unbiased=False) + 1e-8).mean()
    return torch.cat([x, std.expand(x.shape[0], 1, x.shape[2], x.shape[3])], dim=1)


class PGDiscriminator(_Progress, nn.Module):
    def __init__(self, image_size: int, channels: int, width: int = 64, pacgan: int = 1):
        super().__init__()
        self.image_size, self.pacgan = image_size, pacgan
        channels *= pacgan
        self.sizes = pg_resolutions(4, image_size)
        ch = {r: _channels(r, image_size, width) for r in self.sizes}
        self.from_rgb = nn.ModuleDict({str(r): nn.Sequential(EqualizedConv2d(channels, ch[r], 1), _lrelu())
                                       for r in self.sizes})
        self.blocks = nn.ModuleDict({str(r): nn.Sequential(
            EqualizedConv2d(ch[r], ch[r], 3, 1), _lrelu(),
            EqualizedConv2d(ch[r], ch[r // 2], 3, 1), _lrelu(), nn.AvgPool2d(2)) for r in self.sizes[1:]})
        self.final = nn.Sequential(EqualizedConv2d(ch[4] + 1, ch[4], 3, 1), _lrelu(), nn.Flatten(),
                                   EqualizedLinear(ch[4] * 16, ch[4]), _lrelu(),
                                   EqualizedLinear(ch[4], 1, gain=1.0))
        self.resolution, self.alpha = image_size, 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res, alpha, x = self.resolution, self.alpha, pac(x, self.pacgan)
        if x.shape[-1] != res:  # the real batch (and G's upsampled output) back to the current size
            x = F.avg_pool2d(x, x.shape[-1] // res)
        if alpha < 1.0:  # fading resolution res in (set_progress keeps alpha = 1 at 4 px)
            low = F.avg_pool2d(x, 2)
            # The image itself is blended too (Karras's process_reals), then the two feature paths.
            x = torch.lerp(F.interpolate(low, scale_factor=2, mode="nearest"), x, alpha)
            h = torch.lerp(self.from_rgb[str(res // 2)](low),
                           self.blocks[str(res)](self.from_rgb[str(res)](x)), alpha)
        elif res > 4:
            h = self.blocks[str(res)](self.from_rgb[str(res)](x))
        else:
            h = self.from_rgb["4"](x)
        for r in reversed(self.sizes[1:]):
            if r < res:
                h = self.blocks[str(r)](h)
        return self.final(minibatch_stddev(h)).flatten()
