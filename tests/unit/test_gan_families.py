"""GAN families through train_gan: DCGAN (batch / seed 004's layer norm), seed 003's class-conditional
CCGAN, the progressively growing PG-GAN, and seed 001's truncation trick in synth.generate."""
import dataclasses

import numpy as np
import pytest
import torch

from raygan.config import ConfigError, GANConfig, TrainConfig
from raygan.gan.models import build_gan, pg_schedule
from raygan.gan.models.ccgan import CCGANGenerator, ConditionedGenerator
from raygan.gan.models.pggan import PGDiscriminator, PGGenerator
from raygan.gan.train import CheckpointMismatchError, load_generator, save_generator, train_gan
from raygan.synthesis.generate import generate, truncated_normal

CPU = torch.device("cpu")
FEW = TrainConfig(steps=3, batch_size=4, checkpoint_every=3, log_every=3)


def _images(n, shape, seed=0):
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _weights(module):
    return torch.cat([p.detach().flatten() for p in module.state_dict().values() if p.is_floating_point()])


# --- every family trains and samples (C, H, W) -------------------------------------------------------

@pytest.mark.parametrize("size", [28, 32, 64, 128])
@pytest.mark.parametrize("g_norm", ["batch", "layer"])
def test_dcgan_trains_and_samples_at_every_size(size, g_norm):
    gan = GANConfig(family="dcgan", width=4, z_dim=8, g_norm=g_norm)
    result = train_gan(_images(16, (1, size, size)), gan=gan, train=FEW, seed=0, device=CPU)
    assert np.isfinite(result.losses).all()
    x = generate(result.generator, 5, seed=0)
    assert x.shape == (5, 1, size, size) and x.abs().max() <= 1


@pytest.mark.parametrize("family, shape", [("fc", (1, 8, 8)), ("mlp2d", (2,))])
def test_the_other_unconditional_families_still_train(family, shape):
    gan = GANConfig(family=family, z_dim=2 if family == "mlp2d" else 8, alpha=0.5)
    result = train_gan(_images(16, shape), gan=gan, train=FEW, seed=0, device=CPU)
    assert generate(result.generator, 5, seed=0).shape == (5, *shape)


def test_layer_norm_generator_normalises_each_sample_alone():
    """Seed 004 eq. (4)-(7): statistics per sample over (C, H, W), so in training mode a sample's image
    does not depend on the rest of its batch, which batch norm's does."""
    z = torch.randn(6, 8)
    for g_norm, independent in (("layer", True), ("batch", False)):
        G, _ = build_gan(GANConfig(family="dcgan", width=4, z_dim=8, g_norm=g_norm), (3, 32, 32))
        G.train()
        norms = [m for m in G.modules() if isinstance(m, (torch.nn.GroupNorm, torch.nn.BatchNorm2d))]
        assert norms and all(isinstance(m, torch.nn.GroupNorm) == (g_norm == "layer") for m in norms)
        assert all(m.num_groups == 1 for m in norms if isinstance(m, torch.nn.GroupNorm))
        alone, in_batch = G(z[:2]), G(z)[:2]
        assert torch.allclose(alone, in_batch, atol=1e-5) == independent


# --- ccgan -------------------------------------------------------------------------------------------

def _two_tone(n=200, size=16):
    """Class 0 all black (-1), class 1 all white (+1)."""
    data = torch.cat([-torch.ones(n, 1, size, size), torch.ones(n, 1, size, size)])
    labels = torch.cat([torch.zeros(n, dtype=torch.int64), torch.ones(n, dtype=torch.int64)])
    return data, labels


