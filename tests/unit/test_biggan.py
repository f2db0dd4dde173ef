"""gan.family=biggan (Brock et al.'s CIFAR BigGAN scaled by gan.width) and the hinge loss: shapes,
class following, spectral norm, EMA sampling, the config's rules and the conditional member path."""
import pytest
import torch

from raygan.config import ConfigError, GANConfig, TrainConfig, load_config
from raygan.config.checks import why_not_packable
from raygan.data import load_dataset
from raygan.ensemble.training import conditional_unit, train_units
from raygan.gan.losses import LOSSES
from raygan.gan.models import CONDITIONAL, UNPACKABLE, build_gan
from raygan.gan.models.biggan import BigGANDiscriminator, BigGANGenerator
from raygan.gan.models.biggan_layers import SelfAttention
from raygan.gan.train import load_generator, save_generator, train_gan
from raygan.runs import RunFolder
from raygan.synthesis.generate import generate

CPU = torch.device("cpu")


def _two_tone(n=64, size=8):
    """Class 0 all black (-1), class 1 all white (+1)."""
    data = torch.cat([-torch.ones(n, 1, size, size), torch.ones(n, 1, size, size)])
    return data, torch.cat([torch.zeros(n, dtype=torch.int64), torch.ones(n, dtype=torch.int64)])


@pytest.mark.parametrize("size, blocks, attention", [(8, 1, None), (8, 1, 4), (32, 3, None), (32, 3, 16)])
def test_shapes_at_8_and_32_px(size, blocks, attention):
    gan = GANConfig(family="biggan", width=2, z_dim=12, attention_resolution=attention)
    G, D = build_gan(gan, (3, size, size), n_classes=3)
    assert isinstance(G, BigGANGenerator) and isinstance(D, BigGANDiscriminator)
    assert len(G.blocks) == blocks and len(D.blocks) == blocks + 1  # down to 4x4, then one more
    assert sum(G.chunks) == 12 and len(G.chunks) == blocks + 1  # the hierarchical latent
    assert sum(isinstance(m, SelfAttention) for m in [*G.modules(), *D.modules()]) == (2 if attention else 0)
    y = torch.tensor([0, 1, 2, 1])
    x = G(torch.randn(4, 12), y)
    assert x.shape == (4, 3, size, size) and x.abs().max() <= 1
    assert D(x, y).shape == (4,)
    assert G.linear.parametrizations.weight.original.shape[0] == 4 * 2 * 16  # ch = 4 * width at 4x4


def test_build_refuses_what_the_model_cannot_have():
    with pytest.raises(ConfigError, match="power-of-two"):
        build_gan(GANConfig(family="biggan", width=2, z_dim=8), (1, 28, 28), n_classes=2)
    with pytest.raises(ConfigError, match="z_dim >= 4"):
        build_gan(GANConfig(family="biggan", width=2, z_dim=3), (1, 32, 32), n_classes=2)
    with pytest.raises(ConfigError, match="4, 8, 16"):
        build_gan(GANConfig(family="biggan", width=2, z_dim=8, attention_resolution=32), (1, 32, 32),
                  n_classes=2)
    with pytest.raises(ConfigError, match="n_classes"):
        build_gan(GANConfig(family="biggan", width=2, z_dim=8), (1, 8, 8))


def test_hinge_loss_on_hand_made_logits():
    d_loss, g_loss = LOSSES["hinge"]
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, 0.0, 1.0])
    # real: relu(1 - r) = 0, 0.5, 2 -> 2.5 / 3; fake: relu(1 + f) = 0, 1, 2 -> 3 / 3
    assert d_loss(real, fake, 1.0).item() == pytest.approx(2.5 / 3 + 1.0)
    assert d_loss(real, fake, 0.9).item() == pytest.approx(2.5 / 3 + 1.0)  # no target to smooth
    assert g_loss(fake).item() == pytest.approx(2.0 / 3)


