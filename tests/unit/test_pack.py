"""Packed members (raygan.gan.pack): a member trained in a pack is its solo train_gan run up to float
rounding, diverged members leave without touching the others, packs resume bit for bit, checkpoints
cross between packs and train_gan, and train_members writes train_member's member folders."""
import dataclasses
import shutil

import numpy as np
import pytest
import torch
from member_units import train_member, train_members

from raygan.config import DataConfig, GANConfig, TrainConfig
from raygan.data import load_dataset
from raygan.data.grid2d import sample_grid
from raygan.gan.member import prepare_member
from raygan.gan.models import build_gan
from raygan.gan.pack import PackMember, PackStepper, train_pack
from raygan.gan.train import GANDivergedError, TrainResult, train_gan
from raygan.runs import RunFolder
from raygan.seeds import member as member_seed

CPU = torch.device("cpu")
TINY = dict(width=8, z_dim=16)
# A member in a pack against its solo run: the first step's losses agree to FIRST_STEP_TOL, and after
# STEPS steps every loss and generator tensor to AFTER_TOL (measured: 2.4e-7 at most over 40 steps;
# the pack's matrix-product convolutions round differently from oneDNN's, and training amplifies it).
# mlp2d: a bias just before a batch norm has a gradient of zero up to rounding, which Adam scales to
# steps of size lr in whichever direction the rounding points, differently in any two implementations;
# so mlp2d runs agree to MLP2D_TOL for MLP2D_STEPS steps (measured 2.4e-4), and after 20 steps one
# member in four had drifted to 2.5e-2 (as two solo runs would on two machines).
STEPS, FIRST_STEP_TOL, AFTER_TOL = 20, 1e-5, 1e-4
MLP2D_STEPS, MLP2D_TOL = 5, 5e-3
TRAIN = TrainConfig(steps=STEPS, batch_size=16, log_every=10, checkpoint_every=10)


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits"))


def _members(family, digits, n=4):
    """Four members with different data sizes: digit classes (conditional: growing prefixes of the
    training split, with labels), grid points for mlp2d."""
    if family == "mlp2d":
        return [PackMember(data=sample_grid(100 + 17 * i, 0.05, seed=i), seed=10 + i) for i in range(n)]
    if family == "ccgan":
        x, y = digits.train_split()
        return [PackMember(data=x[:150 + 40 * i], seed=10 + i, labels=y[:150 + 40 * i],
                           n_classes=len(digits.classes)) for i in range(n)]
    return [PackMember(data=digits.train[digits.classes[i]], seed=10 + i) for i in range(n)]


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _max_gap(a: dict, b: dict) -> float:
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


def _identical(a: TrainResult, b: TrainResult) -> bool:
    sa, sb = _state(a.generator), _state(b.generator)
    return all(torch.equal(sa[k], sb[k]) for k in sa) and np.array_equal(a.losses, b.losses)


GANS = {"dcgan": GANConfig(family="dcgan", **TINY),
        "dcgan-layer": GANConfig(family="dcgan", g_norm="layer", **TINY),
        "dcgan-diffaugment": GANConfig(family="dcgan", diffaugment="translation,cutout,color",
                                       g_steps_per_d_step=2, **TINY),
        "dcgan-pacgan-mbstd": GANConfig(family="dcgan", pacgan=2, minibatch_std=4, **TINY),
        "ccgan": GANConfig(family="ccgan", **TINY),
        "mlp2d": GANConfig(family="mlp2d", z_dim=2),
        "mlp2d-pacgan": GANConfig(family="mlp2d", z_dim=2, pacgan=4),
        "fc": GANConfig(family="fc", z_dim=16, alpha=0.5, dropout=0.1, g_steps_per_d_step=2)}


def test_packed_members_start_from_train_gans_weights(digits):
    gan, members = GANS["dcgan"], _members("dcgan", digits)
    prepared = [prepare_member(m.data, gan=gan, train=TRAIN, seed=m.seed, checkpoint_path=None, data_weights=None,
                         device=CPU, labels=None, n_classes=None, own_rngs=True) for m in members]
    pack = PackStepper(prepared, list(range(len(members))), gan, CPU, batch_size=TRAIN.batch_size)
    for i, m in enumerate(members):
        torch.manual_seed(m.seed)
        G, D = build_gan(gan, tuple(m.data.shape[1:]))
        for stack, solo in ((pack.G, G), (pack.D, D)):
            assert all(torch.equal(stack[name][i], t) for name, t in solo.state_dict().items())


