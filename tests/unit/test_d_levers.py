"""gan.pacgan and gan.minibatch_std (raygan.gan.models.d_levers): what they compute, a packed member's
discriminator equal to its solo one (forward and backward, to float rounding, for every packable family
that takes them), and what the config refuses. Whole packed training runs against solo ones:
tests/unit/test_pack.py's "dcgan-pacgan-mbstd" and "mlp2d-pacgan"."""
from __future__ import annotations

import pytest
import torch

from raygan.config import ConfigError, GANConfig, load_config
from raygan.gan.models import build_gan
from raygan.gan.models.d_levers import STD_EPS, group_std, pac
from raygan.gan.pack_layers import packed_forward, sample_layout
from raygan.gan.stack import Context, Stack

REL = 1e-4  # as tests/unit/test_pack_sizes.py: rounding is ~1e-6 of a tensor's scale, a real bug ~1e-2
P, B = 2, 8
# (family, sample shape, pacgan, minibatch_std)
CASES = [("dcgan", (1, 8, 8), 2, 2), ("dcgan", (3, 32, 32), 2, 4), ("ccgan", (1, 8, 8), 4, 2),
         ("fc", (1, 8, 8), 2, 2), ("mlp2d", (2,), 4, 2), ("dcgan", (1, 8, 8), 1, 4)]


def _close(packed: torch.Tensor, solo: torch.Tensor, what: str) -> None:
    scale = solo.abs().max().item()
    gap = (packed.double() - solo.double()).abs().max().item()
    assert gap <= REL * scale + 1e-12, f"{what}: packed differs from solo by {gap:.3g} (scale {scale:.3g})"


def test_pac_joins_consecutive_samples_and_the_std_sees_a_collapsed_group():
    x = torch.arange(4 * 2 * 3 * 3, dtype=torch.float32).view(4, 2, 3, 3)
    packed = pac(x, 2)
    assert packed.shape == (2, 4, 3, 3)
    assert torch.equal(packed[1], torch.cat([x[2], x[3]]))
    same, varied = torch.ones(4, 5).repeat(1, 1), torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(group_std(same, 4, 0), torch.full((4,), STD_EPS ** 0.5))
    std = group_std(varied, 2, 0)
    assert std.shape == (4,) and std[0] == std[1] and std[2] == std[3] and (std > 0.1).all()
    with pytest.raises(ValueError, match="divisible by 3"):
        pac(x, 3)


@pytest.mark.parametrize("family,shape,m", [("dcgan", (3, 8, 8), 4), ("fc", (1, 8, 8), 2),
                                            ("mlp2d", (2,), 4), ("pggan", (1, 8, 8), 2)])
def test_d_gives_one_logit_per_pack_and_off_is_the_plain_d(family, shape, m):
    torch.manual_seed(0)
    _, plain = build_gan(GANConfig(family=family, width=8, z_dim=8), shape)
    torch.manual_seed(0)
    _, off = build_gan(GANConfig(family=family, width=8, z_dim=8, pacgan=1, minibatch_std=0), shape)
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), off.state_dict().values()))
    _, D = build_gan(GANConfig(family=family, width=8, z_dim=8, pacgan=m), shape)
    assert D(torch.rand(8, *shape)).shape == (8 // m,)


@pytest.mark.parametrize("family,shape,m,group", CASES, ids=[f"{c[0]}-{c[1][-1]}-pac{c[2]}-std{c[3]}" for c in CASES])
def test_a_packed_members_discriminator_is_its_solo_one(family, shape, m, group):
    # fc without dropout: its masks are drawn from other generators here (test_pack.py trains fc with them)
    gan = GANConfig(family=family, width=16, z_dim=8, dropout=0.0, pacgan=m, minibatch_std=group)
    k = 3 if family == "ccgan" else None
    Ds = []
    for seed in range(P):
        torch.manual_seed(seed)
        Ds.append(build_gan(gan, shape, n_classes=k)[1].train())
    stack = Stack(Ds)
    x = torch.rand(P, B, *shape, generator=torch.Generator().manual_seed(7)) * 2 - 1
    y = torch.randint(0, 3, (P, B), generator=torch.Generator().manual_seed(8)) if k else None
    logits = packed_forward(Context(stack, [torch.Generator() for _ in range(P)]),
                            torch.stack([sample_layout(family, r) for r in x]), y)
    assert logits.shape == (P, B // m)
    weights = torch.linspace(0.5, 1.5, B // m)  # no gradient a plain sum
    (logits * weights).sum().backward()
    for i in range(P):
        solo = Ds[i](x[i], *(() if k is None else (y[i],)))
        _close(logits[i].detach(), solo.detach(), f"logits of member {i}")
        (solo * weights).sum().backward()
        for name, p in Ds[i].named_parameters():
            _close(stack.params[name].grad[i], p.grad, f"gradient of {name} of member {i}")


@pytest.mark.parametrize("overrides, match", [
    (["gan.family=biggan", "data.name=cifar10", "data.root=/x", "gan.pacgan=2"], "projection discriminator"),
    (["gan.family=pggan", "gan.minibatch_std=4"], "always has"),
    (["gan.pacgan=3", "train.batch_size=64"], "multiple of 3"),
    (["gan.pacgan=4", "train.batch_size=32", "gan.minibatch_std=3"], "discriminator's batch of 8"),
    (["gan.minibatch_std=1"], "no spread"),
    (["gan.pacgan=2", "privacy.epsilon=8"], "DP-SGD"),
])
def test_config_refuses_what_cannot_run_in_one_line(overrides, match):
    with pytest.raises(ConfigError, match=match) as err:
        load_config(overrides=overrides)
    msg = str(err.value)
    assert "\n" not in msg and any(fix in msg for fix in ("set ", "pick ", "use "))


def test_a_pacgan_d_sees_collapse_that_a_plain_d_cannot():
    """Fakes made of real grid points, each PacGAN pack one point repeated (every point alone is real):
    a packed D (the grid D, narrowed to stay fast) learns to tell them from real packs in 150 steps, a
    plain D cannot (PacGAN's point)."""
    from raygan.data.grid2d import sample_grid
    from raygan.gan.losses import LOSSES
    from raygan.gan.models.mlp2d import GridDiscriminator

    data, d_loss, g = sample_grid(5000, 0.05, seed=0), LOSSES["nonsaturating"][0], torch.Generator().manual_seed(0)
    final = {}
    for m in (1, 4):
        torch.manual_seed(0)
        D = GridDiscriminator(hidden=32, pacgan=m)
        opt = torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999))
        for _ in range(150):
            real = data[torch.randint(0, len(data), (64,), generator=g)]
            fake = data[torch.randint(0, len(data), (64 // 4,), generator=g)].repeat_interleave(4, 0)
            loss = d_loss(D(real), D(fake), 1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
        final[m] = loss.item()
    assert final[4] < 0.1 < 1.0 < final[1], final
