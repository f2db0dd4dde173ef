"""Run folders at a URI (file:// here): the local mirror, uploads on atomic writes, pull/push/fetch."""
from __future__ import annotations

import json

import pytest

from raygan.config import ConfigError, load_config
from raygan.runs import MIRROR_ENV, RunFolder, atomic_write_text, is_uri, mirror_path, remote_of, sha256_file


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    return tmp_path / "mirror"


def test_a_local_run_folder_stays_local(tmp_path):
    cfg = load_config(overrides=[f"output.root={tmp_path}/runs"])
    run = RunFolder.for_config(cfg)
    assert run.uri is None and run.remote() is None and not run.is_remote
    assert run.location == str(tmp_path / "runs" / "default" / "run")
    assert run.pull("manifest.json") == 0 and run.push(".") == 0
    assert remote_of("runs/default/run/manifest.json") is None
    assert not is_uri(tmp_path) and is_uri("s3://bucket/x") and is_uri("file:///x")


def test_atomic_writes_in_a_mirror_reach_storage_at_once(tmp_path, mirror):
    uri = f"file://{tmp_path}/store/exp/run"
    run = RunFolder.at(uri)
    assert run.path == mirror_path(uri) and run.path.is_relative_to(mirror)
    atomic_write_text(run.path / "members" / "a" / "0" / "losses.csv", "step\n1\n")
    assert (tmp_path / "store/exp/run/members/a/0/losses.csv").read_text() == "step\n1\n"
    # another process (a Ray worker) knows the URI from the mirror path alone
    again = RunFolder(str(run.path))
    assert again.uri == uri and again.location == uri
    # written another way (an image): only a push sends it, and a second push sends nothing
    (run.path / "members" / "a" / "0" / "samples.png").write_bytes(b"png")
    assert run.push(run.member_dir("a", 0)) == 1 and run.push(run.member_dir("a", 0)) == 0
    assert (tmp_path / "store/exp/run/members/a/0/samples.png").read_bytes() == b"png"


def test_pull_makes_the_mirror_equal_to_storage_and_fetch_skips_a_matching_copy(tmp_path, mirror):
    store = tmp_path / "store" / "exp" / "run"
    (store / "members" / "a" / "0").mkdir(parents=True)
    (store / "members" / "a" / "0" / "checkpoint.pt").write_bytes(b"ckpt")
    (store / "members" / "a" / "0" / "generator.pt").write_bytes(b"gen")
    (store / "manifest.json").write_text(json.dumps({"members": {}}))
    run = RunFolder.at(f"file://{store}")
    stale = run.path / "members" / "a" / "0" / "old.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    assert run.pull(run.member_dir("a", 0), exclude=("checkpoint.pt",)) == 1
    assert (run.path / "members/a/0/generator.pt").read_bytes() == b"gen"
    assert not (run.path / "members/a/0/checkpoint.pt").exists() and not stale.exists()
    path = run.fetch("members/a/0/checkpoint.pt")
    assert path.read_bytes() == b"ckpt"
    (store / "members" / "a" / "0" / "checkpoint.pt").write_bytes(b"new!")
    assert run.fetch("members/a/0/checkpoint.pt", sha256=sha256_file(path)).read_bytes() == b"ckpt"
    assert run.fetch("members/a/0/checkpoint.pt").read_bytes() == b"new!"


def test_for_config_pulls_the_bookkeeping_of_a_uri_run(tmp_path, mirror):
    store = tmp_path / "store" / "default" / "run"
    store.mkdir(parents=True)
    (store / "manifest.json").write_text(json.dumps({"members": {"a/0": {"status": "complete"}}}))
    cfg = load_config(overrides=[f"output.root=file://{tmp_path}/store", "tracking.enabled=false"])
    run = RunFolder.for_config(cfg)
    assert run.uri == f"file://{tmp_path}/store/default/run"
    assert run.member_entry("a", 0) == {"status": "complete"}


@pytest.mark.parametrize("overrides, words", [
    (["tracking.enabled=true"], "tracking.tracking_uri"),
    (["tracking.tracking_uri=sqlite:////tmp/m.db"], "tracking server"),
    (["output.root=nosuchscheme://bucket/x", "tracking.enabled=false"], "pyarrow cannot open"),
])
def test_bad_remote_settings_are_refused_before_any_work(tmp_path, mirror, monkeypatch, overrides,
                                                         words):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = load_config(overrides=[f"output.root=file://{tmp_path}/store", *overrides])
    with pytest.raises(ConfigError, match=words):
        RunFolder.for_config(cfg)
    assert not (tmp_path / "store").exists()