def test_ccgan_needs_classes_and_labels_and_other_families_refuse_labels():
    gan = GANConfig(family="ccgan", width=4, z_dim=8)
    data, labels = _two_tone(8, 8)
    with pytest.raises(ConfigError, match="n_classes"):
        build_gan(gan, (1, 8, 8))
    with pytest.raises(ValueError, match="needs labels"):
        train_gan(data, gan=gan, train=FEW, seed=0, device=CPU)
    with pytest.raises(ValueError, match=r"\[0, n_classes=2\)"):
        train_gan(data, gan=gan, train=FEW, seed=0, device=CPU, labels=labels + 1, n_classes=2)
    with pytest.raises(ValueError, match="unconditional"):
        train_gan(data, gan=GANConfig(family="dcgan", width=4, z_dim=8), train=FEW, seed=0, device=CPU,
                  labels=labels, n_classes=2)


def test_ccgan_fakes_take_the_real_batch_labels(monkeypatch):
    seen = []
    forward = CCGANGenerator.forward
    monkeypatch.setattr(CCGANGenerator, "forward", lambda self, z, y: seen.append(y.clone()) or
                        forward(self, z, y))
    # 48 of class 0, 16 of class 1; 40 steps of 16 are 10 shuffled epochs: exactly 3/4 class 0.
    data = _images(64, (1, 8, 8))
    labels = torch.tensor([0] * 48 + [1] * 16)
    gan = GANConfig(family="ccgan", width=4, z_dim=8)
    train_gan(data, gan=gan, train=TrainConfig(steps=40, batch_size=16, log_every=10), seed=0,
              device=CPU, labels=labels, n_classes=2)
    drawn = torch.cat(seen)
    assert len(seen) == 40 and (drawn == 0).float().mean().item() == 0.75


def test_ccgan_checkpoint_records_classes_and_loads_one_class_per_condition(tmp_path):
    data, labels = _two_tone(16, 8)
    gan = GANConfig(family="ccgan", width=4, z_dim=8)
    ckpt = tmp_path / "checkpoint.pt"
    result = train_gan(data, gan=gan, train=FEW, seed=0, device=CPU, labels=labels, n_classes=3,
                       checkpoint_path=ckpt)
    saved = torch.load(ckpt, weights_only=False)
    assert saved["n_classes"] == 3 and saved["identity"]["n_classes"] == 3
    save_generator(result.generator, gan, (1, 8, 8), tmp_path / "generator.pt")
    for path in (ckpt, tmp_path / "generator.pt"):
        with pytest.raises(ValueError, match="condition=k"):
            load_generator(path)
        with pytest.raises(ValueError, match="not a class"):
            load_generator(path, condition=3)
        G2 = load_generator(path, condition=2)
        assert isinstance(G2, ConditionedGenerator) and G2.z_dim == 8 and not G2.training
        z = torch.randn(4, 8)
        with torch.no_grad():
            assert torch.equal(G2(z), result.generator(z, torch.full((4,), 2)))
        assert generate(G2, 5, seed=0).shape == (5, 1, 8, 8)
    # an unconditional generator refuses a condition
    plain = train_gan(data, gan=GANConfig(family="dcgan", width=4, z_dim=8), train=FEW, seed=0,
                      device=CPU, checkpoint_path=tmp_path / "plain.pt")
    assert "n_classes" not in torch.load(tmp_path / "plain.pt", weights_only=False)["identity"]
    with pytest.raises(ValueError, match="unconditional"):
        load_generator(tmp_path / "plain.pt", condition=0)
    assert plain.generator.z_dim == 8


def test_ccgan_samples_the_class_it_is_asked_for(tmp_path):
    data, labels = _two_tone()
    gan = GANConfig(family="ccgan", width=8, z_dim=8, lr_g=1e-3, lr_d=1e-3)
    result = train_gan(data, gan=gan, train=TrainConfig(steps=300, batch_size=32, log_every=100),
                       seed=0, device=CPU, labels=labels, n_classes=2)
    save_generator(result.generator, gan, (1, 16, 16), tmp_path / "generator.pt")
    black, white = (generate(load_generator(tmp_path / "generator.pt", condition=k), 64, seed=1).mean()
                    for k in (0, 1))
    assert black < -0.5 and white > 0.5, (black, white)


