"""The Ray-free core of a GAN search: the space checked at load through the typed config, and one
trial trained in rungs (resumed byte-equal to a straight run), scored without touching the test split."""
from __future__ import annotations

import dataclasses
import json

import pytest

from raygan.config import ConfigError
from raygan.config.gan_space import apply_point, check_gan_space, steps_values
from raygan.data import load_dataset
from raygan.runs import RunFolder
from raygan.sweeps import gan_trial

TRIAL = ["data.grouping=II", "ensemble.members=1", "eval.epochs=2", "eval.metric_samples=200",
         "sweep.target=gan", "sweep.gan_space={gan.width: [4, 8]}", "gan.width=4"]


class _Poisoned:
    """A split that fails the moment anything reads it."""

    def __getattr__(self, name):
        raise AssertionError("a GAN trial read the test split")

    def __iter__(self):
        raise AssertionError("a GAN trial read the test split")

    def __len__(self):
        raise AssertionError("a GAN trial read the test split")

    def __getitem__(self, i):
        raise AssertionError("a GAN trial read the test split")


def test_trial_in_rungs_equals_a_straight_run_and_never_reads_the_test_split(tiny_digits_cfg, tmp_path):
    cfg = tiny_digits_cfg(*TRIAL, "sweep.gan_rungs=2")
    real = load_dataset(cfg.data)
    seen = gan_trial.without_test(real)
    assert seen.test is seen.val and real.test is not real.val
    reference = gan_trial.make_reference(seen, cfg)
    poisoned = dataclasses.replace(real, test=_Poisoned())
    records, seen_records = [], []
    rungs = RunFolder(tmp_path / "rungs")
    out = gan_trial.run_gan_trial(cfg, poisoned, rungs, reference, on_rung=seen_records.append)
    records = [r["gan_steps"] for r in out]
    assert records == [10, 20] and [r["replayed"] for r in seen_records] == [False, False]
    for r in out:
        assert 0 <= r["val_tstr"] <= 1 and 0 <= r["classifier_score"] <= 1 and r["domain_fd"] > 0
        assert r["train_size"] == sum(real.train_sizes().values())
    assert out[1]["best_val_tstr"] == max(out[0]["val_tstr"], out[1]["val_tstr"])

    straight = RunFolder(tmp_path / "straight")
    gan_trial.run_gan_trial(cfg.replace(sweep={"gan_rungs": 1}), poisoned, straight, reference)
    for name in real.classes:  # the second rung resumed each member from its checkpoint
        a, b = (f.member_dir(name, 0) / "generator.pt" for f in (rungs, straight))
        assert a.read_bytes() == b.read_bytes()
        assert rungs.member_entry(name, 0)["resumed_from"] == 10

    # a restarted trial replays what its folder holds and trains nothing
    stamp = rungs.manifest_path.stat().st_mtime_ns
    again = []
    gan_trial.run_gan_trial(cfg, poisoned, rungs, reference, on_rung=again.append)
    assert [r["replayed"] for r in again] == [True, True] and rungs.manifest_path.stat().st_mtime_ns == stamp
    assert json.loads((rungs.path / "rungs.json").read_text())["resumes"] == []


def test_every_key_and_value_is_checked_when_the_config_loads(tiny_digits_cfg):
    cfg = tiny_digits_cfg(*TRIAL)
    forms = check_gan_space(cfg)
    assert forms == {"gan.width": ("grid", [4, 8])}
    point = apply_point(cfg, {"gan.width": 8, "train.batch_size": 32})
    assert (point.gan.width, point.train.batch_size, point.sweep.gan_space) == (8, 32, {})
    with pytest.raises(ConfigError, match=r"unknown key 'gan.nope'; allowed keys: gan.width, gan.d_depth"):
        tiny_digits_cfg(*TRIAL, "sweep.gan_space={gan.nope: [1]}")
    with pytest.raises(ConfigError, match=r"sweep.gan_space.gan.width: value 0: gan.width: 0 is out of range"):
        tiny_digits_cfg(*TRIAL, "sweep.gan_space={gan.width: [4, 0]}")
    with pytest.raises(ConfigError, match=r"gan.lr_g: \{uniform: \[0.001\]\} needs \[lo, hi\]"):
        tiny_digits_cfg(*TRIAL, "sweep.gan_space={gan.lr_g: {uniform: [0.001]}}")
    with pytest.raises(ConfigError, match="gan.real_label: 1.5 is out of range"):
        tiny_digits_cfg(*TRIAL, "sweep.gan_space={gan.real_label: {uniform: [0.8, 1.5]}}")
    with pytest.raises(ConfigError, match="gan.g_norm: 'group' is not allowed"):
        tiny_digits_cfg(*TRIAL, "sweep.gan_space={gan.g_norm: {choice: [batch, group]}}")
    with pytest.raises(ConfigError, match="sweep.target=classifier"):
        tiny_digits_cfg(*TRIAL, "sweep.target=classifier")
    with pytest.raises(ConfigError, match="ensemble.method=independent"):
        tiny_digits_cfg(*TRIAL, "ensemble.method=adagan")
    with pytest.raises(ConfigError, match="sweep.gan_rungs=30 is more than train.steps=20"):
        tiny_digits_cfg(*TRIAL, "sweep.gan_rungs=30")
    with pytest.raises(ConfigError, match="unlabelled points"):
        tiny_digits_cfg("data.name=grid2d", "gan.family=mlp2d", "gan.z_dim=2", "sweep.target=gan",
                        "sweep.gan_space={gan.lr_g: [0.001]}")
    assert gan_trial.rung_steps(25, 3) == [8, 16, 25]
    # seed 003's discriminator depth is a key like any other
    assert check_gan_space(tiny_digits_cfg(*TRIAL, "sweep.gan_space={gan.d_depth: [1, 2]}"))


def test_tied_keys_and_the_command_refusing_an_unknown_key_before_any_work(tiny_digits_cfg, tmp_path,
                                                                          capsys):
    tied = tiny_digits_cfg(*TRIAL, 'sweep.gan_space={"train.batch_size,train.steps": [[16, 20], [32, 10]]}')
    forms = check_gan_space(tied)
    assert steps_values(tied, forms) == [20, 10]
    point = apply_point(tied, {"train.batch_size,train.steps": [32, 10]})
    assert (point.train.batch_size, point.train.steps) == (32, 10)
    with pytest.raises(ConfigError, match="must be a list of 2 values, one per key"):
        tiny_digits_cfg(*TRIAL, 'sweep.gan_space={"train.batch_size,train.steps": [[16, 20], [32]]}')

    from raygan.cli import main

    root = tmp_path / "fresh"
    with pytest.raises(SystemExit) as done:
        main(["sweep", "--target", "gan", "--set", "data.grouping=II", "--set", f"output.root={root}",
              "--set", "sweep.gan_space={gan.width: [8], gan.nope: [1]}"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert "unknown key 'gan.nope'; allowed keys: gan.width" in err and len(err.strip().splitlines()) == 1
    assert not root.exists()
