"""A job stopped by SIGTERM or Ctrl-C (issue 25 item 6): a real `raygan synthesize` process on the
session's Ray, signalled while Ray Data writes its shards, ends with one raygan line and exit 143 / 130,
no Ray stack dump and no traceback, its staging folder removed and the run folder unlocked."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from raygan.config import load_config
from raygan.data import load_dataset
from raygan.ensemble.training import train_independent
from raygan.runs import RunFolder
from raygan.runs.lock import run_lock

REPO = Path(__file__).resolve().parents[2]
TINY = ["data.name=digits", "data.grouping=II", "gan.family=dcgan", "gan.width=8", "gan.z_dim=16",
        "train.steps=2", "train.batch_size=16", "train.checkpoint_every=2", "train.log_every=2",
        "ensemble.members=1", "output.sample_grid=4", "tracking.enabled=false", "cluster.members_per_task=1",
        # many small chunks, so that the write is still going when the signal comes
        "ensemble.samples_ratio=10", "synth.chunk_size=64"]


def _stop_synthesis(run: RunFolder, sets: list[str], gcs: str, signum: int) -> tuple[int, str]:
    """`raygan synthesize` signalled once its staging folder exists: (exit status, its output)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "raygan", "synthesize", "--address", gcs,
                             *[a for s in sets for a in ("--set", s)]], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run.path / "shards.tmp").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-3000:]
            time.sleep(0.05)
        proc.send_signal(signum)
        out = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out


def test_sigterm_and_ctrl_c_during_synthesis_end_in_one_line_and_leave_the_run_usable(ray_session, tmp_path):
    sets = [*TINY, f"output.root={tmp_path}/runs"]
    cfg = load_config(overrides=sets)
    run = RunFolder.for_config(cfg)
    train_independent(cfg, load_dataset(cfg.data), run)  # the members, without Ray: quick
    for signum, code, name in ((signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C (SIGINT)")):
        returncode, out = _stop_synthesis(run, sets, ray_session["gcs"], signum)
        lines = [line for line in out.splitlines() if line.startswith("raygan:")]
        assert returncode == code and lines == [
            f"raygan: stopped by {name}; temporary files removed and the run folder unlocked; rerun the "
            "same command to resume (finished members and shards are kept)"], out[-3000:]
        assert "Traceback" not in out and "SIGTERM received" not in out, out[-3000:]
        assert not (run.path / "shards.tmp").exists() and not (run.path / "raygan.lock").exists()
        assert not [p for p in run.path.rglob("*") if ".tmp" in p.name]
    assert sorted(run.manifest()["members"]) == ["0-4/0", "5-9/0"]  # what was finished is kept
    with run_lock(run.path, job="synthesize"):  # and the next job may take the run
        pass
