"""The fidelity levers of issue 15 (raygan.gan.fidelity): the EMA generator (gan.ema_decay), the R1
penalty (gan.r1_gamma), solo and packed, and the N_g ratio (ensemble.samples_ratio)."""
import copy
import dataclasses

import numpy as np
import pytest
import torch

from raygan.config import Config, ConfigError, DataConfig, EnsembleConfig, GANConfig, TrainConfig, from_dict
from raygan.data import load_dataset
from raygan.ensemble.counts import synthetic_count
from raygan.gan.checkpoints import load_generator, load_torch_file, save_generator
from raygan.gan.levers import check_levers
from raygan.gan.member import prepare_member
from raygan.gan.models import build_gan
from raygan.gan.pack import PackMember, train_pack
from raygan.gan.solo import SoloStepper
from raygan.gan.train import train_gan
from raygan.synthesis.shards import shard_plan

CPU = torch.device("cpu")
GAN = GANConfig(family="dcgan", width=4, z_dim=8)
TRAIN = TrainConfig(steps=2, batch_size=16, log_every=1, checkpoint_every=2)
PACK_TOL = 1e-4  # a packed member against its solo run (tests/unit/test_pack.py's AFTER_TOL)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits"))


def _params(module):
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _gap(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def _train(data, gan, steps, **kw):
    return train_gan(data, gan=gan, train=dataclasses.replace(TRAIN, steps=steps), seed=3, device=CPU, **kw)


def test_the_ema_generator_is_the_ema_of_the_raw_trajectory(digits):
    data, decay = digits.train[digits.classes[0]], 0.6
    torch.manual_seed(3)
    raw0 = _params(build_gan(GAN, tuple(data.shape[1:]))[0])
    raw1, raw2 = (_train(data, GAN, s).generator for s in (1, 2))  # ema_decay 0: the raw G
    ema = _train(data, dataclasses.replace(GAN, ema_decay=decay), 2).generator
    expect = {k: decay * (decay * raw0[k] + (1 - decay) * _params(raw1)[k]) + (1 - decay) * _params(raw2)[k]
              for k in raw0}
    assert _gap(_params(ema), expect) < 1e-6
    assert _gap(_params(ema), _params(raw2)) > 1e-4  # it is not the raw generator
    for name, b in raw2.named_buffers():  # running statistics are G's own
        assert torch.equal(dict(ema.named_buffers())[name], b)
    assert not ema.training


def test_sampling_and_generator_files_use_the_ema_weights(digits, tmp_path):
    data, gan = digits.train[digits.classes[1]], dataclasses.replace(GAN, ema_decay=0.5)
    result = _train(data, gan, 2, checkpoint_path=tmp_path / "checkpoint.pt")
    raw = _train(data, GAN, 2).generator
    save_generator(result.generator, gan, tuple(data.shape[1:]), tmp_path / "generator.pt")
    z = torch.randn(8, gan.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = result.generator(z)
        assert (want - raw(z)).abs().max() > 1e-4
        for path in ("generator.pt", "checkpoint.pt"):
            assert torch.equal(load_generator(tmp_path / path)(z), want)
    assert "G_ema" in load_torch_file(tmp_path / "checkpoint.pt", fix="")


def test_an_ema_checkpoint_resumes_exactly_and_a_default_one_has_no_ema(digits, tmp_path):
    data, gan = digits.train[digits.classes[2]], dataclasses.replace(GAN, ema_decay=0.7)
    whole = _train(data, gan, 4, checkpoint_path=tmp_path / "a.pt")
    _train(data, gan, 2, checkpoint_path=tmp_path / "b.pt")
    resumed = _train(data, gan, 4, checkpoint_path=tmp_path / "b.pt")
    assert resumed.resumed_from == 2
    sa, sb = _state(whole.generator), _state(resumed.generator)
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and np.array_equal(whole.losses, resumed.losses)
    _train(data, GAN, 2, checkpoint_path=tmp_path / "plain.pt")
    plain = load_torch_file(tmp_path / "plain.pt", fix="")
    assert "G_ema" not in plain and "ema_decay" not in plain["gan"] and "r1_gamma" not in plain["gan"]


def _pack_members(digits):
    return [PackMember(data=digits.train[digits.classes[i]], seed=20 + i) for i in range(2)]


@pytest.mark.parametrize("lever", [{"ema_decay": 0.8}, {"r1_gamma": 10.0}])
def test_a_packed_member_with_a_fidelity_lever_is_its_solo_run(lever, digits):
    gan, members = dataclasses.replace(GAN, **lever), _pack_members(digits)
    train = dataclasses.replace(TRAIN, steps=4, checkpoint_every=4)
    packed = train_pack(members, gan=gan, train=train, device=CPU)
    for m, p in zip(members, packed):
        solo = train_gan(m.data, gan=gan, train=train, seed=m.seed, device=CPU)
        assert np.abs(p.losses - solo.losses).max() <= PACK_TOL
        assert _gap(_state(p.generator), _state(solo.generator)) <= PACK_TOL
    base = train_pack(members, gan=GAN, train=train, device=CPU)
    for p, b in zip(packed, base):  # the lever did something: EMA to the generator, R1 to the d_loss
        moved = _gap(_state(p.generator), _state(b.generator)) if "ema_decay" in lever \
            else np.abs(p.losses[:, 0] - b.losses[:, 0]).max()
        assert moved > 1e-4


def _d_step_grads(digits, gamma):
    """D's gradients in one training step (captured as its optimizer steps), the D it started from,
    the step's real batch and its losses."""
    data = digits.train[digits.classes[3]]
    gan = dataclasses.replace(GAN, r1_gamma=gamma)

    def prepare():
        return prepare_member(data, gan=gan, train=TRAIN, seed=5, checkpoint_path=None, data_weights=None,
                              device=CPU, labels=None, n_classes=None)

    real = data[prepare().state.sampler.next()]  # the same seed: every run draws the same batch first
    m = prepare()
    D0, grads = copy.deepcopy(m.state.D), []
    step = m.state.opt_d.step
    m.state.opt_d.step = lambda: (grads.extend(p.grad.clone() for p in m.state.D.parameters()), step())
    losses = SoloStepper(m, 0, gan=gan, train=TRAIN).step(0)[0]  # the one adversarial step
    return grads, D0, real, losses


def test_r1_adds_the_gradient_of_its_penalty_to_the_discriminators(digits):
    gamma = 10.0
    with_r1, D0, real, loss_r1 = _d_step_grads(digits, gamma)
    without, _, real0, loss_0 = _d_step_grads(digits, 0.0)
    assert torch.equal(real, real0)
    x = real.clone().requires_grad_()
    gx, = torch.autograd.grad(D0(x).sum(), x, create_graph=True)
    penalty = gamma / 2 * gx.square().flatten(1).sum(1).mean()
    params = list(D0.parameters())  # the last layer's bias does not move grad_x: no gradient
    want = [torch.zeros_like(p) if g is None else g
            for p, g in zip(params, torch.autograd.grad(penalty, params, allow_unused=True))]
    assert max((a - b - w).abs().max().item() for a, b, w in zip(with_r1, without, want)) < 1e-5
    assert max(w.abs().max().item() for w in want) > 1e-3  # the penalty's gradient is not nothing
    assert abs((loss_r1[0] - loss_0[0]).item() - penalty.item()) < 1e-5  # the logged d_loss includes it


def test_r1_refuses_the_levers_that_cannot_run_it():
    for lever in ("compile", "cuda_graphs"):
        with pytest.raises(ConfigError, match=f"gan.r1_gamma.*train.{lever}"):
            check_levers(dataclasses.replace(GAN, r1_gamma=1.0), TrainConfig(**{lever: True}, device="cuda"))


class _Run:
    """The part of a RunFolder shard_plan reads: a manifest with one finished member per class."""

    def __init__(self, classes):
        self.members = {f"{n}/0": {"generator": f"members/{n}/0/generator.pt", "generator_sha256": "0"}
                        for n in classes}

    def manifest(self):
        return {"members": self.members}


def test_samples_ratio_gives_round_ratio_n_rows_per_class_and_not_with_samples_per_class(digits):
    cfg = dataclasses.replace(Config(), ensemble=EnsembleConfig(members=1, samples_ratio=2.5))
    items, spec = shard_plan(cfg, digits, _Run(digits.classes), {n: [1.0] for n in digits.classes})
    sizes = digits.train_sizes()
    for name in digits.classes:
        rows = sum(i["count"] for i in items if i["class_name"] == name)
        assert rows == spec["counts"][name][0] == round(2.5 * sizes[name]) == synthetic_count(cfg, sizes[name])
    assert synthetic_count(Config(), 7) == 7
    with pytest.raises(ConfigError, match="samples_per_class.*samples_ratio"):
        from_dict({"ensemble": {"samples_per_class": 10, "samples_ratio": 2.5}})
    with pytest.raises(ConfigError, match="gan.ema_decay"):
        from_dict({"gan": {"ema_decay": 1.0}})


def test_with_both_levers_a_pack_of_one_is_bit_for_bit_the_member_in_a_larger_pack(digits):
    """A rerun may regroup the members it resumes; the EMA's lerp_ and the R1 penalty must not make a
    member's bits depend on its pack's size (test_pack's property; width 8, where it holds without them)."""
    gan = GANConfig(family="dcgan", width=8, z_dim=16, ema_decay=0.9, r1_gamma=10.0)
    train = TrainConfig(steps=3, batch_size=16, log_every=3, checkpoint_every=3)
    members = _pack_members(digits)
    alone = train_pack(members[:1], gan=gan, train=train, device=CPU)[0]
    together = train_pack(members, gan=gan, train=train, device=CPU)[0]
    sa, st = _state(alone.generator), _state(together.generator)
    assert all(torch.equal(sa[k], st[k]) for k in sa) and np.array_equal(alone.losses, together.losses)
