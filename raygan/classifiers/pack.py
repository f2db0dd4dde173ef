"""Packed downstream classifiers: P classifiers of one architecture trained as one vectorised model
(``train_classifier_pack``), the classifier counterpart of raygan.gan.pack.

An evaluation trains R x (TRTR + every T) small classifiers on sets of one size; alone, each pays
PyTorch's per-operation overhead for a network that does little work per operation. Here their
weights are stacked member-first (raygan.gan.stack.Stack, as a GAN pack's) and run as one network:
SimpleCNN's convolutional stack on a batch of P x C channels, every convolution one grouped
convolution of P groups and batch norm over the P x C member-channels (each member's own batch and
running statistics, exactly as alone), its fully connected head and the MLP through the GAN packs'
layers (raygan.gan.pack_layers: batched matrix products, each member's own dropout generator).

Every classifier keeps what train_classifier gives it alone: its initial weights
(``torch.manual_seed(seed)`` then build_classifier), its data order and augmentation draws (its own
``torch.Generator`` seeded with its seed, drawn in the same order), its dropout masks (a generator of
its own that starts where the default generator is after its seeded build, which is what nn.Dropout
draws from alone), its Adam state (one elementwise Adam over the stacked weights is per-classifier
Adam), its training set (or its on-the-fly epoch data), and its epoch chosen on the real validation
split with the test accuracy and confusion matrix at that epoch. Nothing mixes classifiers: the loss
is the sum of each one's mean cross-entropy, whose gradient for a classifier's weights is its own.
A packed classifier is its solo run up to float rounding (a grouped convolution or a batched matrix
product sums in another order than the solo kernels, and Adam turns the rounding of a gradient that
is zero in exact arithmetic, a convolution's bias before batch norm, into steps of lr);
tests/unit/test_classifier_pack.py checks SimpleCNN and the MLP at 8 px grey and 32 px RGB. On a GPU
the dropout masks come from a generator per classifier seeded with its seed, not the CUDA default
generator's stream that a solo run draws from, so packed and solo runs there agree in distribution.

The classifiers of a pack train on sets of one size (the same number of steps per epoch); epoch data
that several share (on-the-fly generation at one T, which every repeat draws alike) is made once per
epoch for all of them. ResNet-18 is not packed (``solo_reason``).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from raygan.classifiers.augment import augment as apply_augmentation
from raygan.classifiers.fit import ClassifierRun, Split
from raygan.classifiers.networks import build_classifier
from raygan.gan.pack_layers import _sequential
from raygan.gan.stack import Context, Stack

# Why ResNet-18 trains alone (computed, not measured): one step at batch 64 is about 100 GFLOP at 32 px
# (6 GFLOP at 8 px), a fraction of a second to seconds on a CPU and large kernels on a GPU, so the
# per-operation overhead that a pack saves is around 1% of it; and its residual blocks are not among
# the pack's layers.
SOLO_REASONS = {"resnet18": "ResNet-18 trains alone: a training step is about 100 GFLOP at 32 px and "
                            "batch 64 (6 at 8 px), so the per-operation overhead a pack saves is about "
                            "1% of it, and its residual blocks are not among the pack's layers"}

# Floats a pack may hold in activations for one training batch (512 MiB): bounds the pack size.
ACTIVATION_BUDGET = 2 ** 27


def solo_reason(arch: str) -> Optional[str]:
    """Why classifiers of ``arch`` train one at a time (None: they pack)."""
    return SOLO_REASONS.get(arch)


def _floats_per_sample(arch: str, shape: tuple[int, ...]) -> int:
    """Activation floats one sample holds in a training step, roughly (saved for the backward)."""
    if arch == "simplecnn":
        channels, height, width = shape
        # the input and the 16-channel maps with what autograd saves of them, generously
        return (9 * channels + 160) * height * width
    return math.prod(shape) + 1200  # the MLP: its input and the 300 hidden units' few copies


def max_pack_size(arch: str, shape: tuple[int, ...], batch_size: int) -> int:
    """The most classifiers of ``arch`` a pack holds within ACTIVATION_BUDGET (1 where they never pack)."""
    if solo_reason(arch) is not None:
        return 1
    return max(1, ACTIVATION_BUDGET // (batch_size * _floats_per_sample(arch, tuple(shape))))


@dataclass
class PackMember:
    """One classifier of a pack: train_classifier's per-classifier arguments."""
    seed: int
    train: Optional[Split] = None                           # the fixed training set, or
    epoch_data: Optional[Callable[[int], Split]] = None     # a fresh set each epoch (on the fly)

    def epoch_set(self, epoch: int, made: dict) -> Split:
        if self.epoch_data is None:
            return self.train  # type: ignore[return-value]
        key = id(self.epoch_data)  # shared epoch data is made once per epoch for the whole pack
        if key not in made:
            made[key] = self.epoch_data(epoch)
        return made[key]


