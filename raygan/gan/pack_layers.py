"""Packed layers: P copies of one GAN's modules evaluated as one batched model (for raygan.gan.pack).

A Stack (raygan.gan.stack) holds P modules' parameters and buffers stacked member-first, under their
state-dict names; :func:`packed_forward` runs a generator or discriminator of any packable family on member-first
inputs by walking the solo module's layers and applying each as a grouped operation:

- activations are member-first: (P, B, F) for flat features and channels-last (P, B, H, W, C) for
  images, so that every convolution is one batched matrix product (``torch.bmm``) over the P members:
  Conv2d is an im2col (a strided view, copied once) times the weights, ConvTranspose2d the weights
  times the input followed by col2im (its adjoint); Linear is ``baddbmm``;
- BatchNorm is the native batch norm over the P*C member-channels of a channels-last copy, so every
  member keeps its own batch statistics and its own running statistics (updated in place in the
  stacked buffers); GroupNorm(1, C) (seed 004's layer norm) normalises each (member, sample); virtual
  batch norm (seed 003) takes each member's reference rows, which its generator puts in front;
- Dropout draws each member's mask from that member's own generator, with the call train_gan's
  dropout makes (``bernoulli_`` on a tensor of the solo shape), so a member's masks are the ones it
  would draw training alone from the same generator state;
- elementwise layers (ReLU, LeakyReLU, Tanh, Sigmoid) are called as they are, Flatten flattens each
  member's samples in the solo order (the downstream classifiers' heads, raygan.classifiers.pack);
- a discriminator's PacGAN packing and minibatch standard deviation (raygan.gan.models.d_levers) work
  within each member's own batch: its consecutive samples' channels joined (:func:`pac_members`), its
  groups' statistic appended.

Per member, the arithmetic is the solo model's up to float rounding (a matrix product sums in another
order than oneDNN's convolution). Nothing mixes members, and a member's numbers do not depend on the
pack's other members or size, bit for bit on CPU: CPU kernels round differently in the vectorised bulk
of a tensor and its scalar tail, which holds the last member's numbers, so transcendental elementwise
work (tanh, the losses) runs on sizes padded to a multiple of ALIGN, and sums over a member's rows
(bias and affine gradients) are batched matrix products (``member_sum``), not reductions vectorised
across the members. The progressive family (pggan) is not packable: its growing schedule changes which
layers run.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from raygan.gan.models.ccgan import CCGANDiscriminator, CCGANGenerator
from raygan.gan.models.d_levers import MinibatchStd, group_std
from raygan.gan.models.dcgan import DCGANDiscriminator, DCGANGenerator
from raygan.gan.models.fc import FCDiscriminator, FCGenerator
from raygan.gan.models.mlp2d import GridDiscriminator, GridGenerator, Maxout
from raygan.gan.models.vbn import VirtualBatchNorm2d, mix, normalise
from raygan.gan.stack import Context


def _windows(x: torch.Tensor, k: int, s: int, p: int) -> tuple[torch.Tensor, int, int]:
    """(P, B, H, W, C) -> the (P, B, Ho, Wo, k, k, C) view of its zero-padded k x k windows."""
    xp = F.pad(x, (0, 0, p, p, p, p)) if p else x.contiguous()
    P, B, Hp, Wp, C = xp.shape
    Ho, Wo = (Hp - k) // s + 1, (Wp - k) // s + 1
    sp, sb, sh, sw, sc = xp.stride()
    return xp.as_strided((P, B, Ho, Wo, k, k, C), (sp, sb, s * sh, s * sw, sh, sw, sc)), Ho, Wo


def _col2im(cols: torch.Tensor, size: tuple, k: int, s: int, p: int, Ho: int, Wo: int) -> torch.Tensor:
    """The adjoint of im2col: (P, B*Ho*Wo, k*k*C) window values summed into (P, B, H, W, C)."""
    P, B, H, W, C = size
    out = cols.new_zeros(P, B, H + 2 * p, W + 2 * p, C)
    c = cols.reshape(P, B, Ho, Wo, k, k, C)
    for i in range(k):
        for j in range(k):
            out[:, :, i:i + s * (Ho - 1) + 1:s, j:j + s * (Wo - 1) + 1:s] += c[:, :, :, :, i, j]
    return out[:, :, p:p + H, p:p + W] if p else out


class _Im2col(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, k, s, p):
        win, Ho, Wo = _windows(x, k, s, p)
        ctx.geometry = (tuple(x.shape), k, s, p, Ho, Wo)
        P, B, C = x.shape[0], x.shape[1], x.shape[-1]
        return win.reshape(P, B * Ho * Wo, k * k * C)

    @staticmethod
    def backward(ctx, grad):
        return _col2im(grad, *ctx.geometry), None, None, None


class _Col2im(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cols, size, k, s, p, Ho, Wo):
        ctx.geometry = (k, s, p)
        return _col2im(cols, size, k, s, p, Ho, Wo)

    @staticmethod
    def backward(ctx, grad):
        return (_Im2col.apply(grad, *ctx.geometry),) + (None,) * 6


def _square(layer: nn.Module) -> tuple[int, int, int]:
    k, s, p = layer.kernel_size, layer.stride, layer.padding
    if (layer.groups != 1 or layer.dilation != (1, 1) or len({*k}) != 1 or len({*s}) != 1
            or len({*p}) != 1 or getattr(layer, "output_padding", (0, 0)) != (0, 0)
            or layer.padding_mode != "zeros"):
        raise TypeError(f"a pack runs square, ungrouped, undilated convolutions only, not {layer}")
    return k[0], s[0], p[0]


def _conv(layer: nn.Conv2d, prefix: str, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    k, s, p = _square(layer)
    w = ctx.stack[prefix + "weight"]  # (P, out, C, k, k)
    P, B, H, W, C = x.shape
    out = w.shape[1]
    if p == 0 and k == H == W:  # the window is the whole map: a linear layer
        cols, Ho, Wo = x.reshape(P, B, H * W * C), 1, 1
    else:
        Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        cols = _Im2col.apply(x, k, s, p)
    wm = w.permute(0, 3, 4, 2, 1).reshape(P, k * k * C, out)
    return _matmul(cols, wm, ctx.stack[prefix + "bias"] if layer.bias is not None else None
                   ).view(P, B, Ho, Wo, out)


def member_sum(t: torch.Tensor) -> torch.Tensor:
    """(P, M, K) -> (P, K), summed over M member by member with a batched matrix product: a plain
    ``sum(1)`` vectorises across the members' coalesced outputs, so its rounding of the last member's
    outputs would depend on how many members the pack holds."""
    if t.shape[0] == 1:  # torch.bmm of a single matrix takes another kernel, which rounds differently
        return member_sum(torch.cat([t, torch.zeros_like(t)]))[:1]
    return torch.bmm(t.new_ones(t.shape[0], 1, t.shape[1]), t).squeeze(1)


class _Affine(torch.autograd.Function):
    """x (P, M, C) * w (P, C) + b (P, C), member-wise; w may be None (a bias)."""

    @staticmethod
    def forward(ctx, x, w, b):
        ctx.save_for_backward(x if w is not None else None, w)
        y = x if w is None else x * w.unsqueeze(1)
        return y + b.unsqueeze(1)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        if w is None:
            return grad, None, member_sum(grad)
        return grad * w.unsqueeze(1), member_sum(grad * x), member_sum(grad)


class _Dot(torch.autograd.Function):
    """x (P, M, K) . w (P, K) -> (P, M): a layer with one output (a discriminator's logit); as a
    matrix product its backward would be an outer product with K = 1, slow in batched gemm."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return (x * w.unsqueeze(1)).sum(2)

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors  # under bf16 autocast x may be bf16 (after a batch norm), w and grad fp32
        return grad.unsqueeze(2) * w.unsqueeze(1), torch.bmm(grad.unsqueeze(1), x.to(grad.dtype)).squeeze(1)


def _matmul(x: torch.Tensor, w: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """(P, M, K) @ (P, K, O) (+ bias (P, O))."""
    y = _Dot.apply(x, w.squeeze(2)).unsqueeze(2) if w.shape[2] == 1 else torch.bmm(x, w)
    return y if bias is None else _Affine.apply(y, None, bias)


def _conv_transpose(layer: nn.ConvTranspose2d, prefix: str, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    k, s, p = _square(layer)
    w = ctx.stack[prefix + "weight"]  # (P, C, out, k, k)
    P, B, H, W, C = x.shape
    out = w.shape[2]
    cols = torch.bmm(x.reshape(P, B * H * W, C), w.permute(0, 1, 3, 4, 2).reshape(P, C, k * k * out))
    if p == 0 and H == W == 1:  # from a 1 x 1 map: the columns are the output
        y = cols.view(P, B, k, k, out)
    else:
        y = _Col2im.apply(cols, (P, B, (H - 1) * s - 2 * p + k, (W - 1) * s - 2 * p + k, out), k, s, p, H, W)
    return y if layer.bias is None else \
        _Affine.apply(y.reshape(P, -1, out), None, ctx.stack[prefix + "bias"]).view(y.shape)


def _linear(layer: nn.Linear, prefix: str, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    return _matmul(x, ctx.stack[prefix + "weight"].transpose(1, 2),
                   ctx.stack[prefix + "bias"] if layer.bias is not None else None)


def _maxout(layer: Maxout, prefix: str, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    y = _linear(layer.linear, prefix + "linear.", ctx, x)
    return y.view(*x.shape[:2], layer.out_features, layer.pool_size).max(dim=3).values


def _batch_norm(layer: nn.modules.batchnorm._BatchNorm, prefix: str, ctx: Context,
                x: torch.Tensor) -> torch.Tensor:
    """Per (member, channel) statistics: the native batch norm over P*C channels of a channels-last
    (B, *spatial, P, C) copy (channels-last batch norm is the fast one on CPUs)."""
    if not (layer.training and layer.track_running_stats and layer.affine) or layer.momentum is None:
        raise TypeError(f"a pack trains batch norm with running statistics and momentum, not {layer}")
    P, C = x.shape[0], x.shape[-1]
    inter = x.movedim(0, -2).contiguous()
    inter = inter.view(*inter.shape[:-2], P * C).movedim(-1, 1)  # (B, P*C, *spatial), channels-last
    ctx.stack[prefix + "num_batches_tracked"].add_(1)
    y = F.batch_norm(inter, ctx.stack[prefix + "running_mean"].view(-1),
                     ctx.stack[prefix + "running_var"].view(-1), ctx.stack[prefix + "weight"].view(-1),
                     ctx.stack[prefix + "bias"].view(-1), True, layer.momentum, layer.eps)
    y = y.movedim(1, -1)
    return y.reshape(*y.shape[:-1], P, C).movedim(-2, 0).contiguous()


def _group_norm(layer: nn.GroupNorm, prefix: str, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    if layer.num_groups != 1 or not layer.affine:
        raise TypeError(f"a pack runs GroupNorm(1, C) with an affine map only, not {layer}")
    P, B, C = x.shape[0], x.shape[1], x.shape[-1]
    y = F.layer_norm(x.reshape(P, B, -1), (x[0, 0].numel(),), eps=layer.eps)
    return _Affine.apply(y.view(P, -1, C), ctx.stack[prefix + "weight"], ctx.stack[prefix + "bias"]
                         ).view(x.shape)


def _virtual_batch_norm(layer: VirtualBatchNorm2d, prefix: str, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """VirtualBatchNorm2d per member on (P, n_ref + B, H, W, C): the sums over a member's reference
    rows and over each sample's positions are member_sum's batched matrix products."""
    n, (P, M, H, W, C) = layer.n_ref, x.shape
    xf = x.float().reshape(P, M, H * W, C)  # fp32 statistics, as the solo layer's
    both = torch.cat([xf, xf.square()], dim=3)  # (P, M, HW, 2C): values and squares
    ref = member_sum(both[:, :n].reshape(P, n * H * W, 2 * C)) / (n * H * W)  # (P, 2C)
    own = member_sum(both[:, n:].reshape(P * (M - n), H * W, 2 * C)).view(P, M - n, 2 * C) / (H * W)
    stats = torch.cat([ref.unsqueeze(1).expand(P, n, 2 * C), mix(ref.unsqueeze(1), own, n)], dim=1)
    mean, mean_sq = stats.unsqueeze(2).split(C, dim=3)  # (P, M, 1, C) each
    y = normalise(xf, mean, mean_sq, layer.eps)
    y = _Affine.apply(y.view(P, -1, C), ctx.stack[prefix + "weight"], ctx.stack[prefix + "bias"])
    return y.view(x.shape).to(x.dtype)


def _dropout(layer: nn.Dropout, prefix: str, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """train_gan's dropout per member (bernoulli_ mask, scaled by 1 / (1 - p)), each from its own
    generator."""
    if not layer.training or layer.p == 0:
        return x
    if layer.p == 1:
        return x * 0
    noise = torch.empty_like(x)
    for member, rng in zip(noise, ctx.dropout_rngs):
        member.bernoulli_(1 - layer.p, generator=rng)
    return x * noise.div_(1 - layer.p)


# CPU kernels run the bulk of a tensor through vector code (exp, tanh: SLEEF) and the last few elements
# through scalar code, which rounds transcendental functions differently; those elements belong to the
# last member, so its numbers would depend on the pack's size. Transcendental elementwise work runs on
# a size that is a multiple of ALIGN elements (two AVX-512 vectors of floats, and then some), so that
# no element takes the scalar path.
ALIGN = 64


def aligned(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn`` (elementwise) of ``x``, computed on a copy padded to a multiple of ALIGN elements."""
    pad = -x.numel() % ALIGN
    if not pad:
        return fn(x)
    return fn(F.pad(x.reshape(-1), (0, pad)))[:x.numel()].view(x.shape)


def with_ghosts(x: torch.Tensor) -> torch.Tensor:
    """``x`` (P, ...) with zero members appended until its size is a multiple of ALIGN (for members'
    losses, computed member by member: appended members do not change the real ones' numbers)."""
    q = x.shape[0]
    while q * x[0].numel() % ALIGN:
        q += 1
    return x if q == x.shape[0] else torch.cat([x, x.new_zeros(q - x.shape[0], *x.shape[1:])])


def pac_members(x: torch.Tensor, m: int) -> torch.Tensor:
    """raygan.gan.models.d_levers.pac member by member: (P, B, F) -> (P, B / m, m F), channels-last
    images (P, B, H, W, C) -> (P, B / m, H, W, m C), the channels in the solo order (sample, channel)."""
    if m == 1:
        return x
    P, B = x.shape[:2]
    if x.dim() == 3:
        return x.reshape(P, B // m, m * x.shape[2])
    H, W, C = x.shape[2:]
    return x.reshape(P, B // m, m, H, W, C).permute(0, 1, 3, 4, 2, 5).reshape(P, B // m, H, W, m * C)


def _minibatch_std(layer: MinibatchStd, prefix: str, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """The group statistic of each member's own batch (P, B, ...), appended as the last channel or
    feature (channels-last)."""
    s = group_std(x, layer.group, 1)  # (P, B)
    extra = s.view(*s.shape, *([1] * (x.dim() - 2))).expand(*x.shape[:-1], 1)
    return torch.cat([x, extra], dim=-1)


def _flatten(layer: nn.Flatten, prefix: str, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """(P, B, ...) -> (P, B, F) in the solo order: channels first for channels-last images (the
    packed downstream classifiers' heads, raygan.classifiers.pack)."""
    if (layer.start_dim, layer.end_dim) != (1, -1):
        raise TypeError(f"a pack flattens whole samples only, not {layer}")
    if x.dim() == 5:
        x = x.permute(0, 1, 4, 2, 3)
    return x.reshape(x.shape[0], x.shape[1], -1)


def _exact(layer: nn.Module, prefix: str, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    return layer(x)  # ReLU, LeakyReLU: exactly rounded on either path


def _transcendental(layer: nn.Module, prefix: str, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    return aligned(layer, x)


LAYERS: dict[type, Callable] = {
    nn.Conv2d: _conv, nn.ConvTranspose2d: _conv_transpose, nn.Linear: _linear, Maxout: _maxout,
    nn.BatchNorm1d: _batch_norm, nn.BatchNorm2d: _batch_norm, nn.GroupNorm: _group_norm,
    VirtualBatchNorm2d: _virtual_batch_norm, MinibatchStd: _minibatch_std,
    nn.Dropout: _dropout, nn.ReLU: _exact, nn.LeakyReLU: _exact, nn.Tanh: _transcendental,
    nn.Sigmoid: _transcendental, nn.Flatten: _flatten,
}


def _sequential(seq: nn.Sequential, prefix: str, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    for name, layer in seq.named_children():
        run = LAYERS.get(type(layer))
        if run is None:
            raise TypeError(f"a pack cannot vectorise {type(layer).__name__} layers ({prefix}{name})")
        x = run(layer, f"{prefix}{name}.", ctx, x)
    return x


def _dcgan_g(m: DCGANGenerator, prefix: str, ctx: Context, z, y=None) -> torch.Tensor:
    if not m.vbn:
        return _sequential(m.net, prefix + "net.", ctx, z.view(z.shape[0], z.shape[1], 1, 1, -1))
    ref = ctx.stack[prefix + "vbn_ref"].to(z.dtype)  # (P, n, z_dim): each member's reference rows first
    h = torch.cat([ref, z], dim=1)
    return _sequential(m.net, prefix + "net.", ctx, h.view(h.shape[0], h.shape[1], 1, 1, -1))[:, ref.shape[1]:]


def _dcgan_d(m: DCGANDiscriminator, prefix: str, ctx: Context, x, y=None) -> torch.Tensor:
    return _sequential(m.net, prefix + "net.", ctx, pac_members(x, m.pacgan)).reshape(x.shape[0], -1)


def _ccgan_g(m: CCGANGenerator, prefix: str, ctx: Context, z, y) -> torch.Tensor:
    onehot = F.one_hot(y, m.n_classes).to(z.dtype)
    return _dcgan_g(m.body, prefix + "body.", ctx, torch.cat([z, onehot], dim=2))


def _ccgan_d(m: CCGANDiscriminator, prefix: str, ctx: Context, x, y) -> torch.Tensor:
    table = ctx.stack[prefix + "label_map.weight"]  # (P, K, H*W)
    rows = torch.arange(table.shape[0], device=y.device).unsqueeze(1)
    maps = table[rows, y].to(x.dtype).view(*x.shape[:4], 1)
    return _dcgan_d(m.body, prefix + "body.", ctx, torch.cat([x, maps], dim=4))


def _grid_g(m: GridGenerator, prefix: str, ctx: Context, z, y=None) -> torch.Tensor:
    return _sequential(m.net, prefix + "net.", ctx, z) + ctx.stack[prefix + "center"].unsqueeze(1)


def _grid_d(m: GridDiscriminator, prefix: str, ctx: Context, x, y=None) -> torch.Tensor:
    x = x - ctx.stack[prefix + "center"].unsqueeze(1)
    return _sequential(m.net, prefix + "net.", ctx, pac_members(x, m.pacgan)).squeeze(2)


def _fc_g(m: FCGenerator, prefix: str, ctx: Context, z, y=None) -> torch.Tensor:
    return _sequential(m.net, prefix + "net.", ctx, z)


def _fc_d(m: FCDiscriminator, prefix: str, ctx: Context, x, y=None) -> torch.Tensor:
    return _sequential(m.net, prefix + "net.", ctx, pac_members(x, m.pacgan)).squeeze(2)


# Per model class: its packed forward, and the member-first layout of its samples (what G returns and
# D takes) made from solo samples (N, *shape).
MODELS: dict[type, Callable] = {
    DCGANGenerator: _dcgan_g, DCGANDiscriminator: _dcgan_d, CCGANGenerator: _ccgan_g,
    CCGANDiscriminator: _ccgan_d, GridGenerator: _grid_g, GridDiscriminator: _grid_d,
    FCGenerator: _fc_g, FCDiscriminator: _fc_d,
}


def sample_layout(family: str, data: torch.Tensor) -> torch.Tensor:
    """Solo samples (N, *shape) in the layout packed models exchange: channels-last images for the
    convolutional families, flat vectors for fc, points as they are for mlp2d."""
    if family in ("dcgan", "ccgan"):
        return data.permute(0, 2, 3, 1).contiguous()
    if family == "fc":
        return data.flatten(1)
    return data


def packed_forward(ctx: Context, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The stacked model on member-first inputs: latents (P, B, z_dim) for a generator, samples in
    :func:`sample_layout` for a discriminator (logits (P, B)); ``y`` (P, B) class indices for ccgan."""
    template = ctx.stack.template
    run = MODELS.get(type(template))
    if run is None:
        raise TypeError(f"{type(template).__name__} cannot be packed (packable: "
                        f"{', '.join(t.__name__ for t in MODELS)})")
    return run(template, "", ctx, x, y)
