"""Small binary classifiers for AdaGAN boosting: real training point (1) vs mixture sample (0).

Owns the networks only; training them lives in raygan.boosting. ``SimpleCNN`` is the boosting
discriminator of seed 000 (Eilertsen et al.), Supplement B, "Boosting on SVHN-II, CIFAR-II and MNIST-II";
``MLPClassifier`` plays the same role for flat vectors such as the 2D grid. Both emit ``n_outputs``
logits (2 by default: class 0 = mixture sample, class 1 = real) and are Glorot-initialised.
"""
from __future__ import annotations

import torch
import torch.nn as nn


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