def _layout(arch: str, x: torch.Tensor) -> torch.Tensor:
    """Member-first samples (P, B, *shape) in the layout :func:`_forward` takes: SimpleCNN's images
    as one batch of P x C channels (B, P C, H, W), member p's in channels p C .. (p + 1) C; flat
    vectors (P, B, D) for the MLP."""
    if arch == "simplecnn":
        P, B, C, H, W = x.shape
        return x.transpose(0, 1).reshape(B, P * C, H, W).contiguous(memory_format=torch.channels_last)
    return x.flatten(2)


@functools.lru_cache(maxsize=None)
def _taps(height: int, width: int) -> torch.Tensor:
    """(9, H W x H W) 0/1 matrix: tap k of a 3x3 kernel (padding 1) takes output pixel q from input
    pixel r where entry (k, q H W + r) is 1; a kernel (.., 9) times it is the convolution as a dense map."""
    taps = torch.zeros(9, height * width, height * width)
    for qy in range(height):
        for qx in range(width):
            for ky in range(3):
                for kx in range(3):
                    ry, rx = qy + ky - 1, qx + kx - 1
                    if 0 <= ry < height and 0 <= rx < width:
                        taps[ky * 3 + kx, qy * width + qx, ry * width + rx] = 1
    return taps.view(9, -1)


# Maps of at most this many pixels convolve as one dense product per member (_dense_conv): on a 2 x 2
# map every output pixel reads every input pixel, so the dense map does no extra work, and a batched
# matrix product forward and backward is 2.3x faster than oneDNN's grouped convolution there (60
# members, 32 -> 64 channels, batch 64: 27 ms against 61). On 4 x 4 maps it is 4.6x slower.
DENSE_PIXELS = 4


def _dense_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A 3x3 padding-1 convolution of P members on (B, P C, H, W) as a batched dense product: each
    member's kernel spread over the map's pixels by _taps, (P, B, C H W) x (P, C H W, K H W)."""
    B, _, H, W = x.shape
    P, K, C = weight.shape[:3]  # K output channels
    dense = (weight.reshape(P, K * C, 9) @ _taps(H, W).to(weight)).view(P, K, C, H * W, H * W)
    dense = dense.permute(0, 1, 3, 2, 4).reshape(P, K * H * W, C * H * W)
    h = x.reshape(B, P, C * H * W).transpose(0, 1)
    out = torch.baddbmm(bias.repeat_interleave(H * W, dim=1).unsqueeze(1), h, dense.transpose(1, 2))
    return out.view(P, B, K, H, W).transpose(0, 1).reshape(B, P * K, H, W)


def _features(seq: nn.Sequential, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """SimpleCNN's convolutional stack on (B, P C, H, W): every convolution one grouped convolution of
    P groups (each member's weights on its own channels; on maps of DENSE_PIXELS or fewer one dense
    product per member), batch norm over the P x C member-channels (each member's own batch and
    running statistics, as alone), ReLU and max-pooling per channel. A ReLU followed by a max-pool runs
    after it, on a quarter of the values: max and ReLU commute exactly, and so do their gradients (a
    window whose max is not positive passes no gradient either way). On small maps oneDNN's grouped
    convolution is faster than pack_layers' im2col products (docs/benchmarks.md, "eval")."""
    P = len(ctx.dropout_rngs)
    layers = list(seq.named_children())
    i = 0
    while i < len(layers):
        name, layer = layers[i]
        prefix = f"features.{name}."
        if isinstance(layer, nn.Conv2d):
            weight, bias = ctx.stack[prefix + "weight"], ctx.stack[prefix + "bias"]
            if x.shape[2] * x.shape[3] <= DENSE_PIXELS and layer.kernel_size == (3, 3) and layer.padding == (1, 1) \
                    and layer.stride == (1, 1):
                x = _dense_conv(x, weight, bias)
            else:
                x = F.conv2d(x, weight.flatten(0, 1), bias.flatten(), stride=layer.stride, padding=layer.padding,
                             groups=P)
        elif isinstance(layer, nn.BatchNorm2d):
            if layer.training:
                ctx.stack[prefix + "num_batches_tracked"].add_(1)
            x = F.batch_norm(x, ctx.stack[prefix + "running_mean"].view(-1),
                             ctx.stack[prefix + "running_var"].view(-1), ctx.stack[prefix + "weight"].view(-1),
                             ctx.stack[prefix + "bias"].view(-1), layer.training, layer.momentum, layer.eps)
        elif isinstance(layer, nn.ReLU) and i + 1 < len(layers) and isinstance(layers[i + 1][1], nn.MaxPool2d):
            x = F.relu(layers[i + 1][1](x))
            i += 1
        else:  # ReLU, MaxPool2d
            x = layer(x)
        i += 1
    return x


