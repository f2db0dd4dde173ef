"""The divergence policy (train.max_abs_loss, train.divergence_retries): a diverged member is trained
again with its next seed and says so in its entry, one that never converges is recorded under the
manifest's "diverged" section and left out of the mixture, and a class left with no member fails."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from member_units import train_member, train_members

from raygan import seeds
from raygan.config import ConfigError, load_config
from raygan.data import load_dataset
from raygan.ensemble.members import ATTEMPTS_FILE, NoMemberError, record_trained
from raygan.ensemble.training import train_independent
from raygan.gan.member import check_finite
from raygan.gan.train import GANDivergedError, train_gan
from raygan.runs import RunFolder, sha256_file
from raygan.synthesis.shards import mixture_weights


def _grid_cfg(tmp_path, *overrides):
    return load_config(overrides=["data.name=grid2d", "gan.family=mlp2d", "gan.z_dim=2", "data.grid_points=400",
                                  "train.batch_size=50", "train.steps=10", "train.log_every=10",
                                  "train.checkpoint_every=10", "ensemble.members=2", "tracking.enabled=false",
                                  f"output.root={tmp_path}/runs", *overrides])


def test_retry_seeds_are_a_named_stream_whose_attempt_zero_is_the_member_seed():
    assert seeds.member_retry(3, 1, 2, 0) == seeds.member(3, 1, 2)
    assert seeds.conditional_member_retry(3, 2, 0) == seeds.conditional_member(3, 2)
    tried = {seeds.member_retry(3, 1, 2, a) for a in range(4)} | {seeds.member(3, 1, 3), seeds.member(3, 2, 2)}
    assert len(tried) == 6  # no retry reuses a seed of another attempt or member


def test_absurd_finite_losses_are_divergence_and_the_message_says_which_bound():
    gan = load_config().gan
    losses = torch.tensor([[0.7, 0.7], [0.6, 1e13], [0.5, 0.5]])
    check_finite(losses[:1], 0, 1, gan, max_abs_loss=1e4)  # healthy: nothing raised
    with pytest.raises(GANDivergedError, match=r"at step 1: .*past train.max_abs_loss=10000"):
        check_finite(losses, 0, 3, gan, max_abs_loss=1e4)
    losses[1, 1] = float("nan")
    with pytest.raises(GANDivergedError, match="not finite"):
        check_finite(losses, 0, 3, gan)


def _peak_loss(data, cfg, seed) -> float:
    return float(np.abs(train_gan(data, gan=cfg.gan, train=cfg.train, seed=seed, device=torch.device("cpu"))
                        .losses).max())


def test_a_diverged_member_is_retried_with_its_next_seed_and_says_so(tmp_path):
    cfg = _grid_cfg(tmp_path)
    data = load_dataset(cfg.data).train["grid"]
    # a bound between two seeds' peak losses: attempt 0 diverges, attempt 1 does not
    for base in range(20):
        first, second = (seeds.member_retry(base, 0, 0, a) for a in (0, 1))
        peaks = _peak_loss(data, cfg, first), _peak_loss(data, cfg, second)
        if peaks[0] > peaks[1]:
            break
    cfg = cfg.replace(train={"seed": base, "max_abs_loss": sum(peaks) / 2})
    run = RunFolder.for_config(cfg)
    entry = train_member(data, cfg, run, class_name="grid", class_index=0, member=0)
    assert entry["status"] == "complete" and entry["seed"] == second
    assert entry["attempts"] == 2 and entry["seeds_tried"] == [first, second]
    assert len(entry["divergence"]) == 1 and "past train.max_abs_loss" in entry["divergence"][0]
    folder = run.member_dir("grid", 0)
    assert [a["seed"] for a in json.loads((folder / ATTEMPTS_FILE).read_text())] == [first]
    # the member is the one its retry seed trains alone
    alone = train_gan(data, gan=cfg.gan, train=cfg.train, seed=second, device=torch.device("cpu"))
    assert entry["final_d_loss"] == pytest.approx(float(alone.losses[-10:, 0].mean()), abs=1e-6)
    # a rerun continues with the attempt it reached: complete, nothing retrained
    assert train_member(data, cfg, run, class_name="grid", class_index=0, member=0)["resumed_from"] == 10


def test_a_packed_member_that_never_converges_is_recorded_and_left_out_of_the_mixture(tmp_path, raygan_logs):
    cfg = _grid_cfg(tmp_path, "train.divergence_retries=1")
    dataset = load_dataset(cfg.data)
    data = dataset.train["grid"]
    units = [{"class_name": "grid", "class_index": 0, "member": 0, "data": data},
             {"class_name": "grid", "class_index": 0, "member": 1, "data": torch.full_like(data, float("nan"))}]
    run = RunFolder.for_config(cfg)
    entries = train_members(units, cfg, run)
    assert entries[0]["status"] == "complete" and "attempts" not in entries[0]
    bad = entries[1]
    assert bad["status"] == "diverged" and bad["attempts"] == 2 and "generator" not in bad
    assert bad["seeds_tried"] == [seeds.member_retry(cfg.train.seed, 0, 1, a) for a in (0, 1)]
    assert bad["seed"] == seeds.member(cfg.train.seed, 0, 1)
    assert record_trained(run, entries) == [entries[0]]
    manifest = run.manifest()
    assert sorted(manifest["members"]) == ["grid/0"] and manifest["diverged"]["grid/1"]["attempts"] == 2
    raygan_logs.clear()
    assert mixture_weights(cfg, dataset, run) == {"grid": [1.0, 0.0]}
    assert any("member(s) [1] diverged" in line and "renormalised" in line for line in raygan_logs)
    # a member neither trained nor given up is still an error, as before
    manifest_path = run.path / "manifest.json"
    raw = json.loads(manifest_path.read_text())
    raw["diverged"] = {}
    manifest_path.write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=r"no trained member\(s\) \[1\]"):
        mixture_weights(cfg, dataset, run)


def test_a_class_with_no_member_left_fails_with_one_line_and_the_others_are_kept(tmp_path):
    cfg = load_config(overrides=["data.name=digits", "data.grouping=null", "data.classes={a: [0], b: [1]}",
                                 "gan.family=dcgan", "gan.width=8", "gan.z_dim=16", "train.steps=10",
                                 "train.batch_size=16", "train.log_every=10", "train.checkpoint_every=10",
                                 "ensemble.members=1", "train.divergence_retries=1", "output.sample_grid=4",
                                 "tracking.enabled=false", f"output.root={tmp_path}/runs"])
    dataset = load_dataset(cfg.data)
    dataset.train["b"] = torch.full_like(dataset.train["b"], float("nan"))
    run = RunFolder.for_config(cfg)
    with pytest.raises(NoMemberError) as err:
        train_independent(cfg, dataset, run)
    assert isinstance(err.value, ConfigError) and "\n" not in str(err.value)
    assert "class(es) ['b'] ended with no member" in str(err.value)
    manifest = run.manifest()
    assert list(manifest["members"]) == ["a/0"] and list(manifest["diverged"]) == ["b/0"]
    assert manifest["diverged"]["b/0"]["attempts"] == 2
    assert (run.member_dir("a", 0) / "generator.pt").is_file()
    assert not (run.member_dir("b", 0) / "checkpoint.pt").exists()
    # a rerun retrains nothing: a's member is complete, b's attempts are spent
    before = sha256_file(run.member_dir("a", 0) / "generator.pt")
    with pytest.raises(NoMemberError):
        train_independent(cfg, dataset, run)
    assert sha256_file(run.member_dir("a", 0) / "generator.pt") == before
