"""`raygan export` without Ray: a tiny run trained, synthesized and audited here is exported as an image
folder that torchvision's ImageFolder loads with the shards' rows per class and their own PNG bytes; its
provenance rows match the files one to one; a warned, missing or out-of-date audit is refused without
--force with nothing left behind; a file:// URI run exports; bad input is refused before any work."""
from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from torchvision.datasets import ImageFolder

from raygan.audit.run import audit_run
from raygan.cli import main
from raygan.config import ConfigError, load_config
from raygan.data import load_dataset
from raygan.data.shards import png_bytes, read_shard_rows
from raygan.ensemble.training import train_independent
from raygan.runs import MIRROR_ENV, RunFolder, sha256_file
from raygan.synthesis.shards import mixture_weights, write_shards
from raygan.tools.export import export_run


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny digits run (2 classes x 2 members, 30 synthetic rows per class) with shards and a PASS audit."""
    torch.set_num_threads(1)  # a module fixture runs before tests/conftest.py's per-test one thread
    cfg = load_config(overrides=[
        "data.name=digits", "data.grouping=II", "gan.family=dcgan", "gan.width=8", "gan.z_dim=16",
        "train.steps=10", "train.batch_size=16", "train.checkpoint_every=10", "train.log_every=10",
        "ensemble.members=2", "ensemble.samples_per_class=30", "output.sample_grid=16",
        f"output.root={tmp_path_factory.mktemp('export')}/runs", "tracking.enabled=false",
        "audit.spaces=[pixel]"])
    ds = load_dataset(cfg.data)
    run = RunFolder.for_config(cfg)
    run.write_config(cfg)
    train_independent(cfg, ds, run)
    write_shards(cfg, ds, run, mixture_weights(cfg, ds, run))
    assert audit_run(cfg, run.path, device="cpu", dataset=ds)["verdict"] == "pass"
    return cfg, ds, run.path


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("checkpoint.pt"))
    return to


def _pngs(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*.png")}


def test_the_cli_exports_an_image_folder_with_its_provenance(built, tmp_path, capsys):
    _, ds, run = built
    out = tmp_path / "export"
    assert main(["export", str(run), "--format", "imagefolder", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out.strip().splitlines()
    assert stdout[-1] == f"export: 60 files (0-4 30, 5-9 30) -> {out}; audit: PASS"
    loaded = ImageFolder(str(out))
    summary = json.loads((out / "export.json").read_text())
    assert loaded.class_to_idx == summary["imagefolder_class_to_idx"] == {"0-4": 0, "5-9": 1}
    rows = read_shard_rows(run / "shards")
    shard_counts = {name: int((rows.y == k).sum()) for k, name in enumerate(rows.classes)}
    assert Counter(loaded.classes[t] for t in loaded.targets) == shard_counts == summary["counts"]
    assert loaded[0][0].size == (8, 8)
    # provenance: one row per file, nothing more, nothing less
    prov = list(csv.DictReader((out / "provenance.csv").open()))
    assert len(prov) == 60 and {r["file"] for r in prov} == _pngs(out)
    config_hash = f"sha256:{sha256_file(run / 'config.yaml')}"
    # members flagged collapsed and kept (10 steps: some are) are named in export.json and their rows
    entries = json.loads((run / "manifest.json").read_text())["members"].values()
    flagged = {(e["class"], e["member"]) for e in entries if e["collapse"]["collapsed"]}
    assert flagged and {(c["class"], c["member"]) for c in summary["collapsed_members"]} == flagged
    assert {(r["class"], int(r["member"])) for r in prov if r["collapsed"] == "true"} == flagged
    assert {r["collapsed"] for r in prov if (r["class"], int(r["member"])) not in flagged} <= {"false"}
    for r in prov:
        assert r["file"] == f"{r['class']}/{r['member']}-{r['index']}.png"
        assert (r["method"], r["run"], r["config_hash"]) == ("independent", str(run), config_hash)
        assert int(r["imagefolder_index"]) == loaded.class_to_idx[r["class"]]
    # each file holds its shard row's own PNG bytes, and its row's seed
    table = pq.read_table(str(run / "shards"), partitioning=None)
    keys = table.select(["class_name", "member", "index", "seed"]).to_pylist()
    by_key = {(k["class_name"], str(k["member"]), str(k["index"])): (png, k["seed"])
              for k, png in zip(keys, png_bytes(table["image"]))}
    for r in prov:
        png, seed = by_key[(r["class"], r["member"], r["index"])]
        assert (out / r["file"]).read_bytes() == png and int(r["seed"]) == seed
    assert summary["config_hash"] == config_hash and summary["audit"]["verdict"] == "pass"
    assert not summary["audit"]["forced"] and set(summary["audit"]["classes"]) == {"0-4", "5-9"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no temporary sibling left


def test_a_warned_missing_or_stale_audit_is_refused_without_force(built, tmp_path, capsys):
    cfg, ds, src = built
    run, out = _copy(src, tmp_path / "run"), tmp_path / "export"
    privacy = json.loads((run / "audit/privacy.json").read_text())
    stale = {**privacy, "inputs": {**privacy["inputs"], "shards": {"part-00000-0.parquet": "0" * 64}}}
    (run / "audit/privacy.json").write_text(json.dumps(stale))
    assert main(["export", str(run), "--out", str(out)]) == 2
    assert "computed from other shards" in capsys.readouterr().err
    shutil.rmtree(run / "audit")
    assert main(["export", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"`raygan audit {run}`" in err and "--force" in err
    # every synthetic image a "near-duplicate" (and every training image flat: counted): the audit warns
    warned = audit_run(cfg.replace(audit={"near_duplicate_mse": 10.0, "warn_flat_duplicates": True}), run,
                       device="cpu", dataset=ds)
    assert warned["verdict"] == "warn"
    assert main(["export", str(run), "--out", str(out)]) == 2
    assert "verdict WARN (2 reason(s), first: 0-4: 30 near-duplicate(s)" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing in DIR, no temporary
    out.mkdir()  # an empty folder is fine
    assert main(["export", str(run), "--out", str(out), "--force"]) == 0
    captured = capsys.readouterr()
    assert "warning: exported with --force although the audit verdict is warn" in captured.err
    assert captured.out.strip().splitlines()[-1].endswith("; audit: WARN")
    audit = json.loads((out / "export.json").read_text())["audit"]
    assert audit["verdict"] == "warn" and audit["forced"] and len(audit["reasons"]) == 2
    assert audit["classes"]["0-4"]["spaces"]["pixel"]["near_duplicates"] == 30
    assert len(_pngs(out)) == 60


def test_a_file_uri_run_exports(built, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "mirror"))
    store = _copy(built[2], tmp_path / "store" / "exp" / "run")
    uri, out = f"file://{store}", tmp_path / "export"
    assert main(["export", uri, "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].endswith(f"-> {out}; audit: PASS")
    summary = json.loads((out / "export.json").read_text())
    assert summary["run"] == uri and summary["counts"] == {"0-4": 30, "5-9": 30}
    assert {r["run"] for r in csv.DictReader((out / "provenance.csv").open())} == {uri}
    assert Counter(ImageFolder(str(out)).targets) == {0: 30, 1: 30}


def test_bad_input_is_refused_before_any_work(built, tmp_path, monkeypatch, capsys):
    run = built[2]
    full = tmp_path / "full"
    full.mkdir()
    (full / "x.txt").write_text("x")
    assert main(["export", str(run), "--out", str(full)]) == 2
    assert "is not empty; choose another --out or delete it" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse's choices
        main(["export", str(run), "--format", "tfrecord", "--out", str(tmp_path / "a")])
    points = tmp_path / "points"
    points.mkdir()
    (points / "config.yaml").write_text(load_config(overrides=["data.name=grid2d", "gan.family=mlp2d"]).to_yaml())
    with pytest.raises(ConfigError, match="points, not images; read its parquet shards"):
        export_run(points, tmp_path / "b")
    with pytest.raises(ConfigError, match="inside the run folder"):
        export_run(run, run / "eval" / "export")
    changed = _copy(run, tmp_path / "changed")  # a shard changed behind the manifest's back
    with (changed / "shards" / "part-00001-0.parquet").open("ab") as f:
        f.write(b"x")
    with pytest.raises(ConfigError, match=r"part-00001-0\.parquet differ\(s\) from the manifest's record"):
        export_run(changed, tmp_path / "b")
    # a failure while writing leaves neither DIR nor its temporary sibling
    import raygan.tools.export as export

    def broken(path, text):
        raise OSError("disk full")
    monkeypatch.setattr(export, "atomic_write_text", broken)
    with pytest.raises(OSError, match="disk full"):
        export_run(run, tmp_path / "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["changed", "full", "points"]
