import numpy as np
import pytest
import torch

from raygan.config import GANConfig, TrainConfig
from raygan.gan.train import BatchSampler, CheckpointMismatchError, GANDivergedError, load_generator, train_gan

GRID = GANConfig(family="mlp2d", z_dim=2, lr_g=1e-3, lr_d=1e-3)
CPU = torch.device("cpu")


def _toy(n=2000, seed=0):
    """One Gaussian at (9.5, 6.5), std 0.1: far from where a fresh grid G puts its mass."""
    g = torch.Generator().manual_seed(seed)
    return torch.tensor([9.5, 6.5]) + 0.1 * torch.randn(n, 2, generator=g)


def _gap(G, data) -> float:
    """How far G's samples are from the data: distance of means plus difference of stds."""
    with torch.no_grad():
        x = G(torch.randn(2000, 2))
    return float((x.mean(0) - data.mean(0)).norm() + (x.std(0) - data.std(0)).abs().sum())


def test_it_learns_a_toy_gaussian():
    data = _toy()
    torch.manual_seed(0)
    from raygan.gan.models import build_gan
    G0, _ = build_gan(GRID, (2,))
    before = _gap(G0.eval(), data)
    result = train_gan(data, gan=GRID, train=TrainConfig(steps=400, batch_size=100, log_every=50),
                       seed=0, device=CPU)
    after = _gap(result.generator, data)
    assert before > 1.0
    assert after < 0.25 * before, (before, after)
    # the discriminator's loss rises from its easy start towards the equilibrium 2 log 2
    d = result.losses[:, 0]
    assert d[:20].mean() < d[-100:].mean()
    assert result.losses.shape == (400, 2) and np.isfinite(result.losses).all()


def _weights(module):
    return torch.cat([p.detach().flatten() for p in module.state_dict().values() if p.is_floating_point()])


def test_same_seed_same_weights_other_seed_other_weights():
    data, train = _toy(), TrainConfig(steps=30, batch_size=50, log_every=10)
    a = train_gan(data, gan=GRID, train=train, seed=3, device=CPU)
    b = train_gan(data, gan=GRID, train=train, seed=3, device=CPU)
    c = train_gan(data, gan=GRID, train=train, seed=4, device=CPU)
    assert torch.equal(_weights(a.generator), _weights(b.generator))
    assert np.array_equal(a.losses, b.losses)
    assert not torch.equal(_weights(a.generator), _weights(c.generator))


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("gan", [GRID, GANConfig(family="fc", z_dim=8, alpha=0.5, dropout=0.1,
                                                  g_steps_per_d_step=2)])
def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, gan):
    data = _toy() if gan.family == "mlp2d" else torch.rand(300, 1, 8, 8) * 2 - 1
    train = TrainConfig(steps=60, batch_size=32, checkpoint_every=20, log_every=10)
    full = train_gan(data, gan=gan, train=train, seed=1, device=CPU)

    ckpt = tmp_path / "member" / "checkpoint.pt"

    def crash(step, d, g):
        if step == 50:  # after the checkpoint at 40: steps 41-50 are lost and redone
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_gan(data, gan=gan, train=train, seed=1, device=CPU, checkpoint_path=ckpt, on_log=crash)
    assert torch.load(ckpt, weights_only=False)["step"] == 40
    resumed = train_gan(data, gan=gan, train=train, seed=1, device=CPU, checkpoint_path=ckpt)
    assert resumed.resumed_from == 40
    assert torch.equal(_weights(full.generator), _weights(resumed.generator))
    assert np.array_equal(full.losses, resumed.losses)
    # a finished checkpoint resumes to the same generator without training again
    again = train_gan(data, gan=gan, train=train, seed=1, device=CPU, checkpoint_path=ckpt)
    assert again.resumed_from == 60
    assert torch.equal(_weights(again.generator), _weights(full.generator))
    assert torch.equal(_weights(load_generator(ckpt)), _weights(full.generator))


def test_checkpoint_from_other_settings_is_refused(tmp_path):
    data, ckpt = _toy(), tmp_path / "c.pt"
    train = TrainConfig(steps=10, batch_size=32, checkpoint_every=5, log_every=5)
    train_gan(data, gan=GRID, train=train, seed=1, device=CPU, checkpoint_path=ckpt)
    with pytest.raises(CheckpointMismatchError, match="new output.run"):
        train_gan(data, gan=GRID, train=train, seed=2, device=CPU, checkpoint_path=ckpt)


def test_weighted_sampling_follows_weights():
    weights = torch.tensor([0.0, 0.1, 0.2, 0.7, 0.0])
    sampler = BatchSampler(5, 1000, torch.Generator().manual_seed(0), weights)
    counts = torch.bincount(torch.cat([sampler.next() for _ in range(100)]), minlength=5).double()
    freq = counts / counts.sum()
    assert freq[0] == 0 and freq[4] == 0
    assert torch.allclose(freq, weights.double(), atol=0.01)
    # fewer non-zero weights than the batch size still works (drawn with replacement)
    one = BatchSampler(5, 64, torch.Generator().manual_seed(0), torch.tensor([0, 0, 1.0, 0, 0]))
    assert set(one.next().tolist()) == {2}


def test_uniform_sampling_visits_every_point_once_per_epoch():
    sampler = BatchSampler(10, 5, torch.Generator().manual_seed(0))
    epoch = torch.cat([sampler.next(), sampler.next()])
    assert sorted(epoch.tolist()) == list(range(10))


def test_training_with_data_weights_only_sees_weighted_points():
    # all weight on the points of one cluster: the generator moves to that cluster only
    a = torch.tensor([6.0, 6.0]) + 0.05 * torch.randn(500, 2)
    b = torch.tensor([10.0, 10.0]) + 0.05 * torch.randn(500, 2)
    data = torch.cat([a, b])
    weights = torch.cat([torch.zeros(500), torch.ones(500)])
    result = train_gan(data, gan=GRID, train=TrainConfig(steps=300, batch_size=100, log_every=50),
                       seed=0, device=CPU, data_weights=weights)
    with torch.no_grad():
        x = result.generator(torch.randn(1000, 2))
    near_b = ((x - torch.tensor([10.0, 10.0])).norm(dim=1) < 1.5).float().mean()
    near_a = ((x - torch.tensor([6.0, 6.0])).norm(dim=1) < 1.5).float().mean()
    assert near_b > 0.8 and near_a < 0.05


def test_divergence_stops_with_a_clear_error(tmp_path):
    data = _toy()
    data[5] = float("nan")  # a poisoned sample makes the discriminator loss NaN
    train = TrainConfig(steps=40, batch_size=2000, checkpoint_every=10, log_every=10)
    with pytest.raises(GANDivergedError, match=r"diverged at step 0: .*Lower gan.lr_d"):
        train_gan(data, gan=GRID, train=train, seed=0, device=CPU, checkpoint_path=tmp_path / "c.pt")
    assert not (tmp_path / "c.pt").exists()  # a diverged model is never checkpointed


def test_bad_data_weights_are_refused():
    with pytest.raises(ValueError, match="non-negative"):
        train_gan(_toy(10), gan=GRID, train=TrainConfig(steps=1, batch_size=5), seed=0, device=CPU,
                  data_weights=torch.tensor([-1.0] * 10))
