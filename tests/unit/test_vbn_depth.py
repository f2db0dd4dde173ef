"""Seed 003's virtual batch norm generator (gan.g_norm=vbn) and discriminator depth (gan.d_depth) for
dcgan and ccgan: a sample's output never depends on its batch, the reference batch is saved and
reloaded, a tiny run learns, packs match solo runs, and other families refuse both at config load."""
import dataclasses

import numpy as np
import pytest
import torch

from raygan.config import ConfigError, DataConfig, GANConfig, TrainConfig, from_dict
from raygan.data import load_dataset
from raygan.gan.checkpoints import gan_record, load_generator
from raygan.gan.models import build_gan
from raygan.gan.models.vbn import VirtualBatchNorm2d
from raygan.gan.pack import PackMember, train_pack
from raygan.gan.train import train_gan

CPU = torch.device("cpu")
TINY = dict(width=8, z_dim=16)
K = 10  # digits classes


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits"))


def _generate(G, z, y):
    return G(z) if y is None else G(z, y)


@pytest.mark.parametrize("family", ["dcgan", "ccgan"])
def test_a_vbn_sample_does_not_depend_on_its_batch(family):
    torch.manual_seed(0)
    z = torch.randn(6, 16)
    y = torch.arange(6) % K if family == "ccgan" else None
    for g_norm in ("vbn", "batch"):
        torch.manual_seed(1)
        G, _ = build_gan(GANConfig(family=family, g_norm=g_norm, **TINY), (1, 8, 8), n_classes=K)
        assert any(isinstance(m, VirtualBatchNorm2d) for m in G.modules()) == (g_norm == "vbn")
        for training in (True, False):
            G.train(training)
            with torch.no_grad():
                batch = _generate(G, z, y)
                alone = torch.cat([_generate(G, z[i:i + 1], None if y is None else y[i:i + 1])
                                   for i in range(len(z))])
            assert batch.shape == (6, 1, 8, 8)
            if g_norm == "vbn":
                assert torch.allclose(batch, alone, atol=1e-6, rtol=0)
            elif training:  # batch norm in train mode: the control that the check can fail
                assert (batch - alone).abs().max() > 1e-3


def test_the_reference_batch_is_the_members_and_round_trips_through_the_checkpoint(digits, tmp_path):
    gan = GANConfig(family="dcgan", g_norm="vbn", **TINY)
    refs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)
        refs.append(build_gan(gan, (1, 8, 8))[0].vbn_ref.clone())
    assert torch.equal(refs[0], refs[1]) and not torch.equal(refs[0], refs[2])
    ckpt = tmp_path / "checkpoint.pt"
    result = train_gan(digits.train[digits.classes[0]], gan=gan, device=CPU, seed=3, checkpoint_path=ckpt,
                       train=TrainConfig(steps=3, batch_size=16, log_every=3, checkpoint_every=3))
    assert torch.equal(result.generator.vbn_ref, refs[0])  # a buffer: training leaves it as drawn
    loaded = load_generator(ckpt)  # torch.load(weights_only=True)
    assert torch.equal(loaded.vbn_ref, refs[0])
    z = torch.randn(5, 16)
    with torch.no_grad():
        assert torch.equal(loaded(z), result.generator(z))


def test_a_vbn_gan_with_a_deeper_discriminator_learns(digits):
    gan = GANConfig(family="dcgan", g_norm="vbn", d_depth=2, **TINY)
    data = digits.train[digits.classes[3]]
    result = train_gan(data, gan=gan, device=CPU, seed=0,
                       train=TrainConfig(steps=60, batch_size=32, log_every=20, checkpoint_every=60))
    assert result.losses[-10:, 0].mean() < result.losses[0, 0] - 0.2  # D learns to tell them apart
    torch.manual_seed(0)
    G0, _ = build_gan(gan, (1, 8, 8))
    z = torch.randn(256, 16)
    with torch.no_grad():
        gaps = [(G(z).mean(0) - data.mean(0)).abs().mean() for G in (G0.eval(), result.generator)]
    assert gaps[1] < gaps[0]  # G's mean image moves towards the class's