def test_the_hinge_loss_of_a_packed_member_is_its_solo_loss():
    """raygan.gan.pack vmaps the registry's losses over members: the hinge loss stays per member."""
    from raygan.gan.pack import PackMember, train_pack

    gan = GANConfig(family="dcgan", width=4, z_dim=8, loss="hinge")
    train = TrainConfig(steps=5, batch_size=8)
    data = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    packed = train_pack([PackMember(data=data, seed=s) for s in (0, 1)], gan=gan, train=train, device=CPU)
    solo = train_gan(data, gan=gan, train=train, seed=1, device=CPU)
    assert torch.allclose(torch.as_tensor(packed[1].losses), torch.as_tensor(solo.losses), atol=1e-5)
    assert not torch.allclose(torch.as_tensor(packed[0].losses), torch.as_tensor(solo.losses), atol=1e-5)


def test_the_generator_samples_the_class_it_is_asked_for(tmp_path):
    data, labels = _two_tone()
    gan = GANConfig(family="biggan", width=4, z_dim=8, loss="hinge", lr_g=2e-3, lr_d=2e-3, beta1=0.0)
    result = train_gan(data, gan=gan, train=TrainConfig(steps=100, batch_size=16, log_every=50), seed=0,
                       device=CPU, labels=labels, n_classes=2)
    save_generator(result.generator, gan, (1, 8, 8), tmp_path / "generator.pt")
    black, white = (generate(load_generator(tmp_path / "generator.pt", condition=k), 64, seed=1).mean()
                    for k in (0, 1))
    assert black < -0.5 and white > 0.5, (black, white)


def _sigmas(module: torch.nn.Module, which: str) -> list[float]:
    """Largest singular value of every spectrally normalised weight: the one layers use, or the raw."""
    out = []
    for m in module.modules():
        if hasattr(m, "parametrizations") and "weight" in m.parametrizations:
            w = m.weight if which == "used" else m.parametrizations.weight.original
            out.append(torch.linalg.matrix_norm(w.detach().flatten(1), ord=2).item())
    return out


def test_spectral_norm_keeps_every_layer_near_one_after_training():
    data, labels = _two_tone(n=32)
    gan = GANConfig(family="biggan", width=2, z_dim=8, loss="hinge", lr_g=2e-3, lr_d=2e-3,
                    attention_resolution=4)
    result = train_gan(data, gan=gan, train=TrainConfig(steps=30, batch_size=16, log_every=10), seed=0,
                       device=CPU, labels=labels, n_classes=2)
    G = result.generator
    used = _sigmas(G, "used")
    assert len(used) == 13  # linear, 2 x (2 cBN linears + conv) + shortcut, 4 attention convs, out conv
    assert all(abs(s - 1) < 0.1 for s in used), used
    assert max(abs(s - 1) for s in _sigmas(G, "raw")) > 0.05  # training moved the raw weights
    # Triple every raw weight: one training-mode forward (one power iteration) brings each back to 1.
    with torch.no_grad():
        for m in G.modules():
            if hasattr(m, "parametrizations"):
                m.parametrizations.weight.original.mul_(3.0)
        G.train()(torch.randn(4, 8), torch.tensor([0, 1, 0, 1]))
    assert min(_sigmas(G, "raw")) > 2.5
    assert all(abs(s - 1) < 0.1 for s in _sigmas(G.eval(), "used"))


def test_sampling_uses_the_ema_generator(tmp_path):
    data, labels = _two_tone(n=16)
    gan = GANConfig(family="biggan", width=2, z_dim=8, loss="hinge", ema_decay=0.5)
    ckpt = tmp_path / "checkpoint.pt"
    result = train_gan(data, gan=gan, train=TrainConfig(steps=6, batch_size=8, checkpoint_every=6,
                                                        log_every=6),
                       seed=0, device=CPU, labels=labels, n_classes=2, checkpoint_path=ckpt)
    saved = torch.load(ckpt, weights_only=True)
    state = result.generator.state_dict()
    key = "linear.parametrizations.weight.original"
    assert torch.equal(state[key], saved["G_ema"][key]) and not torch.equal(state[key], saved["G"][key])
    save_generator(result.generator, gan, (1, 8, 8), tmp_path / "generator.pt")
    z = torch.randn(4, 8)
    with torch.no_grad():
        assert torch.equal(load_generator(tmp_path / "generator.pt", condition=1)(z),
                           result.generator(z, torch.ones(4, dtype=torch.int64)))


