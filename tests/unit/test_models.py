import pytest
import torch

from raygan.config import ConfigError, GANConfig
from raygan.gan.models import build_gan
from raygan.gan.models.fc import FCDiscriminator, FCGenerator
from raygan.gan.models.mlp2d import GridDiscriminator, GridGenerator, Maxout


@pytest.mark.parametrize("family, shape, z_dim", [
    ("mlp2d", (2,), 2),
    ("dcgan", (1, 8, 8), 32),
    ("dcgan", (1, 28, 28), 100),
    ("dcgan", (3, 32, 32), 100),
    ("dcgan", (3, 64, 64), 100),
    ("fc", (1, 8, 8), 100),
    ("fc", (1, 28, 28), 100),
])
def test_every_family_maps_latents_to_samples_and_samples_to_logits(family, shape, z_dim):
    G, D = build_gan(GANConfig(family=family, z_dim=z_dim, width=8), shape)
    x = G(torch.randn(5, z_dim))
    assert x.shape == (5, *shape)
    assert D(x).shape == (5,)
    if family != "mlp2d":
        assert x.min() >= -1 and x.max() <= 1  # tanh output, same range as the real images


def test_grid_models_follow_supplement_a():
    G, D = GridGenerator(z_dim=2), GridDiscriminator()
    linears = [m for m in G.net if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [400, 400, 400, 400, 2]
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in G.net) == 4
    maxouts = [m for m in D.net if isinstance(m, Maxout)]
    assert [(m.out_features, m.pool_size) for m in maxouts] == [(200, 5)] * 3
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in D.modules())
    # maxout is the max over its pool of linear pieces
    m = maxouts[0]
    x = torch.randn(3, 2)
    pieces = m.linear(x).view(3, 200, 5)
    assert torch.equal(m(x), pieces.max(2).values)


def test_fc_widths_scale_with_alpha_as_seed_002():
    G = FCGenerator(z_dim=100, out_shape=(1, 28, 28), alpha=4)
    D = FCDiscriminator(in_shape=(1, 28, 28), alpha=4)
    g_widths = [m.out_features for m in G.net if isinstance(m, torch.nn.Linear)]
    d_widths = [m.out_features for m in D.net if isinstance(m, torch.nn.Linear)]
    assert g_widths == [128, 256, 512, 784]   # 16 a 2^i, i = 1..3
    assert d_widths == [512, 256, 128, 1]     # 256 a 2^-i, i = 1..3


def test_wrong_shapes_for_a_family_are_config_errors():
    with pytest.raises(ConfigError, match="mlp2d models 2D points"):
        build_gan(GANConfig(family="mlp2d"), (1, 8, 8))
    with pytest.raises(ConfigError, match="square images"):
        build_gan(GANConfig(family="dcgan"), (2,))