@pytest.mark.parametrize("family", ["dcgan", "ccgan"])
def test_d_depth_adds_refining_convolutions_and_1_is_dcgans_discriminator(family):
    def discriminator(**kw):
        torch.manual_seed(5)
        return build_gan(GANConfig(family=family, **TINY, **kw), (1, 32, 32), n_classes=K)[1]

    plain, one, three = discriminator(), discriminator(d_depth=1), discriminator(d_depth=3)
    assert plain.state_dict().keys() == one.state_dict().keys()
    assert all(torch.equal(t, one.state_dict()[k]) for k, t in plain.state_dict().items())
    convs = [[m for m in d.modules() if isinstance(m, torch.nn.Conv2d)] for d in (plain, three)]
    stages = len(convs[0]) - 1  # 32 px: three stride-2 convs and the final one
    assert stages == 3 and len(convs[1]) == len(convs[0]) + 2 * stages
    refining = [c for c in convs[1] if c.kernel_size == (3, 3) and c.stride == (1, 1) and c.padding == (1, 1)]
    assert len(refining) == 2 * stages and all(c.in_channels == c.out_channels for c in refining)
    x, y = torch.randn(4, 1, 32, 32), torch.arange(4)
    assert (three(x) if family == "dcgan" else three(x, y)).shape == (4,)


def test_checkpoints_record_d_depth_only_when_it_is_not_1():
    assert "d_depth" not in gan_record(GANConfig())  # a default config writes the bytes it always did
    deep = GANConfig(d_depth=3)
    assert gan_record(deep)["d_depth"] == 3 and GANConfig(**gan_record(deep)) == deep
    assert GANConfig(**gan_record(GANConfig())) == GANConfig()


@pytest.mark.parametrize("key,family", [("gan.d_depth=2", "fc"), ("gan.d_depth=2", "pggan"),
                                        ("gan.g_norm=vbn", "fc"), ("gan.g_norm=vbn", "pggan")])
def test_other_families_refuse_d_depth_and_vbn_at_load(key, family):
    name, value = key.split("=")
    section, field = name.split(".")
    raw = {"gan": {"family": family, field: int(value) if value.isdigit() else value}}
    with pytest.raises(ConfigError, match=rf"{name}={value}.*gan.family={family}.*set {name}="):
        from_dict(raw)
    with pytest.raises(ConfigError, match="gan.d_depth"):
        from_dict({"gan": {"d_depth": 0}})
    assert from_dict({"gan": {"family": "ccgan", "g_norm": "vbn", "d_depth": 3}}).gan.d_depth == 3


@pytest.mark.parametrize("family", ["dcgan", "ccgan"])
def test_a_packed_vbn_deep_member_is_its_solo_run(family, digits):
    gan = GANConfig(family=family, g_norm="vbn", d_depth=2, **TINY)
    train = TrainConfig(steps=12, batch_size=16, log_every=6, checkpoint_every=6)
    if family == "ccgan":
        x, y = digits.train_split()
        members = [PackMember(data=x[:150 + 40 * i], seed=10 + i, labels=y[:150 + 40 * i], n_classes=K)
                   for i in range(3)]
    else:
        members = [PackMember(data=digits.train[digits.classes[i]], seed=10 + i) for i in range(3)]
    packed = train_pack(members, gan=gan, train=train, device=CPU)
    for m, p in zip(members, packed):
        solo = train_gan(m.data, gan=gan, train=train, seed=m.seed, device=CPU, labels=m.labels,
                         n_classes=m.n_classes)
        assert np.abs(p.losses - solo.losses).max() <= 1e-4
        sp, ss = p.generator.state_dict(), solo.generator.state_dict()
        assert max((sp[k].double() - ss[k].double()).abs().max().item() for k in ss) <= 1e-4
        assert torch.equal(sp["body.vbn_ref" if family == "ccgan" else "vbn_ref"],
                           ss["body.vbn_ref" if family == "ccgan" else "vbn_ref"])
    if family == "dcgan":  # a member's bits do not depend on its pack mates
        alone = train_pack(members[:1], gan=gan, train=dataclasses.replace(train, steps=4), device=CPU)[0]
        first = train_pack(members, gan=gan, train=dataclasses.replace(train, steps=4), device=CPU)[0]
        assert np.array_equal(alone.losses, first.losses)
        assert all(torch.equal(t, first.generator.state_dict()[k])
                   for k, t in alone.generator.state_dict().items())


def test_a_deep_discriminator_packs_under_bf16_autocast(digits):
    """d_depth > 1 puts a batch norm right before D's logit layer, whose packed backward then meets a
    bf16 activation and an fp32 gradient (the same holds for DCGAN at 16 px and more)."""
    gan = GANConfig(family="dcgan", g_norm="vbn", d_depth=2, **TINY)
    train = TrainConfig(steps=6, batch_size=16, log_every=3, checkpoint_every=6, precision="bf16")
    members = [PackMember(data=digits.train[digits.classes[i]], seed=20 + i) for i in range(2)]
    for m, p in zip(members, train_pack(members, gan=gan, train=train, device=CPU)):
        solo = train_gan(m.data, gan=gan, train=train, seed=m.seed, device=CPU)
        assert np.isfinite(p.losses).all() and np.abs(p.losses - solo.losses).max() <= 1e-2