def _forward(arch: str, ctx: Context, x: torch.Tensor) -> torch.Tensor:
    """Logits (P, B, K) of the stacked classifiers on inputs in :func:`_layout`; the fully connected
    layers (and dropout, each member's masks from its own generator) are raygan.gan.pack_layers'."""
    template = ctx.stack.template
    if arch == "simplecnn":
        h = _features(template.features, ctx, x)
        h = h.reshape(h.shape[0], len(ctx.dropout_rngs), -1).transpose(0, 1)  # (P, B, C h w), solo order
        return _sequential(template.head, "head.", ctx, h)
    return _sequential(template.net, "net.", ctx, x)


def _to(stack: Stack, device: torch.device) -> Stack:
    stack.params = {k: v.detach().to(device).requires_grad_() for k, v in stack.params.items()}
    stack.buffers = {k: v.to(device) for k, v in stack.buffers.items()}
    return stack


@torch.no_grad()
def _predictions(arch: str, ctx: Context, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(P, N) class predictions of every classifier on the same rows x (eval mode), in row chunks
    that keep P copies of a chunk's activations within ACTIVATION_BUDGET."""
    P = len(ctx.dropout_rngs)
    rows = max(1, min(1024, ACTIVATION_BUDGET // (P * _floats_per_sample(arch, tuple(x.shape[1:])))))
    out = []
    for i in range(0, len(x), rows):
        xb = x[i:i + rows].to(device)
        xb = _layout(arch, xb.unsqueeze(0).expand(P, *xb.shape)).contiguous()
        out.append(F.softmax(_forward(arch, ctx, xb), dim=2).argmax(2).cpu())
    return torch.cat(out, dim=1) if out else torch.empty(P, 0, dtype=torch.int64)


def _accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    return float((pred == y).float().mean()) if len(y) else float("nan")


def _confusion(pred: torch.Tensor, y: torch.Tensor, n_classes: int) -> list[list[int]]:
    cm = torch.zeros(n_classes, n_classes, dtype=torch.int64)
    cm.index_put_((y, pred), torch.ones_like(y), accumulate=True)
    return cm.tolist()


def _built(members: list[PackMember], arch: str, sample_shape: tuple[int, ...], n_classes: int,
           dev: torch.device) -> tuple[list[nn.Module], list[torch.Generator]]:
    """Each member's classifier as train_classifier builds it alone (seeded), and its dropout generator."""
    modules, dropout_rngs = [], []
    for m in members:
        torch.manual_seed(m.seed)
        modules.append(build_classifier(arch, tuple(sample_shape), n_classes))
        if dev.type == "cpu":  # nn.Dropout alone draws from the default generator, in this state
            rng = torch.Generator()
            rng.set_state(torch.get_rng_state())
        else:  # a solo CUDA dropout draws from the CUDA default generator's Philox stream: not replayed
            rng = torch.Generator(device=dev).manual_seed(m.seed)
        dropout_rngs.append(rng)
    return modules, dropout_rngs


def train_classifier_pack(members: list[PackMember], *, val: Split, test: Split, n_classes: int,
                          sample_shape: tuple[int, ...], arch: str = "simplecnn", epochs: int = 20,
                          lr: float = 1e-3, batch_size: int = 64, weight_decay: float = 0.0,
                          augment: str = "none", device: str = "cpu",
                          on_epoch: Optional[Callable[[list[dict]], None]] = None) -> list[ClassifierRun]:
    """train_classifier for every member at once: one ClassifierRun each, in order, as it gets alone
    (up to float rounding). Every member's set must have the same size in every epoch. ``on_epoch``
    sees every epoch's records, one per member in order (a Tune trial reports through it)."""
    if solo_reason(arch) is not None:
        raise ValueError(solo_reason(arch))
    dev, P = torch.device(device), len(members)
    modules, dropout_rngs = _built(members, arch, sample_shape, n_classes, dev)
    stack = _to(Stack(modules), dev)
    ctx, template = Context(stack, dropout_rngs), stack.template
    opt = torch.optim.Adam(list(stack.params.values()), lr=lr, weight_decay=weight_decay, foreach=False)
    rngs = [torch.Generator().manual_seed(m.seed) for m in members]
    names = list(stack.params) + list(stack.buffers)
    best_state = {k: stack[k].detach().clone() for k in names}
    histories: list[list[dict]] = [[] for _ in members]
    best: list[Optional[dict]] = [None] * P
    best_pred: list[Optional[torch.Tensor]] = [None] * P
    for epoch in range(1, epochs + 1):
        made: dict = {}
        sets = [m.epoch_set(epoch, made) for m in members]
        n = len(sets[0][1])
        if any(len(s[1]) != n for s in sets):
            raise ValueError(f"the classifiers of a pack train on sets of one size, got "
                             f"{sorted({len(s[1]) for s in sets})} in epoch {epoch}")
        template.train()
        orders = [torch.randperm(n, generator=rng) for rng in rngs]
        losses = []
        for i in range(0, n, batch_size):
            if min(batch_size, n - i) < 2:  # batch norm needs two samples
                continue
            xs, ys = [], []
            for (x, y), order, rng in zip(sets, orders, rngs):
                idx = order[i:i + batch_size]
                xb = x[idx]
                xs.append(apply_augmentation(augment, xb, rng) if augment != "none" else xb)
                ys.append(y[idx])
            logits = _forward(arch, ctx, _layout(arch, torch.stack(xs).to(dev)))
            yb = torch.stack(ys).to(dev)
            loss = F.cross_entropy(logits.flatten(0, 1), yb.flatten(), reduction="none").view(P, -1).mean(1)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            losses.append(loss.detach())
        template.eval()
        train_loss = torch.stack(losses).mean(0).tolist() if losses else [float("nan")] * P
        val_pred = _predictions(arch, ctx, val[0], dev)
        test_pred = _predictions(arch, ctx, test[0], dev)
        for p in range(P):
            record = {"epoch": epoch, "train_loss": float(train_loss[p]),
                      "val_acc": _accuracy(val_pred[p], val[1]), "test_acc": _accuracy(test_pred[p], test[1])}
            histories[p].append(record)
            key = "val_acc" if len(val[1]) else "test_acc"
            if best[p] is None or record[key] > best[p][key]:
                best[p], best_pred[p] = record, test_pred[p]
                with torch.no_grad():
                    for k in names:
                        best_state[k][p].copy_(stack[k][p])
        if on_epoch is not None:
            on_epoch([h[-1] for h in histories])
    runs = []
    for p, module in enumerate(modules):
        with torch.no_grad():
            for k, tensor in module.state_dict(keep_vars=True).items():
                tensor.copy_(best_state[k][p].cpu())
        runs.append(ClassifierRun(history=histories[p], best_val_epoch=best[p]["epoch"],
                                  val_acc=best[p]["val_acc"], test_acc=best[p]["test_acc"],
                                  best_test_acc=max(r["test_acc"] for r in histories[p]),
                                  confusion=_confusion(best_pred[p], test[1], n_classes),
                                  model=module.cpu().eval()))
    return runs


__all__ = ["PackMember", "SOLO_REASONS", "max_pack_size", "solo_reason", "train_classifier_pack"]
