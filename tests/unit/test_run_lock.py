"""The run-folder lock: a job on a run another live job holds refuses at once with one line naming the
holder (and writes nothing); the lock of a holder killed with SIGKILL is taken over with a log line."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from raygan.cli import main
from raygan.config import ConfigError
from raygan.runs.lock import RunLockedError, run_lock

_HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from raygan.runs.lock import run_lock

    with run_lock(Path(sys.argv[1]), job="synthesize"):
        print("held", flush=True)
        time.sleep(120)
""")


@pytest.fixture
def holder(tmp_path):
    """A real process holding the lock of <tmp>/runs/default/run as a synthesize job would."""
    folder = tmp_path / "runs" / "default" / "run"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    yield folder, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_a_second_job_on_a_locked_run_refuses_at_once_and_writes_nothing(holder, tmp_path, capsys):
    folder, proc = holder
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as done:
        main(["synthesize", "--set", f"output.root={tmp_path}/runs", "--set", "tracking.enabled=false"])
    assert done.value.code == 2 and time.monotonic() - t0 < 10
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"run folder {folder} is in use by job synthesize on host {socket.gethostname()} (pid {proc.pid}" in err
    assert sorted(p.name for p in folder.iterdir()) == ["raygan.lock"]  # no shards.tmp/, no config
    assert json.loads((folder / "raygan.lock").read_text())["pid"] == proc.pid  # still the holder's


def test_the_lock_of_a_killed_holder_is_taken_over_with_a_message(holder, raygan_logs):
    folder, proc = holder
    os.kill(proc.pid, signal.SIGKILL)  # what a killed driver leaves: its lock file
    proc.wait()
    assert (folder / "raygan.lock").exists()
    with run_lock(folder, job="train") as lock:
        held = json.loads(lock.read_text())
        assert held["pid"] == os.getpid() and held["job"] == "train" and held["host"] == socket.gethostname()
        assert "started" in held
    assert any("taking over the stale lock of job synthesize" in line and f"pid {proc.pid}" in line
               for line in raygan_logs)
    assert not (folder / "raygan.lock").exists()  # released at the end of the job


def test_a_lock_held_on_another_host_is_refused_with_how_to_clear_it(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "raygan.lock").write_text(json.dumps({"host": "head-node-7", "pid": 1, "job": "train",
                                                     "started": "2026-01-01T00:00:00+00:00"}))
    with pytest.raises(RunLockedError, match="head-node-7") as refused:
        with run_lock(folder, job="evaluate"):
            pytest.fail("the lock was taken")
    assert isinstance(refused.value, ConfigError) and f"delete {folder / 'raygan.lock'}" in str(refused.value)
    # a folder the lock had to create is gone again when the job leaves it empty
    fresh = tmp_path / "exp" / "new"
    with run_lock(fresh, job="train"):
        assert (fresh / "raygan.lock").exists()
    assert not (tmp_path / "exp").exists()


def test_the_demo_takes_the_run_lock_like_any_other_job(tmp_path, capsys):
    """`raygan demo` runs the pipeline job through raygan.cluster.entry: its run folder locked by
    another job, it refuses at once, before a local Ray starts or anything is written."""
    folder = tmp_path / "runs" / "demo" / "digits"
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert main(["demo", "--set", f"output.root={tmp_path}/runs", "--set", "tracking.enabled=false"]) == 2
        assert f"run folder {folder} is in use by job synthesize" in capsys.readouterr().err
        assert sorted(p.name for p in folder.iterdir()) == ["raygan.lock"]
    finally:
        proc.kill()
        proc.wait()
