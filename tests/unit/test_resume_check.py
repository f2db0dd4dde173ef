"""The resume check: a rerun whose settings change what a run folder made is refused before anything is
written; what is safe (more train.steps for independent, non-progressive members; more members) is
allowed, and more steps continue the members to exactly what an uninterrupted run makes."""
from __future__ import annotations

import time

import pytest

from raygan.cli import main
from raygan.config import load_config
from raygan.ensemble.training import train_independent
from raygan.evaluation.job import prepare
from raygan.runs.folder import changes

BASE = ["data.name=digits", "data.classes={a: [0]}", "gan.family=dcgan", "gan.width=8", "gan.z_dim=16",
        "train.batch_size=16", "train.checkpoint_every=3", "train.log_every=3", "ensemble.members=1",
        "output.sample_grid=4", "tracking.enabled=false", "cluster.members_per_task=1"]


def _cfg(*overrides):
    return load_config(overrides=[*BASE, *overrides]).to_dict()


@pytest.mark.parametrize("old, new, shards, refused", [
    ([], ["ensemble.method=adagan"], False, "ensemble.method: 'independent' -> 'adagan'"),
    (["ensemble.method=adagan"], ["ensemble.method=adagan", "boosting.rule=topk"], False, "boosting.rule"),
    ([], ["boosting.rule=topk"], False, None),  # boosting settings do not touch independent members
    (["train.steps=6"], ["train.steps=12"], False, None),
    (["train.steps=6"], ["train.steps=3"], False, "train.steps: 6 -> 3"),
    (["train.steps=6", "ensemble.method=adagan"], ["train.steps=12", "ensemble.method=adagan"], False,
     "train.steps: 6 -> 12"),  # later boosting members were weighted by the earlier ones' samples
    (["train.steps=6", "gan.family=pggan"], ["train.steps=12", "gan.family=pggan"], False,
     "train.steps"),  # pggan's growing schedule is laid out over train.steps
    ([], ["ensemble.members=3", "train.checkpoint_every=5", "train.device=cpu"], True, None),
    ([], ["synth.seed=7"], False, None),  # no shards yet: nothing was made with the old seed
    ([], ["synth.seed=7", "synth.truncation=0.5"], True, "synth.seed: 0 -> 7; synth.truncation"),
    ([], ["ensemble.samples_per_class=10"], True, "ensemble.samples_per_class"),
])
def test_what_changes_what_was_made_is_refused_and_what_is_safe_is_allowed(old, new, shards, refused):
    found = changes(_cfg(*old), _cfg(*new), has_shards=shards)
    if refused is None:
        assert found == []
    else:
        assert refused in "; ".join(found)


def test_another_ensemble_method_is_refused_before_anything_is_written(tmp_path, capsys):
    cfg = load_config(overrides=[*BASE, f"output.root={tmp_path}/runs", "train.steps=6"])
    _, run = prepare(cfg)
    run.write_config(cfg)
    before = {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()}
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as done:
        main(["train", *[a for o in [*BASE, f"output.root={tmp_path}/runs", "train.steps=6",
                                     "ensemble.method=reweight"] for a in ("--set", o)]])
    assert done.value.code == 2 and time.monotonic() - t0 < 20
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ensemble.method: 'independent' -> 'reweight'" in err
    assert f"run folder {run.path} holds a run with other settings" in err
    assert {p: p.read_bytes() for p in run.path.rglob("*") if p.is_file()} == before


def test_more_steps_continue_the_members_to_what_an_uninterrupted_run_makes(tmp_path):
    def train(root, steps):
        cfg = load_config(overrides=[*BASE, f"output.root={tmp_path}/{root}", f"train.steps={steps}"])
        dataset, run = prepare(cfg)  # the resume check passes
        run.write_config(cfg)
        return train_independent(cfg, dataset, run), run

    train("grown", 6)
    [entry], run = train("grown", 12)
    assert entry["steps"] == 12 and entry["resumed_from"] == 6
    [straight], other = train("straight", 12)
    assert straight["resumed_from"] == 0
    assert entry["generator_sha256"] == straight["generator_sha256"]
    assert (run.path / entry["generator"]).read_bytes() == (other.path / straight["generator"]).read_bytes()
