"""Sweeps on a simulated three-node cluster with the run folder on a file:// URI (tests/integration/
sweep_sim.py, in a subprocess with its own RAY_TMPDIR and process group: it never meets the session Ray
of conftest.py). Every node and driver has its own mirror, so a trial reaches the run only through its
URI. One cluster serves every check: a local run folder refused, a 2 x 2 classifier sweep whose driver
is killed and restored, a 2 x 2 GAN search."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GRID = {(1, 0), (1, 1), (20, 0), (20, 1)}  # (epochs, mixing_ratio)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    ray_tmp = tempfile.mkdtemp(prefix="rgsw-", dir="/tmp")  # short socket paths
    work = tmp_path_factory.mktemp("sweep_multinode")
    env = {**os.environ, "RAY_TMPDIR": ray_tmp, "PYTHONUNBUFFERED": "1"}
    env.pop("RAY_ADDRESS", None)
    log = open(Path(ray_tmp) / "out.log", "w+")
    proc = subprocess.Popen([sys.executable, str(REPO / "tests/integration/sweep_sim.py"), str(work)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            proc.wait(timeout=480)  # two test workers share the 2 cores (CI): 170 s seen
        except subprocess.TimeoutExpired:
            pass
        log.seek(0)
        text = log.read()
        lines = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
        assert lines, f"the simulation gave no result (rc {proc.returncode}):\n{text[-4000:]}"
        yield {**json.loads(lines[-1][7:]), "work": work}
    finally:
        try:  # the subprocess's session: its Ray, its drivers and MLflow server, nothing else
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log.close()
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_local_run_folder_on_several_nodes_is_refused_before_any_work(sim):
    for target in ("classifier", "gan"):
        refused = sim["refused"][target]
        assert refused["error"] and "3 nodes" in refused["error"] and "file:///mnt/shared" in refused["error"]
        assert refused["written"] is False  # not even the run folder was made


def test_classifier_sweep_spreads_over_nodes_and_is_restored_after_the_driver_is_killed(sim):
    c = sim["classifier"]
    assert c["child_rc"] == -signal.SIGKILL, c["child_log"]
    done_before = {t for t, status in c["at_kill"].items() if status == "TERMINATED"}
    assert 1 <= len(done_before) < 4, c["at_kill"]
    assert c["restored"] is True and c["counts"] == {"TERMINATED": 4, "ERROR": 0, "total": 4}
    assert c["storage"] == f"file://{sim['work']}/shared/runs/default/run/tune/grid"
    trials = c["trials"]
    assert {(t["config"]["epochs"], t["config"]["mixing_ratio"]) for t in trials} == GRID
    assert set(c["at_kill"]) <= {t["trial_id"] for t in trials}
    nodes = {t["node_id"] for t in trials}
    assert None not in nodes and nodes <= set(sim["nodes"]) and len(nodes) >= 2
    for t in trials:  # mixed sets: the shards as written (T = the shipped ensemble), by reference
        ratio = t["config"]["mixing_ratio"]
        assert t["train_source"] == ("shards" if ratio else "real")
        assert t["train_size"] == (630 + 627) * (1 + ratio)
        assert t["epochs_run"] == t["config"]["epochs"]
    # one MLflow run per trial, each finished (a trial running at the kill kept its run)
    assert sorted(r["trial_id"] for r in c["mlflow"]) == sorted(t["trial_id"] for t in trials)
    assert {r["status"] for r in c["mlflow"]} == {"FINISHED"}
    table = json.loads((sim["work"] / "shared/runs/default/run/eval/sweep_trials.json").read_text())
    assert {t["node_id"] for t in table["trials"]} == nodes  # in storage, node ids recorded


def test_gan_search_writes_trial_folders_to_shared_storage_from_several_nodes(sim):
    g = sim["gan"]
    assert g["counts"] == {"TERMINATED": 4, "ERROR": 0, "total": 4} and g["restored"] is False
    storage = f"file://{sim['work']}/shared/runs/default/run/tune/gan"
    assert g["storage"] == storage
    ids = sorted(t["trial_id"] for t in g["trials"])
    nodes = {t["node_id"] for t in g["trials"]}
    assert None not in nodes and nodes <= set(sim["nodes"]) and len(nodes) >= 2
    assert {t["folder"] for t in g["trials"]} == {f"{storage}/trials/{i}" for i in ids}
    assert g["manifests"] == ids  # every trial's members reached the shared storage
    assert g["driver_mirror_trials"] == []  # the driver read them through Tune's storage, not a copy
    assert sorted(r["trial_id"] for r in g["mlflow"]) == ids
    assert {r["status"] for r in g["mlflow"]} == {"FINISHED"}