# --- pggan -------------------------------------------------------------------------------------------

def test_pg_schedule_splits_steps_evenly_and_fades_the_first_part_of_each_share():
    sched = [pg_schedule(s, 40, [4, 8, 16, 32], 0.5) for s in range(40)]
    assert sched[:10] == [(4, 1.0)] * 10
    assert sched[10:20] == [(8, a) for a in (0.0, 0.2, 0.4, 0.6, 0.8)] + [(8, 1.0)] * 5
    assert [r for r, _ in sched[20:30]] == [16] * 10 and [r for r, _ in sched[30:]] == [32] * 10
    assert [pg_schedule(s, 12, [8, 16], 0.0) for s in (0, 5, 6, 11)] == \
        [(8, 1.0), (8, 1.0), (16, 1.0), (16, 1.0)]


def test_pggan_grows_through_its_resolutions_and_samples_full_size(monkeypatch):
    calls = {"G": [], "D": []}
    for cls, key in ((PGGenerator, "G"), (PGDiscriminator, "D")):
        original = cls.set_progress
        monkeypatch.setattr(cls, "set_progress", lambda self, r, a, _o=original, _k=key:
                            calls[_k].append((r, a)) or _o(self, r, a))
    gan = GANConfig(family="pggan", width=2, z_dim=8)
    train = TrainConfig(steps=16, batch_size=4, log_every=8)
    result = train_gan(_images(16, (3, 32, 32)), gan=gan, train=train, seed=0, device=CPU)
    per_step = calls["G"][:16]
    assert per_step == [pg_schedule(s, 16, [4, 8, 16, 32], 0.5) for s in range(16)]
    assert list(dict.fromkeys(r for r, _ in per_step)) == [4, 8, 16, 32]
    assert calls["D"] == calls["G"]
    assert calls["G"][16:] == [(32, 1.0)]  # a trained generator samples at full size
    assert generate(result.generator, 5, seed=0).shape == (5, 3, 32, 32)


def test_pggan_starts_at_pg_start_size_and_grows_to_128():
    gan = GANConfig(family="pggan", width=2, z_dim=8, pg_start_size=8)
    train = TrainConfig(steps=5, batch_size=2, log_every=5)
    result = train_gan(_images(4, (3, 128, 128)), gan=gan, train=train, seed=0, device=CPU)
    assert np.isfinite(result.losses).all()
    assert generate(result.generator, 2, seed=0).shape == (2, 3, 128, 128)
    with pytest.raises(ConfigError, match="power of two"):
        build_gan(GANConfig(family="pggan"), (1, 28, 28))
    with pytest.raises(ConfigError, match="pg_start_size"):
        build_gan(GANConfig(family="pggan", pg_start_size=64), (1, 32, 32))


