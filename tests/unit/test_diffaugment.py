"""gan.diffaugment (raygan.gan.diffaugment): the transforms, what they change, what the config refuses.
A packed member equals its solo run with it on: tests/unit/test_pack.py's "dcgan-diffaugment"."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from raygan.config import ConfigError, DataConfig, GANConfig, TrainConfig, load_config
from raygan.data import load_dataset
from raygan.gan.diffaugment import augment, draw
from raygan.gan.train import train_gan


def test_transforms_keep_shape_and_change_images_by_their_own_draws():
    x = torch.rand(2, 3, 3, 8, 8) * 2 - 1  # (P, B, C, H, W)
    policy = "translation,cutout,color"
    params = draw(policy, torch.Generator().manual_seed(0), calls=1, batch=6, size=(8, 8), device="cpu")
    out = augment(x, {k: v[0].view(2, 3) for k, v in params.items()}, policy)
    assert out.shape == x.shape and not torch.equal(out, x)
    again = draw(policy, torch.Generator().manual_seed(0), calls=1, batch=6, size=(8, 8), device="cpu")
    assert all(torch.equal(params[k], again[k]) for k in params)
    cut = augment(x, {"cut_h": torch.full((2, 3), 4), "cut_w": torch.full((2, 3), 4)}, "cutout")
    assert (cut[..., 2:6, 2:6] == 0).all() and torch.equal(cut[..., 0, :], x[..., 0, :])
    assert draw("", torch.Generator(), calls=1, batch=6, size=(8, 8), device="cpu") is None


def test_on_changes_training_and_off_is_the_plain_step():
    data = load_dataset(DataConfig(name="digits")).train["0"]
    train = TrainConfig(steps=3, batch_size=16, log_every=3, checkpoint_every=3)
    runs = [train_gan(data, gan=GANConfig(family="dcgan", width=8, z_dim=16, diffaugment=p), train=train,
                      seed=1, device=torch.device("cpu")).losses for p in ("", "translation", "")]
    assert np.array_equal(runs[0], runs[2]) and not np.array_equal(runs[0], runs[1])


@pytest.mark.parametrize("overrides, match", [
    (["gan.diffaugment=flip"], "unknown transform"),
    (["gan.diffaugment=color", "gan.family=fc"], "not convolutional"),
    (["gan.diffaugment=color", "privacy.epsilon=8"], "DP-SGD"),
])
def test_config_refuses_what_it_cannot_augment(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_config(overrides=overrides)