@pytest.mark.parametrize("name", list(GANS))
def test_a_packed_member_is_its_solo_run(name, digits):
    gan, members = GANS[name], _members(GANS[name].family, digits)
    if gan.family != "ccgan":  # one member draws its batches by data weights (AdaGAN's)
        n = len(members[1].data)
        members[1] = dataclasses.replace(members[1], data_weights=torch.rand(
            n, generator=torch.Generator().manual_seed(0)) * (torch.arange(n) % 3 > 0))
    steps, tol = (MLP2D_STEPS, MLP2D_TOL) if gan.family == "mlp2d" else (STEPS, AFTER_TOL)
    train = dataclasses.replace(TRAIN, steps=steps)
    packed = train_pack(members, gan=gan, train=train, device=CPU)
    for m, p in zip(members, packed):
        solo = train_gan(m.data, gan=gan, train=train, seed=m.seed, device=CPU, labels=m.labels,
                         n_classes=m.n_classes, data_weights=m.data_weights)
        assert p.losses.shape == (steps, 2) and np.isfinite(p.losses).all()
        assert np.abs(p.losses[0] - solo.losses[0]).max() <= FIRST_STEP_TOL
        assert np.abs(p.losses - solo.losses).max() <= tol
        assert _max_gap(_state(p.generator), _state(solo.generator)) <= tol
        assert not p.generator.training and p.resumed_from == 0
    if name == "fc":  # it learns: every generator's mean image moves towards its class's
        z = torch.randn(500, gan.z_dim)
        for m, p in zip(members, packed):
            torch.manual_seed(m.seed)
            G0, _ = build_gan(gan, (1, 8, 8))
            x = p.generator(z)
            assert x.shape == (500, 1, 8, 8) and x.abs().max() <= 1
            gap = [(G(z).mean(0) - m.data.mean(0)).abs().mean() for G in (G0.eval(), p.generator)]
            assert gap[1] < gap[0]


def test_a_nan_member_leaves_its_pack_mates_as_a_pack_without_it(digits, tmp_path):
    gan = GANS["dcgan"]
    train = TrainConfig(steps=12, batch_size=16, log_every=4, checkpoint_every=2)
    members = _members("dcgan", digits)
    poisoned = members[1].data.clone()
    # the first epoch's last index (the sampler's first draw is its epoch's permutation): not in the
    # first batch, so the member trains a few good steps and checkpoints before it diverges
    last = torch.randperm(len(poisoned), generator=torch.Generator().manual_seed(members[1].seed))[-1]
    poisoned[last] = float("nan")
    with_nan = [PackMember(data=poisoned if i == 1 else m.data, seed=m.seed,
                           checkpoint_path=tmp_path / f"pack{i}.pt") for i, m in enumerate(members)]
    results = train_pack(with_nan, gan=gan, train=train, device=CPU)
    without = train_pack([members[i] for i in (0, 2, 3)], gan=gan, train=train, device=CPU)
    assert all(_identical(results[i], w) for i, w in zip((0, 2, 3), without))
    err = results[1]
    assert isinstance(err, GANDivergedError)
    with pytest.raises(GANDivergedError) as solo:
        train_gan(poisoned, gan=gan, train=train, seed=members[1].seed, device=CPU,
                  checkpoint_path=tmp_path / "solo.pt")
    assert str(err) == str(solo.value) and "last good checkpoint is kept" in str(err)
    kept, solo_kept = (torch.load(tmp_path / f, weights_only=False) for f in ("pack1.pt", "solo.pt"))
    assert 0 < kept["step"] == solo_kept["step"] < train.steps
    assert torch.load(tmp_path / "pack0.pt", weights_only=False)["step"] == train.steps


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("name", ["dcgan", "fc"])
def test_an_interrupted_pack_resumes_bit_for_bit(name, digits, tmp_path):
    gan, train = GANS[name], TrainConfig(steps=30, batch_size=16, log_every=10, checkpoint_every=10)
    members = _members(gan.family, digits, n=3)
    full = train_pack(members, gan=gan, train=train, device=CPU)

    def at(folder):
        return [PackMember(data=m.data, seed=m.seed, checkpoint_path=tmp_path / folder / f"{i}.pt")
                for i, m in enumerate(members)]

    def crash(member, step, d, g):
        if step == 20:  # before the checkpoint of step 20: steps 11-20 are lost and redone
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_pack(at("a"), gan=gan, train=train, device=CPU, on_log=crash)
    shutil.copy(tmp_path / "a" / "0.pt", tmp_path / "step10.pt")
    resumed = train_pack(at("a"), gan=gan, train=train, device=CPU)
    assert [r.resumed_from for r in resumed] == [10, 10, 10]
    assert all(_identical(f, r) for f, r in zip(full, resumed))

    # the pack's checkpoint is train_gan's: same keys and identity, and train_gan resumes it
    solo_ckpt = tmp_path / "solo.pt"
    train_gan(members[0].data, gan=gan, train=train, seed=members[0].seed, device=CPU,
              checkpoint_path=solo_ckpt)
    ours, theirs = (torch.load(p, weights_only=False) for p in (tmp_path / "a" / "0.pt", solo_ckpt))
    assert ours.keys() == theirs.keys() and ours["identity"] == theirs["identity"]
    assert ours["opt_g"]["param_groups"] == theirs["opt_g"]["param_groups"]
    alone = train_gan(members[0].data, gan=gan, train=train, seed=members[0].seed, device=CPU,
                      checkpoint_path=tmp_path / "step10.pt")
    assert alone.resumed_from == 10
    assert np.abs(alone.losses - full[0].losses).max() <= AFTER_TOL

    # ... and a pack resumes train_gan's checkpoint (here member 0 is complete, the others fresh)
    mixed = train_pack([PackMember(data=m.data, seed=m.seed, checkpoint_path=solo_ckpt if i == 0 else None)
                        for i, m in enumerate(members)], gan=gan, train=train, device=CPU)
    assert [r.resumed_from for r in mixed] == [30, 0, 0]
    assert all(_identical(f, r) for f, r in zip(full[1:], mixed[1:]))