def test_config_rules_for_biggan_and_the_hinge_loss():
    assert "biggan" in CONDITIONAL and "biggan" in UNPACKABLE
    base = ["data.name=digits", "gan.family=biggan", "gan.width=2", "gan.z_dim=8"]
    cfg = load_config(overrides=[*base, "gan.loss=hinge", "gan.attention_resolution=4"])
    assert "spectral norm" in why_not_packable(cfg)
    for extra, match in ((["gan.real_label=0.9", "gan.loss=hinge"], "real_label.*hinge"),
                         (["gan.attention_resolution=8"], "choose one of 4, or null"),
                         (["gan.attention_resolution=6", "data.image_size=32"], "one of 4, 8, 16, or"),
                         (["data.name=mnist", "data.root=/nowhere"], "power-of-two image size"),
                         (["cluster.members_per_task=2"], "spectral norm"),
                         (["ensemble.method=adagan"], "gan.family=biggan trains one model"),
                         (["train.recursive_rounds=1"], "gan.family=biggan")):
        with pytest.raises(ConfigError, match=match):
            load_config(overrides=[*base, *extra])
    with pytest.raises(ConfigError, match="attention_resolution.*has none"):
        load_config(overrides=["data.name=digits", "gan.attention_resolution=4"])


def test_conditional_members_of_an_unpackable_family_train_one_per_pack(tiny_digits_cfg):
    cfg = tiny_digits_cfg("gan.family=biggan", "gan.width=2", "gan.z_dim=8", "gan.loss=hinge",
                          "train.steps=4", "train.checkpoint_every=4", "train.log_every=2",
                          "data.classes={zero: [0], one: [1]}", "output.sample_grid=4")
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    data, labels = ds.train_split()
    units = [conditional_unit(cfg, run, data, labels, ds.classes, member=t) for t in (0, 1)]
    entries = [e for made in train_units(units, cfg, run, pack=True) for e in made]
    assert [(e["member"], e["condition"], e["pack_size"]) for e in entries] == \
        [(0, 0, 1), (0, 1, 1), (1, 0, 1), (1, 1, 1)]
    assert entries[0]["generator"] == entries[1]["generator"] != entries[2]["generator"]
    assert entries[0]["generator_sha256"] != entries[2]["generator_sha256"]
    # measured class by class (its lowest class), one verdict for each member's entries
    assert entries[0]["diversity"] == entries[1]["diversity"] >= 0 and "collapse" in entries[2]


def test_on_the_fly_data_of_a_biggan_run_pickles_and_draws_the_same(tiny_digits_cfg):
    import pickle

    from raygan.ensemble.training import train_independent
    from raygan.evaluation import generated

    cfg = tiny_digits_cfg("gan.family=biggan", "gan.width=2", "gan.z_dim=8", "gan.loss=hinge",
                          "train.steps=4", "train.checkpoint_every=4", "train.log_every=2",
                          "data.classes={zero: [0], one: [1]}", "output.sample_grid=4", "ensemble.members=1")
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    train_independent(cfg, ds, run)
    G, _ = build_gan(cfg.gan, (1, 8, 8), n_classes=2)
    with pytest.raises(RuntimeError, match="parametrized"):  # why the on-the-fly data loads lazily
        pickle.dumps(G)
    here = generated.on_the_fly(run, cfg, ds, 1, seed=3)
    (x, y) = here(1)  # loads the generators in this process
    lazy = pickle.loads(pickle.dumps(here))  # travels without them
    x2, y2 = lazy(1)
    assert torch.equal(y, y2) and torch.equal(x, x2) and len(y) == sum(len(ds.train[n]) for n in ds.classes)
    assert not torch.equal(lazy(2)[0], x)  # a fresh set every epoch


def test_cuda_graphs_are_refused_for_biggan_with_the_reason():
    with pytest.raises(ConfigError, match="gan.family=biggan is never packed"):
        load_config(overrides=["gan.family=biggan", "gan.loss=hinge", "train.cuda_graphs=true",
                               "train.device=cuda"])