def test_pggan_fade_in_starts_where_the_previous_resolution_ended():
    """alpha = 0 at resolution r is the network at r / 2 with alpha = 1: growing is continuous."""
    torch.manual_seed(0)
    G, D = build_gan(GANConfig(family="pggan", width=2, z_dim=8), (3, 32, 32))
    z, x = torch.randn(4, 8), _images(4, (3, 32, 32))
    for r in (8, 16, 32):
        out = []
        for res, alpha in ((r // 2, 1.0), (r, 0.0), (r, 0.5)):
            G.set_progress(res, alpha)
            D.set_progress(res, alpha)
            out.append((G(z), D(x)))
        assert torch.allclose(out[0][0], out[1][0], atol=1e-6)
        assert torch.allclose(out[0][1], out[1][1], atol=1e-5)
        assert not torch.allclose(out[0][0], out[2][0], atol=1e-3)  # the new block does count


class _Interrupt(Exception):
    pass


def test_pggan_resume_mid_fade_equals_uninterrupted_run(tmp_path):
    data = _images(32, (1, 16, 16))
    gan = GANConfig(family="pggan", width=2, z_dim=8)
    # 4, 8, 16 px over steps 0-19, 20-39, 40-59; the checkpoint at 25 is mid fade-in of 8 px
    train = TrainConfig(steps=60, batch_size=8, checkpoint_every=25, log_every=10)
    full = train_gan(data, gan=gan, train=train, seed=1, device=CPU)
    ckpt = tmp_path / "checkpoint.pt"

    def crash(step, d, g):
        if step == 30:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_gan(data, gan=gan, train=train, seed=1, device=CPU, checkpoint_path=ckpt, on_log=crash)
    assert torch.load(ckpt, weights_only=False)["step"] == 25
    resumed = train_gan(data, gan=gan, train=train, seed=1, device=CPU, checkpoint_path=ckpt)
    assert resumed.resumed_from == 25
    assert torch.equal(_weights(full.generator), _weights(resumed.generator))
    assert np.array_equal(full.losses, resumed.losses)
    assert torch.equal(generate(load_generator(ckpt), 4, seed=0), generate(full.generator, 4, seed=0))
    # the schedule is laid out over train.steps: other steps cannot continue this checkpoint
    with pytest.raises(CheckpointMismatchError):
        train_gan(data, gan=gan, train=dataclasses.replace(train, steps=90), seed=1, device=CPU,
                  checkpoint_path=ckpt)


# --- truncation (seed 001) ---------------------------------------------------------------------------

class _Latents(torch.nn.Module):
    """A 'generator' that returns its latents, to look at what generate feeds G."""
    z_dim = 16

    def forward(self, z):
        return z


def test_truncated_latents_are_resampled_inside_tau_and_reproducible():
    G, tau = _Latents(), 0.5
    z = generate(G, 3000, seed=3, batch_size=1000, truncation=tau)
    assert z.shape == (3000, 16) and z.abs().max() <= tau
    # resampled, not clipped: no pile-up at +-tau, and roughly uniform-looking inside for small tau
    assert (z.abs() == tau).sum() == 0 and 0.2 < z.abs().mean() < 0.3  # clipping: about 0.4
    assert torch.equal(z, generate(G, 3000, seed=3, batch_size=1000, truncation=tau))
    assert not torch.equal(z, generate(G, 3000, seed=4, batch_size=1000, truncation=tau))
    plain = generate(G, 3000, seed=3, batch_size=1000)
    assert plain.abs().max() > 3 * tau and not torch.equal(plain[:, :4], z[:, :4])
    # without truncation the latents are the plain seeded normals they always were
    assert torch.equal(plain[:1000], torch.randn(1000, 16, generator=torch.Generator().manual_seed(3)))
    rng = torch.Generator().manual_seed(0)
    assert truncated_normal((100, 4), 1.0, rng).abs().max() <= 1.0
    with pytest.raises(ValueError, match="tau"):
        truncated_normal((2, 2), 0.0, rng)


def test_truncation_changes_the_samples_of_a_trained_generator():
    result = train_gan(_images(16, (1, 8, 8)), gan=GANConfig(family="dcgan", width=4, z_dim=8),
                       train=FEW, seed=0, device=CPU)
    a = generate(result.generator, 8, seed=0, truncation=0.5)
    assert torch.equal(a, generate(result.generator, 8, seed=0, truncation=0.5))
    assert not torch.allclose(a, generate(result.generator, 8, seed=0))


def test_bench_dcgan_is_a_cli_choice():
    from raygan.cli import build_parser
    from raygan.tools.bench import BENCHMARKS

    args = build_parser().parse_args(["bench", "dcgan", "--steps", "30", "--repeats", "3"])
    assert args.name == "dcgan" and "dcgan" in BENCHMARKS
    assert build_parser().parse_args(["bench", "train-step", "--family", "dcgan"]).family == "dcgan"