def test_a_progressive_gan_is_not_packed_and_its_pack_of_one_is_train_gan(digits):
    members, gan = _members("dcgan", digits, n=2), GANConfig(family="pggan", width=4, z_dim=8)
    with pytest.raises(ValueError, match="gan.family=pggan cannot be packed.*train_gan"):
        train_pack(members, gan=gan, train=TRAIN, device=CPU)
    train = TrainConfig(steps=4, batch_size=8, log_every=2)
    [alone] = train_pack(members[:1], gan=gan, train=train, device=CPU)
    assert _identical(alone, train_gan(members[0].data, gan=gan, train=train, seed=members[0].seed,
                                       device=CPU))


def test_members_of_one_pack_share_an_architecture(digits):
    members = _members("dcgan", digits, n=2)
    members[1] = PackMember(data=torch.zeros(50, 1, 16, 16), seed=1)
    with pytest.raises(ValueError, match="share one architecture"):
        train_pack(members, gan=GANS["dcgan"], train=TRAIN, device=CPU)


def test_train_members_writes_train_members_folders(tiny_digits_cfg, tmp_path):
    cfg = tiny_digits_cfg()
    ds = load_dataset(cfg.data)
    units = [{"class_name": ds.classes[k], "class_index": k, "member": 0, "data": ds.train[ds.classes[k]]}
             for k in (0, 3)]
    poisoned = ds.train[ds.classes[5]].clone()
    poisoned[:] = float("nan")
    units.append({"class_name": ds.classes[5], "class_index": 5, "member": 1, "data": poisoned,
                  "data_weights": None})
    packed_run = RunFolder.for_config(cfg)
    entries = train_members(units, cfg, packed_run)
    solo_run = RunFolder.for_config(tiny_digits_cfg(f"output.root={tmp_path}/solo"))
    for u, e in zip(units[:2], entries):
        solo = train_member(u["data"], cfg, solo_run, class_name=u["class_name"],
                            class_index=u["class_index"], member=0)
        assert e.keys() == solo.keys() | {"pack_size"} and e["pack_size"] == 3
        for key in ("class", "class_index", "member", "seed", "status", "steps", "resumed_from",
                    "generator", "device"):
            assert e[key] == solo[key], key
        assert abs(e["final_d_loss"] - solo["final_d_loss"]) <= AFTER_TOL
        ours, theirs = (run.member_dir(u["class_name"], 0) for run in (packed_run, solo_run))
        assert sorted(p.name for p in ours.iterdir()) == sorted(p.name for p in theirs.iterdir())
        assert (ours / "losses.csv").read_text().splitlines()[0] == "step,d_loss,g_loss"
        assert torch.load(ours / "generator.pt", weights_only=False).keys() == \
            torch.load(theirs / "generator.pt", weights_only=False).keys()
    bad = entries[2]
    assert bad["status"] == "diverged" and "diverged at step 0" in bad["error"]
    assert "generator" not in bad and bad["seed"] == member_seed(cfg.train.seed, 5, 1)
    assert not (packed_run.member_dir(ds.classes[5], 1) / "generator.pt").exists()


@pytest.mark.parametrize("name", ["dcgan", "mlp2d", "dcgan-pacgan-mbstd"])
def test_a_member_in_a_pack_of_one_is_bit_for_bit_itself_in_a_larger_pack(name, digits):
    """A rerun may regroup the members it resumes (a pack that lost its mates to a crash or to
    divergence goes on alone): the grouping must not change a member's bits."""
    gan, train = GANS[name], TrainConfig(steps=6, batch_size=16, log_every=2, checkpoint_every=0)
    members = _members(gan.family, digits, n=2)
    alone = train_pack(members[:1], gan=gan, train=train, device=CPU)[0]
    together = train_pack(members, gan=gan, train=train, device=CPU)[0]
    assert _identical(alone, together)
