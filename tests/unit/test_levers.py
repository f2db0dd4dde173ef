"""The GPU speed levers on the CPU (raygan.gan.levers): bf16 autocast trains with finite losses close to
fp32's, channels_last gives fp32's losses, compile and CUDA graphs are refused before any work where
they cannot run. torch.compile itself is measured by `raygan bench gpu` only: compiling the tiny pack
takes about a minute on these 2 cores."""
import contextlib
import dataclasses
import functools

import numpy as np
import pytest
import torch

from raygan.config import ConfigError, GANConfig, TrainConfig
from raygan.gan.levers import PLAIN, Levers, check_levers
from raygan.gan.models import build_gan
from raygan.gan.pack import PackMember, train_pack
from raygan.gan.stack import Stack, in_layout, stored_layout
from raygan.gan.train import train_gan

STEPS = 20
BF16_FIRST_STEP_TOL = 1e-3   # the same weights, bf16 rounding only (measured: at most 1e-4)
BF16_WINDOW_TOL = 2e-2       # mean of the last 10 of 20 steps (measured: at most 3e-3, fc)


def _members(family: str, count: int = 3) -> list[PackMember]:
    """Random 1x8x8 members whose data sizes differ; ccgan with two classes."""
    out = []
    for i in range(count):
        rng = torch.Generator().manual_seed(100 + i)
        data = torch.rand((40 - 4 * i, 1, 8, 8), generator=rng) * 2 - 1
        labels = torch.arange(len(data)) % 2 if family == "ccgan" else None
        out.append(PackMember(data=data, seed=i, labels=labels, n_classes=2 if labels is not None else None))
    return out


@functools.lru_cache(maxsize=None)  # the fp32 runs serve several tests
def _train(family: str, *, packed: bool, **levers) -> np.ndarray:
    """(members, STEPS, 2) losses of a pack of 3, or of member 0 trained alone (1, STEPS, 2)."""
    gan = GANConfig(family=family, width=8, z_dim=16)
    train = TrainConfig(steps=STEPS, batch_size=8, log_every=10, checkpoint_every=STEPS, device="cpu", **levers)
    members = _members(family)
    if packed:
        return np.stack([r.losses for r in train_pack(members, gan=gan, train=train)])
    m = members[0]
    return train_gan(m.data, gan=gan, train=train, seed=m.seed, labels=m.labels, n_classes=m.n_classes
                     ).losses[None]


@pytest.mark.parametrize("family,packed", [("dcgan", True), ("fc", True), ("dcgan", False)])
def test_bf16_trains_with_finite_losses_close_to_fp32(family, packed):
    fp32, bf16 = _train(family, packed=packed), _train(family, packed=packed, precision="bf16")
    assert bf16.dtype == np.float32 and np.isfinite(bf16).all()  # losses are logged in fp32
    assert not np.array_equal(bf16, fp32)  # bf16 really ran: its rounding shows
    assert np.abs(bf16[:, 0] - fp32[:, 0]).max() <= BF16_FIRST_STEP_TOL
    assert np.abs(bf16[:, -10:].mean(1) - fp32[:, -10:].mean(1)).max() <= BF16_WINDOW_TOL


def test_bf16_keeps_weights_and_checkpoints_fp32(tmp_path):
    m = _members("dcgan", 1)[0]
    train = TrainConfig(steps=4, batch_size=8, checkpoint_every=4, device="cpu", precision="bf16")
    result = train_pack([dataclasses.replace(m, checkpoint_path=tmp_path / "ckpt.pt")],
                        gan=GANConfig(width=8, z_dim=16), train=train)[0]
    assert {p.dtype for p in result.generator.parameters()} == {torch.float32}
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    tensors = [*ckpt["G"].values(), *ckpt["D"].values(), ckpt["losses"]]
    tensors += [v for s in ckpt["opt_g"]["state"].values() for k, v in s.items() if k != "step"]
    assert {t.dtype for t in tensors if t.is_floating_point()} == {torch.float32}


@pytest.mark.parametrize("family,packed", [("dcgan", True), ("ccgan", True), ("dcgan", False)])
def test_channels_last_gives_fp32s_losses(family, packed):
    plain, cl = _train(family, packed=packed), _train(family, packed=packed, channels_last=True)
    np.testing.assert_allclose(cl, plain, rtol=0, atol=1e-5)


def test_channels_last_stores_pack_conv_weights_in_the_matmul_layout():
    _, D = build_gan(GANConfig(width=8, z_dim=16), (1, 8, 8))
    plain, cl = Stack([D, D]), Stack([D, D], channels_last=True)
    name = next(n for n in cl.params if stored_layout(D, n) is not None)
    w = cl.params[name]
    assert torch.equal(w, plain.params[name]) and not w.is_contiguous()
    assert w.permute(0, 3, 4, 2, 1).is_contiguous()  # what _conv reads: a view, no copy
    t = torch.randn(2, 3, 4, 5, 5)
    assert torch.equal(in_layout(t, (0, 1, 3, 4, 2)), t) and in_layout(t, None) is t


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text and "set train." in text  # the problem and the fix, one line
    return text


def test_cuda_graphs_on_the_cpu_is_refused_before_any_work(tmp_path):
    m = dataclasses.replace(_members("dcgan", 1)[0], checkpoint_path=tmp_path / "ckpt.pt")
    train = TrainConfig(steps=4, batch_size=8, checkpoint_every=2, device="cpu", cuda_graphs=True)
    with pytest.raises(ConfigError) as err:
        train_pack([m], gan=GANConfig(width=8, z_dim=16), train=train)
    assert "train.cuda_graphs needs a CUDA device" in _one_line(err)
    with pytest.raises(ConfigError) as err:
        train_gan(m.data, gan=GANConfig(width=8, z_dim=16), train=train, seed=0,
                  checkpoint_path=tmp_path / "ckpt.pt")
    assert "captures a pack's step" in _one_line(err)
    assert not (tmp_path / "ckpt.pt").exists()
    with pytest.raises(ConfigError):  # without a device: train.device=cpu decides
        check_levers(GANConfig(), train)
    check_levers(GANConfig(), dataclasses.replace(train, device="auto"))  # a GPU may be there


def test_compile_is_refused_where_it_cannot_run(monkeypatch, tmp_path):
    train = TrainConfig(steps=4, batch_size=8, device="cpu", compile=True)
    check_levers(GANConfig(), train, torch.device("cpu"))  # this machine has a C++ compiler
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no C++ compiler to be found
    monkeypatch.delenv("CXX", raising=False)
    with pytest.raises(ConfigError) as err:
        train_pack(_members("dcgan", 1), gan=GANConfig(width=8, z_dim=16), train=train)
    assert "needs a C++ compiler" in _one_line(err)
    with pytest.raises(ConfigError) as err:
        check_levers(GANConfig(family="pggan"), dataclasses.replace(train, device="auto"))
    assert "pggan" in _one_line(err)


def test_channels_last_is_refused_for_families_without_convolutions():
    for family in ("fc", "mlp2d"):
        with pytest.raises(ConfigError) as err:
            check_levers(GANConfig(family=family), TrainConfig(channels_last=True))
        assert f"gan.family={family} has none" in _one_line(err)


def test_the_levers_off_are_a_null_autocast_and_plain_modules():
    assert PLAIN == Levers() and isinstance(PLAIN.autocast(), contextlib.nullcontext)
    with Levers(dtype=torch.bfloat16).autocast():
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
