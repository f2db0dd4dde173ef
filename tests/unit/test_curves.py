"""The ensemble-size curve's options on a tiny trained run, without Ray."""
import numpy as np
import torch

from raygan.data import load_dataset
from raygan.ensemble.mixture import Mixture
from raygan.ensemble.training import train_independent
from raygan.evaluation.curves import ensemble_size_curve
from raygan.evaluation.generated import mixture_at, on_the_fly, synthetic_set
from raygan.runs import RunFolder
from raygan.synthesis.shards import mixture_weights, write_shards


def _trained(tiny_digits_cfg, *overrides):
    cfg = tiny_digits_cfg("data.grouping=II", "eval.repeats=1", "eval.epochs=2", *overrides)
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    train_independent(cfg, ds, run)
    write_shards(cfg, ds, run, mixture_weights(cfg, ds, run))  # the curve measures the shards
    return cfg, ds, run


def test_synthetic_set_has_n_real_per_class_and_is_seeded(tiny_digits_cfg):
    cfg, ds, run = _trained(tiny_digits_cfg)
    x, y = synthetic_set(run, cfg, ds, 2, seed=0)
    assert x.shape == (1257, 1, 8, 8)
    assert torch.bincount(y).tolist() == [630, 627]
    assert torch.equal(x, synthetic_set(run, cfg, ds, 2, seed=0)[0])
    assert not torch.equal(x, synthetic_set(run, cfg, ds, 2, seed=1)[0])


def test_on_the_fly_draws_fresh_samples_each_epoch_one_member_per_block(tiny_digits_cfg):
    cfg, ds, run = _trained(tiny_digits_cfg)
    epoch_data = on_the_fly(run, cfg, ds, 2, seed=0)
    (x1, y1), (x2, y2) = epoch_data(1), epoch_data(2)
    assert torch.equal(y1, y2) and torch.bincount(y1).tolist() == [630, 627]
    assert not torch.equal(x1, x2)
    assert torch.equal(x1, epoch_data(1)[0])  # reproducible per epoch
    # one generator call per (class, member) and epoch gives the block-at-a-time samples, bit for bit
    rng, block, at = np.random.default_rng([0, 1]), cfg.eval.batch_size, 0
    for k, n in enumerate([630, 627]):
        mix = mixture_at(run, cfg, ds.classes[k], 2)
        for start in range(0, n, block):
            t, count = int(rng.choice(2, p=mix.weights)), min(block, n - start)
            one = Mixture([mix.generators[t]], np.ones(1), mix.truncation).sample(count, seed=int(rng.integers(2**31)))
            assert torch.equal(x1[at:at + count], one[0]), (k, start)
            at += count
    rows = ensemble_size_curve(run, cfg.replace(eval={"on_the_fly": True}), ds)
    assert [r["T"] for r in rows] == [1, 2] and all(r["on_the_fly"] for r in rows)
    assert all(len(r["histories"][0]) == 2 for r in rows)


def test_filtering_keeps_a_fraction_and_records_it(tiny_digits_cfg):
    cfg, ds, run = _trained(tiny_digits_cfg)
    rows = ensemble_size_curve(run, cfg.replace(eval={"filter_rho": 0.6, "epochs": 3}), ds)
    kept = [r["kept_fraction"] for r in rows]
    assert all(0.0 < k < 1.0 for k in kept), kept
