"""Per-member collapse detection (raygan.ensemble.collapse) and ensemble.on_collapse."""
from __future__ import annotations

import pytest
import torch

from raygan.config import ConfigError, load_config
from raygan.data import load_dataset
from raygan.ensemble import collapse
from raygan.ensemble.collapse import MemberCollapsedError, apply_verdict, judge
from raygan.ensemble.training import train_independent
from raygan.runs import RunFolder
from raygan.synthesis.shards import mixture_weights


class OneImage(torch.nn.Module):
    """A planted collapsed generator: the same image whatever z."""

    def __init__(self, image: torch.Tensor):
        super().__init__()
        self.image, self.z_dim = image, 4

    def forward(self, z):
        return self.image.expand(len(z), *self.image.shape).clone()


def test_a_generator_drawing_one_image_is_flagged(tiny_digits_cfg):
    real = load_dataset(tiny_digits_cfg().data).train["3"]
    planted = OneImage(real[0])
    verdict = judge(planted, real, tiny_digits_cfg(), seed=1, device="cpu", who="class 3 member 0")
    assert verdict["diversity"] == 0.0 and verdict["collapse"] == {"threshold": 0.1, "collapsed": True,
                                                                   "decision": "warned"}
    dropped = judge(planted, real, tiny_digits_cfg("ensemble.on_collapse=drop"), seed=1, device="cpu", who="m")
    assert apply_verdict([{"status": "complete"}], dropped)[0]["status"] == "collapsed"
    with pytest.raises(MemberCollapsedError, match="diversity 0.000 < ensemble.collapse_threshold=0.1"):
        judge(planted, real, tiny_digits_cfg("ensemble.on_collapse=retrain"), seed=1, device="cpu", who="m")
    # the real images themselves, as a "generator" drawing distinct ones, are far above the threshold
    shuffled = collapse.member_diversity(real[torch.randperm(len(real))][:64], real[:64])
    assert shuffled > 0.8


def test_a_healthy_tiny_ensemble_is_not_flagged(tiny_digits_cfg):
    """DCGAN width 8 on the digits, grouping II, 100 steps at batch 16: the members score 0.178 and
    0.180 (200 steps: 0.22-0.27; 20 steps: 0.02-0.03, nearly constant, and flagged; untrained 0.01),
    so the default threshold 0.1 leaves them a 1.8x margin."""
    cfg = tiny_digits_cfg("data.grouping=II", "ensemble.members=1", "train.steps=100",
                          "train.checkpoint_every=100", "train.log_every=50")
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    train_independent(cfg, ds, run)
    entries = run.manifest()["members"].values()
    assert [e["collapse"]["collapsed"] for e in entries] == [False, False]
    assert all(0.1 < e["diversity"] < 2 and e["collapse"]["decision"] == "kept" for e in entries)


def test_drop_leaves_the_member_out_and_retrain_uses_the_next_seed(tiny_digits_cfg, monkeypatch):
    calls = []

    def fake(generator, real, *, seed, device):  # member 1's first attempt collapses
        calls.append(seed)
        return 0.0 if len(calls) == 2 else 0.5

    monkeypatch.setattr(collapse, "measure", fake)
    cfg = tiny_digits_cfg("data.grouping=II", "ensemble.on_collapse=drop", "train.steps=2")
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    train_independent(cfg, ds, run)
    manifest = run.manifest()
    assert "0-4/1" not in manifest["members"] and manifest["diverged"]["0-4/1"]["status"] == "collapsed"
    assert mixture_weights(cfg, ds, run) == {"0-4": [1.0, 0.0], "5-9": [0.5, 0.5]}

    calls.clear()
    cfg = tiny_digits_cfg("data.grouping=II", "ensemble.on_collapse=retrain", "train.steps=2", "output.run=r")
    run = RunFolder.for_config(cfg)
    train_independent(cfg, ds, run)
    entry = run.manifest()["members"]["0-4/1"]
    assert entry["attempts"] == 2 and entry["seeds_tried"] == calls[1:3] and calls[1] != calls[2]
    assert entry["collapse"]["decision"] == "kept" and "collapsed" in entry["divergence"][0]


