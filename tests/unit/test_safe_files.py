"""Nothing raygan reads can run code, and every file is checked against the manifest before use: a
pickle in a checkpoint, a generator file or the audit's cached classifier is refused with its path
(its payload never runs), a generator swapped or truncated is refused by its sha256; each refusal is
one line, comes in seconds, and leaves the run folder as it was."""
from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import pytest
import torch

from raygan.cli import main
from raygan.config import ConfigError, load_config
from raygan.ensemble.training import train_independent
from raygan.evaluation.job import prepare
from raygan.gan.checkpoints import check_plain, load_generator
from raygan.synthesis.shards import mixture_weights, write_shards

OVERRIDES = ["data.name=digits", "data.classes={a: [0], b: [1]}", "gan.family=dcgan", "gan.width=8",
             "gan.z_dim=16", "train.steps=6", "train.batch_size=16", "train.checkpoint_every=3",
             "train.log_every=3", "ensemble.members=1", "output.sample_grid=4", "synth.chunk_size=64",
             "tracking.enabled=false", "audit.spaces=[domain]", "cluster.members_per_task=1"]


class _Payload:
    """Unpickled unsafely, this opens (creates) the marker file: the code a hostile .pt would run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _hostile(path: Path, marker: Path, **plain) -> None:
    """A torch file in raygan's layout (plain keys) that also holds a pickled payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**plain, "payload": _Payload(marker)}, path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run folder trained and synthesized in this process (2 classes x 1 member, 6 steps)."""
    root = tmp_path_factory.mktemp("safe")
    cfg = load_config(overrides=[*OVERRIDES, f"output.root={root}/runs"])
    dataset, run = prepare(cfg)
    run.write_config(cfg)
    train_independent(cfg, dataset, run)
    write_shards(cfg, dataset, run, mixture_weights(cfg, dataset, run))
    return run.path


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def run_copy(trained, tmp_path):
    """A copy of the trained run at <tmp>/runs/default/run, and the CLI options that name it."""
    dst = tmp_path / "runs" / "default" / "run"
    shutil.copytree(trained, dst)
    return dst, [a for o in [*OVERRIDES, f"output.root={tmp_path}/runs"] for a in ("--set", o)]


def _refused(capsys, argv: list[str]) -> str:
    t0 = time.monotonic()
    try:  # a job command ends in SystemExit(its code), the others return it
        code = main(argv)
    except SystemExit as done:
        code = done.code
    assert code == 2
    assert time.monotonic() - t0 < 30
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_pickle_in_a_checkpoint_is_refused_and_never_runs(run_copy, tmp_path):
    run, _ = run_copy
    marker = tmp_path / "ran"
    cfg = load_config(overrides=[*OVERRIDES, f"output.root={tmp_path}/runs"])
    dataset, folder = prepare(cfg)
    # member a/0 interrupted: the rerun resumes it from its checkpoint
    folder.update_manifest(members={k: v for k, v in folder.manifest()["members"].items() if k != "a/0"})
    ckpt = run / "members/a/0/checkpoint.pt"
    _hostile(ckpt, marker, step=3)
    before = _snapshot(run)
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        train_independent(cfg, dataset, folder)
    assert time.monotonic() - t0 < 10
    message = str(refused.value)
    assert len(message.splitlines()) == 1 and str(ckpt) in message
    assert "could run code" in message and "deleting its folder" in message
    assert not marker.exists()
    assert _snapshot(run) == before


def test_a_pickle_in_a_generator_is_refused_before_synthesis_writes(run_copy, tmp_path, capsys):
    run, options = run_copy
    marker = tmp_path / "ran"
    generator = run / "members/a/0/generator.pt"
    _hostile(generator, marker, **torch.load(run / "members/b/0/generator.pt", weights_only=True))
    shutil.rmtree(run / "shards")  # synthesize would make them: it must not start
    before = _snapshot(run)
    err = _refused(capsys, ["synthesize", *options])
    assert str(generator) in err and "sha256" in err and "deleting its folder" in err
    # the manifest updated to the hostile file's sha256: the safe loader still refuses it
    from raygan.runs import RunFolder, sha256_file

    folder = RunFolder(run)
    folder.record_member({**folder.manifest()["members"]["a/0"], "generator_sha256": sha256_file(generator)})
    before = _snapshot(run)
    err = _refused(capsys, ["synthesize", *options])
    assert str(generator) in err and "could run code" in err
    assert not marker.exists() and not (run / "shards").exists() and not (run / "shards.tmp").exists()
    assert _snapshot(run) == before


def test_a_generator_copied_over_another_class_is_refused(run_copy, capsys):
    run, options = run_copy
    (run / "members/a/0/generator.pt").write_bytes((run / "members/b/0/generator.pt").read_bytes())
    shutil.rmtree(run / "shards")  # synthesize would make class a's shards from b's generator
    before = _snapshot(run)
    err = _refused(capsys, ["synthesize", *options])
    assert f"{run}/members/a/0/generator.pt has sha256" in err and "manifest records" in err
    assert _snapshot(run) == before and not (run / "shards.tmp").exists()


def test_a_truncated_generator_is_refused_with_its_path(run_copy, tmp_path, capsys):
    run, options = run_copy
    generator = run / "members/b/0/generator.pt"
    generator.write_bytes(generator.read_bytes()[:300])
    before = _snapshot(run)
    err = _refused(capsys, ["synthesize", *options])
    assert f"{generator} has sha256" in err
    assert _snapshot(run) == before
    # outside a run folder (no manifest to compare with): the loader's own one-line refusal
    loose = tmp_path / "generator.pt"
    shutil.copy(generator, loose)
    with pytest.raises(ConfigError, match=r"generator\.pt was not read \(truncated or not a torch file") as e:
        load_generator(loose)
    assert str(loose) in str(e.value) and len(str(e.value).splitlines()) == 1


def test_a_pickled_domain_classifier_cache_is_refused_and_the_audit_does_not_pass(run_copy, tmp_path, capsys):
    run, _ = run_copy
    marker = tmp_path / "ran"
    cache = run / "eval" / "domain_classifier.pt"
    _hostile(cache, marker, key="0" * 16, state={})
    before = _snapshot(run)
    err = _refused(capsys, ["audit", str(run), "--force"])
    assert str(cache) in err and "could run code" in err and "delete it" in err
    assert not marker.exists() and not (run / "audit" / "privacy.json").exists()
    assert _snapshot(run) == before


def test_only_plain_data_is_saved():
    import numpy as np

    check_plain({"G": {"w": torch.zeros(2)}, "shape": (1, 8, 8), "gan": {"lr": 2e-4, "norm": None}})
    with pytest.raises(TypeError, match=r"\.acc is a float64"):
        check_plain({"acc": np.float64(0.5)})
