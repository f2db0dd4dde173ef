"""Classifier networks: the small binary ones for AdaGAN boosting and the downstream ones.

Owns the networks only: the boosting classifier is trained by raygan.ensemble.boosting, the downstream
ones by raygan.classifiers.fit.

Boosting, real training point (1) vs mixture sample (0): ``SimpleCNN`` is the boosting discriminator of
seed 000 (Eilertsen et al.), Supplement B, "Boosting on SVHN-II, CIFAR-II and MNIST-II";
``MLPClassifier`` plays the same role for flat vectors such as the 2D grid. Both emit ``n_outputs``
logits (2 by default: class 0 = mixture sample, class 1 = real) and are Glorot-initialised.

Downstream: ``DOWNSTREAM`` / ``build_classifier`` give SimpleCNN with
``n_outputs`` = number of classes (seed 000's "SimpleCNN" results), ``ResNet18Small`` (seed 000's
ResNet-18) and ``LiuHuMLP`` (seed 002, Section 2.3).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, ResNet


def _glorot_init(module: nn.Module) -> None:
    # Supplement B: "initialized with the Glorot random scheme (Glorot & Bengio, 2010)".
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class SimpleCNN(nn.Module):
    """Seed 000, Supplement B: three 3x3 conv layers (16, 32, 64 channels), each followed by 2x2
    max-pooling and batch norm; FC (flattened -> 64), dropout, FC (64 -> n_outputs); ReLU throughout.

    The paper's first FC is 64 -> 64, i.e. a 1x1x64 map after the conv stack; here the convs use
    padding=1 and the flattened size is computed, so 8x8 (-> 1x1), 28x28 (-> 3x3), 32x32 (-> 4x4) and
    64x64 (-> 8x8) inputs all work. ``dropout`` is nn.Dropout's drop probability.
    """

    def __init__(self, in_channels: int, image_size: int | tuple[int, int], n_outputs: int = 2,
                 dropout: float = 0.75):
        super().__init__()
        height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
        if min(height, width) < 8:
            raise ValueError(f"SimpleCNN pools three times by 2 and needs images of 8 px or more, "
                             f"got {height}x{width}")
        layers: list[nn.Module] = []
        channels = in_channels
        for out_channels in (16, 32, 64):
            layers += [nn.Conv2d(channels, out_channels, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                       nn.MaxPool2d(kernel_size=2), nn.BatchNorm2d(out_channels)]
            channels = out_channels
        self.features = nn.Sequential(*layers)
        # padding=1 keeps each conv's size; each 2x2 pool floors it to half.
        n_flat = 64 * (height // 8) * (width // 8)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(n_flat, 64), nn.ReLU(inplace=True),
                                  nn.Dropout(p=dropout), nn.Linear(64, n_outputs))
        self.apply(_glorot_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class MLPClassifier(nn.Module):
    """Fully connected classifier for flat samples (the 2D grid): Linear + ReLU per hidden layer."""

    def __init__(self, in_features: int, n_outputs: int = 2, hidden: tuple[int, ...] = (64, 64)):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU(inplace=True)]
            width = units
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)
        self.apply(_glorot_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


CLASSIFIERS = {"simplecnn": SimpleCNN, "mlp": MLPClassifier}


def build_boost_classifier(sample_shape: tuple[int, ...]) -> nn.Module:
    """A fresh 2-way boosting classifier: SimpleCNN for (C, H, W) images, an MLP for flat vectors."""
    shape = tuple(int(s) for s in sample_shape)
    if len(shape) == 3:
        return CLASSIFIERS["simplecnn"](in_channels=shape[0], image_size=(shape[1], shape[2]))
    if len(shape) == 1:
        return CLASSIFIERS["mlp"](in_features=shape[0])
    raise ValueError(f"no boosting classifier for samples of shape {shape}: expected (C, H, W) or (D,)")


# --- Downstream classifiers: trained on synthetic (or mixed) data, tested on real data ---------------

class ResNet18Small(ResNet):
    """Seed 000, Supplement B, "Classification evaluation": ResNet-18 (He et al., 2016) as the downstream
    classifier, adapted to small images the usual CIFAR way.

    torchvision's resnet18 (``ResNet(BasicBlock, [2, 2, 2, 2])``, what ``resnet18(num_classes=...)``
    builds without weights) with a 3x3 stride-1 padding-1 stem taking ``in_channels`` and no initial
    max-pool: the ImageNet stem (7x7 stride 2, then a stride-2 pool) would shrink a 32x32 image to 8x8
    before the first block. The adaptive average pool before the head makes any size >= 8 px work.
    """

    def __init__(self, in_channels: int, n_classes: int):
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=n_classes)
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        # Same initialisation torchvision's ResNet gives every conv.
        nn.init.kaiming_normal_(self.conv1.weight, mode="fan_out", nonlinearity="relu")
        self.maxpool = nn.Identity()


class LiuHuMLP(nn.Module):
    """Seed 002 (Liu & Hu), Section 2.3: p = W1 sigmoid(W0 i + b0) + b1, one hidden layer of 300 units.

    Returns logits; the softmax lives in the cross-entropy loss, and the paper's "additional
    regularization term" is the optimiser's weight decay (raygan.classifiers.fit). PyTorch's default init
    (the paper names none).
    """

    def __init__(self, in_features: int, n_classes: int, hidden: int = 300):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.Sigmoid(),
                                 nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _image_shape(arch: str, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ValueError(f"classifier arch {arch!r} is convolutional and needs (C, H, W) images, got "
                         f"samples of shape {shape}; use arch 'mlp' for points or flat vectors")
    return shape  # type: ignore[return-value]


def _simplecnn(shape: tuple[int, ...], n_classes: int) -> nn.Module:
    channels, height, width = _image_shape("simplecnn", shape)
    return SimpleCNN(in_channels=channels, image_size=(height, width), n_outputs=n_classes)


def _resnet18(shape: tuple[int, ...], n_classes: int) -> nn.Module:
    channels, _, _ = _image_shape("resnet18", shape)
    return ResNet18Small(in_channels=channels, n_classes=n_classes)


def _mlp(shape: tuple[int, ...], n_classes: int) -> nn.Module:
    return LiuHuMLP(in_features=math.prod(shape), n_classes=n_classes)


DOWNSTREAM = {"simplecnn": _simplecnn, "resnet18": _resnet18, "mlp": _mlp}


def build_classifier(arch: str, sample_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """A fresh downstream classifier emitting ``n_classes`` logits for samples of ``sample_shape``
    ((C, H, W) images, or (D,) vectors such as 2D points, which only 'mlp' accepts)."""
    if arch not in DOWNSTREAM:
        raise ValueError(f"unknown classifier arch {arch!r}; allowed: {sorted(DOWNSTREAM)}")
    return DOWNSTREAM[arch](tuple(int(s) for s in sample_shape), int(n_classes))
