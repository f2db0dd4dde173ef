"""Faults leave the run usable (issue 25 item 6): a full disk (a real write limit, RLIMIT_FSIZE, in a
subprocess) names the file and the fix and leaves no temporary file and no half-made MLflow store, and a
run refused by its checks writes nothing to MLflow; a store left half-made by an older raygan is refused
before work, naming the fix. Signals in every stage: tests/integration/test_chaos_stages.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from raygan.cli import main
from raygan.config import load_config

REPO = Path(__file__).resolve().parents[2]
TINY = ["data.name=digits", "data.grouping=II", "gan.family=dcgan", "gan.width=8", "gan.z_dim=16",
        "train.steps=2", "train.batch_size=16", "train.checkpoint_every=2", "train.log_every=2",
        "ensemble.members=1", "output.sample_grid=4", "cluster.members_per_task=1"]
# A disk that is full after 30 kB a file: smaller than a member's checkpoint and an MLflow store.
FULL_AFTER = 30_000
_ON_A_FULL_DISK = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
resource.setrlimit(resource.RLIMIT_FSIZE, ({FULL_AFTER}, {FULL_AFTER}))
from raygan.config import load_config
from raygan.data import load_dataset
from raygan.ensemble.training import train_independent
from raygan.runs import RunFolder
from raygan.tracking import Tracker
cfg = load_config(sys.argv[1])
run = RunFolder.for_config(cfg)
try:
    tracker = Tracker(cfg, "train")
    with tracker.parent(run.path):
        tracker.log_metrics({{"members": 0}})
except Exception as err:
    print(f"store: {{type(err).__name__}}: {{err}}")
try:
    train_independent(cfg, load_dataset(cfg.data), run)
except Exception as err:
    print(f"train: {{type(err).__name__}}: {{err}}")
"""


def _temporaries(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if ".tmp" in p.name)


def test_a_full_disk_names_the_file_and_leaves_no_temporary_file_or_half_made_store(tmp_path):
    from raygan.data import load_dataset
    from raygan.ensemble.training import train_independent
    from raygan.runs import RunFolder
    from raygan.tracking import Tracker

    cfg = load_config(overrides=[*TINY, f"output.root={tmp_path}/runs"])
    (tmp_path / "config.yaml").write_text(cfg.to_yaml())
    out = subprocess.run([sys.executable, "-c", _ON_A_FULL_DISK, str(tmp_path / "config.yaml")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines() if line.startswith(("store", "train")))
    store = tmp_path / "runs" / "mlflow.db"
    assert lines.get("store", "").startswith(f"ConfigError: the MLflow store {store} failed: "), out.stdout + out.stderr
    assert lines["store"].endswith("free space on its disk (or fix its permissions), point "
                                   "tracking.tracking_uri elsewhere, or set tracking.enabled=false")
    assert "[SQL" not in lines["store"]
    run = RunFolder.for_config(cfg)
    assert lines.get("train", "").startswith(f"WriteError: cannot write {run.path / 'members'}/"), out.stdout
    assert lines["train"].endswith("(File too large); free space on that disk or choose another output.root, "
                                   "then rerun the same command (finished work is kept)")
    assert _temporaries(tmp_path) == [] and not store.exists()
    # ... and the run is usable: the store is made and the members trained by the next run
    tracker = Tracker(cfg, "train")
    with tracker.parent(run.path):
        tracker.log_metrics({"members": 0})
    assert tracker.mlflow.get_run(tracker.parent_id).info.status == "FINISHED"
    train_independent(cfg, load_dataset(cfg.data), run)
    assert sorted(run.manifest()["members"]) == ["0-4/0", "5-9/0"] and _temporaries(tmp_path) == []


def test_an_audit_refused_by_its_checks_creates_no_mlflow_store_or_run(tmp_path, capsys):
    cfg = load_config(overrides=[*TINY, f"output.root={tmp_path}/runs"])
    run = tmp_path / "runs" / "default" / "run"
    (run / "shards").mkdir(parents=True)
    (run / "config.yaml").write_text(cfg.to_yaml())
    pq.write_table(pa.table({"label": [0]}), run / "shards" / "part-00000-0.parquet")
    # the manifest records other shards than those on disk: the audit would certify another set
    files = {"part-00000-0.parquet": {"rows": 1, "sha256": "0" * 64, "bytes": 1}}
    (run / "manifest.json").write_text(json.dumps({"members": {}, "shards": {"files": files}}))
    before = sorted(p.name for p in tmp_path.rglob("*"))
    assert main(["audit", str(run)]) == 2
    assert "differ(s) from the manifest's record of the shards" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no mlflow.db, no mlartifacts, no audit/


# How raygan before create_store made its store: in place, so a full disk left it half-made.
_HALF_MADE_STORE = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (120_000, 120_000))  # stops MLflow's migrations part-way
from mlflow import MlflowClient
try:
    MlflowClient(tracking_uri=f"sqlite:///{sys.argv[1]}").search_experiments(max_results=1)
except Exception as err:
    print(type(err).__name__)
"""


def test_a_half_made_mlflow_store_from_an_older_run_is_refused_before_work_naming_the_fix(tmp_path, capsys):
    store = tmp_path / "runs" / "mlflow.db"
    store.parent.mkdir()
    made = subprocess.run([sys.executable, "-c", _HALF_MADE_STORE, str(store)], capture_output=True, text=True,
                          timeout=120)
    assert made.stdout.strip() == "OperationalError" and store.exists(), made.stdout + made.stderr
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as stop:  # a job command ends in SystemExit(its code)
        main(["train", *[a for s in [*TINY, f"output.root={tmp_path}/runs"] for a in ("--set", s)]])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"raygan: config error: the MLflow store {store} is half-made "
                                               "or damaged ("), err
    assert err[0].endswith(f"move it aside (mv {store} {store}.broken) and rerun to make a new one, point "
                           "tracking.tracking_uri elsewhere, or set tracking.enabled=false"), err
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no run folder, no lock, no mlartifacts