def test_a_kept_collapsed_members_rows_carry_the_flag_in_their_files(tiny_digits_cfg, monkeypatch):
    """on_collapse=warn keeps a collapsed member in the shards: the files holding its rows say so in
    their own metadata (a user reading the shards without the manifest sees it); the others do not."""
    import json

    import pyarrow.parquet as pq

    from raygan.synthesis.shards import write_shards

    scores = iter([0.5, 0.04, 0.5, 0.5])  # member 1 of class 0-4 collapsed
    monkeypatch.setattr(collapse, "measure", lambda generator, real, *, seed, device: next(scores))
    cfg = tiny_digits_cfg("data.grouping=II", "train.steps=2", "synth.chunk_size=256")
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    train_independent(cfg, ds, run)
    write_shards(cfg, ds, run, mixture_weights(cfg, ds, run))
    flagged = {}
    for f in sorted((run.path / "shards").glob("*.parquet")):
        meta = pq.read_schema(f).metadata
        members = set(zip(*pq.read_table(f, columns=["class_name", "member"]).to_pydict().values()))
        assert len(members) == 1
        info = json.loads(meta[b"huggingface"])["info"]
        if b"raygan.collapse" in meta:
            verdict = json.loads(meta[b"raygan.collapse"])
            flagged[members.pop()] = verdict
            assert info["description"] == verdict["statement"]
        else:
            assert "description" not in info
    assert list(flagged) == [("0-4", 1)]
    verdict = flagged[("0-4", 1)]
    assert verdict["diversity"] == 0.04 and verdict["threshold"] == 0.1 and verdict["decision"] == "warned"
    assert "member 1 of class 0-4" in verdict["statement"] and "0.040" in verdict["statement"]
    assert run.manifest()["shards"]["spec"]["collapsed"] == ["0-4/1"]


def test_drop_is_refused_with_boosting_and_privacy():
    with pytest.raises(ConfigError, match="on_collapse=drop leaves members out"):
        load_config(overrides=["ensemble.method=adagan", "ensemble.on_collapse=drop"])
    with pytest.raises(ConfigError, match="privacy ledger does not cover"):
        load_config(overrides=["privacy.epsilon=8", "ensemble.on_collapse=retrain"])


def test_the_report_names_collapsed_members_beside_their_grids(tmp_path):
    from raygan.reporting.report import _collapse_lines, _diversity_label

    entry = {"diversity": 0.01, "collapse": {"threshold": 0.1, "collapsed": True, "decision": "dropped"}}
    manifest = {"members": {"a/0": {"diversity": 0.5, "collapse": {**entry["collapse"], "collapsed": False}}},
                "diverged": {"a/1": entry}}
    assert _collapse_lines(manifest) == ["- collapsed members (diversity below 0.1 of the real class's; "
                                         "raygan.metrics.collapse): a/1 (0.010, dropped)"]
    assert _diversity_label(entry) == ("diversity 0.01\nCOLLAPSED (dropped)", "red")
    assert _diversity_label(manifest["members"]["a/0"]) == ("diversity 0.50", "black")


def test_a_class_of_identical_images_is_not_measured():
    real = torch.zeros(8, 1, 4, 4)
    assert collapse.member_diversity(torch.rand(8, 1, 4, 4), real) is None
    assert judge(OneImage(real[0]), real, load_config(), seed=1, device="cpu", who="m") == {}


class PerClass(torch.nn.Module):
    """A planted conditional generator: each class draws its real images in turn, a ``collapsed`` class
    always its first one."""

    def __init__(self, per_class: list[torch.Tensor], collapsed: set[int]):
        super().__init__()
        self.per_class, self.collapsed, self.z_dim, self.n_classes = per_class, collapsed, 4, len(per_class)

    def forward(self, z, y):
        return torch.stack([self.per_class[k][0 if k in self.collapsed else i % len(self.per_class[k])]
                            for i, k in enumerate(y.tolist())])


def test_a_conditional_member_that_collapsed_one_class_is_flagged(tiny_digits_cfg):
    ds = load_dataset(tiny_digits_cfg().data)
    per_class = [ds.train["0"], ds.train["1"]]
    real, labels = torch.cat(per_class), torch.cat([torch.full((len(x),), k) for k, x in enumerate(per_class)])
    verdict = judge(PerClass(per_class, {1}), real, tiny_digits_cfg(), seed=1, device="cpu", who="m",
                    labels=labels)
    assert verdict["diversity"] == 0.0 and verdict["collapse"]["collapsed"]
    assert collapse.measure_conditional(PerClass(per_class, set()), real, labels, seed=1, device="cpu") > 0.8
