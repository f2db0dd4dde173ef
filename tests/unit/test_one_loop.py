"""One training loop, one adversarial step: every family, alone and in a pack, trains through
raygan.gan.loop.train_loop and raygan.gan.step.adversarial_step (the only step in raygan)."""
import pytest
import torch

import raygan.gan.pack as pack_module
import raygan.gan.solo as solo_module
import raygan.gan.train as train_module
from raygan.config import DataConfig, GANConfig, TrainConfig
from raygan.data import load_dataset
from raygan.data.grid2d import sample_grid
from raygan.gan import loop, step
from raygan.gan.models import CONDITIONAL, GAN_FAMILIES, UNPACKABLE
from raygan.gan.pack import PackMember, train_pack
from raygan.gan.train import train_gan

TRAIN = TrainConfig(steps=3, batch_size=8, log_every=3, checkpoint_every=3, device="cpu")


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits"))


def _member(family, digits, i):
    if family == "mlp2d":
        return PackMember(data=sample_grid(64, 0.05, seed=i), seed=i)
    if family in CONDITIONAL:
        x, y = digits.train_split()
        return PackMember(data=x[:60], seed=i, labels=y[:60], n_classes=len(digits.classes))
    return PackMember(data=digits.train[digits.classes[i]], seed=i)


@pytest.fixture
def calls(monkeypatch):
    """Counts of the one step's and the one loop's calls, through every module that calls them."""
    seen = {"step": 0, "loop": 0}

    def counting_step(*args, **kwargs):
        seen["step"] += 1
        return step.adversarial_step(*args, **kwargs)

    def counting_loop(*args, **kwargs):
        seen["loop"] += 1
        return loop.train_loop(*args, **kwargs)

    for module in (solo_module, pack_module):
        assert module.adversarial_step is step.adversarial_step  # imported, not a copy
        monkeypatch.setattr(module, "adversarial_step", counting_step)
    for module in (train_module, pack_module):
        assert module.train_loop is loop.train_loop
        monkeypatch.setattr(module, "train_loop", counting_loop)
    return seen


@pytest.mark.parametrize("family", sorted(GAN_FAMILIES))
def test_every_family_trains_through_the_one_loop_and_step(family, digits, calls):
    gan = GANConfig(family=family, **({"z_dim": 2} if family == "mlp2d" else {"width": 8, "z_dim": 16}))
    m = _member(family, digits, 0)
    result = train_gan(m.data, gan=gan, train=TRAIN, seed=m.seed, labels=m.labels, n_classes=m.n_classes)
    assert torch.isfinite(torch.as_tensor(result.losses)).all()
    assert calls == {"step": TRAIN.steps, "loop": 1}
    if family in UNPACKABLE:
        return
    members = [_member(family, digits, i) for i in range(2)]
    results = train_pack(members, gan=gan, train=TRAIN)
    assert all(torch.isfinite(torch.as_tensor(r.losses)).all() for r in results)
    # one pack of two: one loop, one step call per step for both members at once
    assert calls == {"step": 2 * TRAIN.steps, "loop": 2}
