"""Seed 002's recursive training and seed 003's conditional members, through the ensemble layer."""
import json

import torch
from member_units import train_member

from raygan.data import load_dataset
from raygan.ensemble.mixture import load_mixture
from raygan.ensemble.training import train_independent
from raygan.gan.train import load_generator
from raygan.runs import RunFolder


def test_recursive_rounds_grow_the_training_set_by_the_fraction_and_resume(tiny_digits_cfg):
    cfg = tiny_digits_cfg("train.recursive_rounds=2", "train.recursive_fraction=0.1",
                          "data.classes={a: [0]}")
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    n = ds.train_sizes()["a"]
    entry = train_member(ds.train["a"], cfg, run, class_name="a", class_index=0, member=0)
    first = n + round(0.1 * n)
    assert entry["recursive_train_sizes"] == [n, first, first + round(0.1 * first)]
    folder = run.member_dir("a", 0)
    for name in ("round0.pt", "round1.pt", "checkpoint.pt"):
        ckpt = torch.load(folder / name, weights_only=False)
        assert ckpt["step"] == cfg.train.steps
    # Each round is a GAN trained anew on its own set: the rounds' generators differ.
    g0 = torch.load(folder / "round0.pt", weights_only=False)["G"]
    g2 = torch.load(folder / "checkpoint.pt", weights_only=False)["G"]
    assert any(not torch.equal(g0[k], g2[k]) for k in g0 if g0[k].is_floating_point())
    # A rerun resumes every finished round: same sizes, same final generator.
    again = train_member(ds.train["a"], cfg, run, class_name="a", class_index=0, member=0)
    assert again["recursive_train_sizes"] == entry["recursive_train_sizes"]
    assert again["generator_sha256"] == entry["generator_sha256"]


def test_conditional_members_cover_every_class_from_one_model(raygan_logs, tiny_digits_cfg):
    cfg = tiny_digits_cfg("gan.family=ccgan", "data.classes={zero: [0], one: [1]}")
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    entries = train_independent(cfg, ds, run)
    assert len(entries) == 2 * cfg.ensemble.members
    manifest = json.loads(run.manifest_path.read_text())["members"]
    assert set(manifest) == {"zero/0", "one/0", "zero/1", "one/1"}
    # Both classes of a member point at one model, conditioned on the class index.
    assert manifest["zero/0"]["generator"] == manifest["one/0"]["generator"]
    assert (manifest["zero/0"]["condition"], manifest["one/0"]["condition"]) == (0, 1)
    assert manifest["zero/0"]["generator"] != manifest["zero/1"]["generator"]
    mix0 = load_mixture(run, "zero", 2)
    mix1 = load_mixture(run, "one", 2)
    x0, _ = mix0.sample(8, seed=1)
    x1, _ = mix1.sample(8, seed=1)
    assert x0.shape == x1.shape == (8, 1, 8, 8)
    assert not torch.equal(x0, x1)  # same latents, different condition
    G = load_generator(run.path / manifest["one/0"]["generator"], condition=1)
    assert G.z_dim == cfg.gan.z_dim
    # A rerun trains nothing.
    raygan_logs.clear()
    lines = raygan_logs
    train_independent(cfg, ds, run)
    assert all("skipped" in line for line in lines)


def test_truncated_mixture_draws_differ_from_plain_and_repeat(tiny_digits_cfg):
    cfg = tiny_digits_cfg("data.classes={a: [0]}", "ensemble.members=1")
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    train_independent(cfg, ds, run)
    plain = load_mixture(run, "a", 1).sample(16, seed=3)[0]
    cut = load_mixture(run, "a", 1, truncation=0.5).sample(16, seed=3)[0]
    assert not torch.equal(plain, cut)
    assert torch.equal(cut, load_mixture(run, "a", 1, truncation=0.5).sample(16, seed=3)[0])


def test_recursive_rounds_are_evaluated_round_by_round_and_reported(raygan_logs, tiny_digits_cfg):
    from raygan.evaluation.curves import evaluate_run
    from raygan.reporting.report import write_report

    cfg = tiny_digits_cfg("train.recursive_rounds=1", "data.grouping=II", "ensemble.members=1",
                          "eval.repeats=1", "eval.epochs=1")
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    run.write_config(cfg)
    train_independent(cfg, ds, run)
    from raygan.synthesis.shards import mixture_weights, write_shards
    write_shards(cfg, ds, run, mixture_weights(cfg, ds, run))  # the evaluation measures the shards
    raygan_logs.clear()
    lines = raygan_logs
    result = evaluate_run(cfg, ds, run)
    rounds = result["recursive"]
    assert [r["round"] for r in rounds] == [0, 1]
    n = ds.train_sizes()
    assert rounds[0]["train_size_mean"] == sum(n.values()) / 2
    assert rounds[1]["train_size_mean"] == sum(v + round(0.1 * v) for v in n.values()) / 2
    assert all(0.0 <= r["test_acc_mean"] <= 1.0 for r in rounds)
    assert sum("recursive round" in line for line in lines) == 2
    report = write_report(run.path).read_text()
    assert "## Recursive training" in report and "| 1 |" in report
