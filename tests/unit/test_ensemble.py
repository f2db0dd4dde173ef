import json

import numpy as np
import pytest
import torch

from raygan.data import load_dataset
from raygan.ensemble.mixture import Mixture, allocate, load_mixture
from raygan.ensemble.training import train_independent
from raygan.runs import RunFolder
from raygan.seeds import member as member_seed


def test_member_seeds_are_distinct_and_reproducible():
    seeds = {member_seed(0, k, t) for k in range(10) for t in range(10)}
    assert len(seeds) == 100
    assert member_seed(0, 2, 3) == member_seed(0, 2, 3) != member_seed(1, 2, 3)


@pytest.mark.parametrize("weights, n, expected", [
    ([0.2] * 5, 100, [20] * 5),
    ([1 / 3] * 3, 100, [34, 33, 33]),
    ([0.75, 0.25], 10, [8, 2]),
])
def test_allocate_gives_p_t_n_g_per_member(weights, n, expected):
    assert allocate(weights, n) == expected
    assert sum(allocate(weights, n)) == n


class _Const(torch.nn.Module):
    """A 'generator' that always outputs its id, to see who drew what."""

    def __init__(self, value):
        super().__init__()
        self.value, self.z_dim = float(value), 1

    def forward(self, z):
        return torch.full((z.shape[0], 2), self.value)


def test_mixture_draws_in_proportion_and_first_t_without_retraining():
    mix = Mixture.uniform([_Const(i) for i in range(4)])
    x, ids = mix.sample(100, seed=0)
    assert x.shape == (100, 2)
    assert np.bincount(ids).tolist() == [25, 25, 25, 25]
    assert torch.equal(x[:, 0], torch.as_tensor(ids, dtype=torch.float32))
    two = mix.first(2)
    x, ids = two.sample(10, seed=0)
    assert np.bincount(ids).tolist() == [5, 5] and set(x[:, 0].tolist()) == {0.0, 1.0}
    weighted = Mixture([_Const(0), _Const(1)], np.array([0.75, 0.25]))
    assert np.bincount(weighted.sample(100, seed=0)[1]).tolist() == [75, 25]
    with pytest.raises(ValueError, match="T must be in 1..4"):
        mix.first(5)


def test_independent_ensemble_trains_k_by_t_members_and_a_rerun_skips_them(raygan_logs, tiny_digits_cfg):
    cfg = tiny_digits_cfg("data.grouping=II")
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    raygan_logs.clear()
    logs = raygan_logs
    entries = train_independent(cfg, ds, run)
    assert len(entries) == 4  # 2 classes x 2 members
    manifest = json.loads((run.path / "manifest.json").read_text())
    assert sorted(manifest["members"]) == ["0-4/0", "0-4/1", "5-9/0", "5-9/1"]
    seeds = {e["seed"] for e in entries}
    assert len(seeds) == 4
    for e in entries:
        folder = run.member_dir(e["class"], e["member"])
        assert (folder / "samples.png").stat().st_size > 0
        lines = (folder / "losses.csv").read_text().splitlines()
        assert lines[0] == "step,d_loss,g_loss" and len(lines) == cfg.train.steps + 1
    before = {p: p.stat().st_mtime_ns for p in run.path.rglob("generator.pt")}
    logs.clear()
    again = train_independent(cfg, ds, run)
    assert all("skipped" in line for line in logs)
    assert again == entries
    assert before == {p: p.stat().st_mtime_ns for p in run.path.rglob("generator.pt")}

    mix = load_mixture(run, "0-4", 2)
    x, ids = mix.sample(10, seed=0)
    assert x.shape == (10, 1, 8, 8) and np.bincount(ids).tolist() == [5, 5]
    # the same seed gives the same synthetic samples
    assert torch.equal(x, load_mixture(run, "0-4", 2).sample(10, seed=0)[0])
    with pytest.raises(FileNotFoundError, match="member 2 of class 0-4 is not complete"):
        load_mixture(run, "0-4", 3)


def test_rerun_after_interrupt_trains_only_what_is_missing(raygan_logs, tiny_digits_cfg):
    cfg = tiny_digits_cfg("data.grouping=II", "ensemble.members=1")
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    train_independent(cfg, ds, run)
    grown = cfg.replace(ensemble={"members": 2})
    raygan_logs.clear()
    logs = raygan_logs
    train_independent(grown, ds, run)
    trained = [line for line in logs if "skipped" not in line and "collapsed" not in line]
    assert len(trained) == 2 and all("member 1" in line for line in trained)
