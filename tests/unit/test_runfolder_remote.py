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
    entry = {"status": "complete", "generator": "members/a/0/generator.pt"}
    (store / "manifest.json").write_text(json.dumps({"members": {"a/0": entry}}))
    (store / "members/a/0").mkdir(parents=True)
    (store / "members/a/0/generator.pt").write_bytes(b"gen")
    cfg = load_config(overrides=[f"output.root=file://{tmp_path}/store", "tracking.enabled=false"])
    run = RunFolder.for_config(cfg)
    assert run.uri == f"file://{tmp_path}/store/default/run"
    assert run.member_entry("a", 0) == entry  # complete: its generator is in storage, not yet mirrored
    (store / "members/a/0/generator.pt").unlink()  # deleted to retrain it: no longer complete
    assert run.member_entry("a", 0) is None


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


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _stored_run(store, files: dict[str, bytes]) -> None:
    """A run folder in storage whose manifest records its generators and shards."""
    for rel, data in files.items():
        (store / rel).parent.mkdir(parents=True, exist_ok=True)
        (store / rel).write_bytes(data)
    members = {f"{rel.split('/')[1]}/0": {"status": "complete", "generator": rel, "generator_sha256": _sha(data)}
               for rel, data in files.items() if rel.endswith("generator.pt")}
    shards = {rel.split("/")[1]: {"sha256": _sha(data), "bytes": len(data), "rows": 1}
              for rel, data in files.items() if rel.startswith("shards/")}
    (store / "manifest.json").write_text(json.dumps({"members": members, "shards": {"files": shards}}))


def test_pull_skips_files_whose_size_and_sha256_match_the_manifest(tmp_path, mirror):
    store = tmp_path / "store" / "exp" / "run"
    _stored_run(store, {"members/a/0/generator.pt": b"gen-a", "members/b/0/generator.pt": b"gen-b",
                        "shards/part-00000-0.parquet": b"rows0", "shards/part-00001-0.parquet": b"rows1",
                        "config.yaml": b"data: {}\n"})
    run = RunFolder.at(f"file://{store}")
    assert run.pull(".", delete=False) == 6  # a fresh mirror: every file
    inodes = {p: p.stat().st_ino for p in run.path.rglob("*") if p.is_file()}
    # again: only what the manifest records no checksum of (itself, config.yaml) is downloaded
    assert run.pull(".", delete=False) == 2
    recorded = [p for p in inodes if p.name.endswith((".pt", ".parquet"))]
    assert all(p.stat().st_ino == inodes[p] for p in recorded)  # not rewritten either
    # a shard remade in storage (and its record), a local generator changed in place (same size)
    _stored_run(store, {"shards/part-00001-0.parquet": b"ROWS1", "members/a/0/generator.pt": b"gen-a",
                        "members/b/0/generator.pt": b"gen-b", "shards/part-00000-0.parquet": b"rows0"})
    (run.path / "members/b/0/generator.pt").write_bytes(b"GEN-B")
    assert run.pull(".", delete=False) == 4  # manifest, config.yaml, the remade shard, the changed copy
    for p in store.rglob("*"):
        if p.is_file():
            assert (run.path / p.relative_to(store)).read_bytes() == p.read_bytes()


def test_the_audit_cache_is_keyed_on_shard_checksums_so_a_fresh_mirror_hits(tmp_path, mirror):
    import shutil

    from raygan.audit.inputs import inputs_key, up_to_date

    store = tmp_path / "store" / "exp" / "run"
    _stored_run(store, {"shards/part-00000-0.parquet": b"rows0", "shards/part-00001-0.parquet": b"rows1"})
    cfg = load_config(overrides=["data.name=digits", "tracking.enabled=false"])
    run = RunFolder.at(f"file://{store}")
    run.pull(".")
    # the audit ran on another node: its privacy.json and figure are in storage
    (store / "audit").mkdir()
    (store / "audit/privacy.json").write_text(json.dumps({"inputs": inputs_key(cfg, run), "verdict": "pass"}))
    (store / "audit/closest_pairs.png").write_bytes(b"png")
    shutil.rmtree(mirror)  # this node: a fresh mirror, every file downloaded anew (new mtimes)
    run.pull(".")
    assert up_to_date(cfg, run)
    assert not up_to_date(cfg.replace(audit={"chunk_size": 7}), run)
    (store / "shards/part-00001-0.parquet").write_bytes(b"longer")  # changed behind the manifest's back
    with pytest.raises(ConfigError, match=r"store/exp/run/shards/part-00001-0\.parquet has sha256 .* remake the "
                                          "shards with `raygan synthesize`"):
        run.pull(".")
    with pytest.raises(ConfigError, match=r"part-00001-0\.parquet differ\(s\) from the manifest's record"):
        up_to_date(cfg, run)  # the refused download was not kept


def test_a_uri_audit_is_named_after_its_stored_config_and_keeps_the_uri_query():
    from raygan.cli import audit_config
    from raygan.runs import join_uri

    uri = "s3://bucket/prefix/exp/r1?endpoint_override=127.0.0.1%3A9000&scheme=http"
    stored = load_config(overrides=["output.experiment=exp", "output.run=r1", "tracking.enabled=false"])
    cfg = audit_config(stored, mirror_path(uri), uri)
    assert (cfg.output.experiment, cfg.output.run) == ("exp", "r1")  # not the quoted mirror folder
    assert cfg.output.root == "s3://bucket/prefix?endpoint_override=127.0.0.1%3A9000&scheme=http"
    assert join_uri(cfg.output.root, cfg.output.experiment, cfg.output.run) == uri


def test_a_uri_runs_generator_swapped_in_storage_is_refused_when_fetched_or_pulled(tmp_path, mirror):
    store = tmp_path / "store" / "exp" / "run"
    _stored_run(store, {"members/a/0/generator.pt": b"gen-a", "members/b/0/generator.pt": b"gen-b"})
    (store / "members/a/0/generator.pt").write_bytes(b"gen-b")  # b's generator copied over a's
    run = RunFolder.at(f"file://{store}")
    entry = json.loads((store / "manifest.json").read_text())["members"]["a/0"]
    with pytest.raises(ConfigError, match=f"file://{store}/members/a/0/generator.pt has sha256 .* deleting its folder"):
        run.fetch(entry["generator"], sha256=entry["generator_sha256"])
    assert not (run.path / "members/a/0/generator.pt").exists()
    with pytest.raises(ConfigError, match="members/a/0/generator.pt has sha256"):
        run.pull("members")
    assert not (run.path / "members/a/0/generator.pt").exists()  # never left where a loader could use it
